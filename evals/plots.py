"""The report's figures, drawn with matplotlib (Agg) into PNG bytes.

Each function takes the summary of :mod:`codeens.evals.summary` and returns one PNG: pass@1
per model and per strategy with 95% intervals, cost against pass@1 with the frontier, the
oracle gap, and per-problem latency.
"""

from __future__ import annotations

import io
from typing import Any

PNG = bytes


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def _png(fig: Any) -> PNG:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _value(x: float | None) -> float:
    return 0.0 if x is None else 100.0 * x


def pass_at_1(summary: dict[str, Any]) -> PNG:
    """Horizontal bars: every model and strategy, with its bootstrap interval."""
    labels, values, lows, highs, colours = [], [], [], [], []
    for kind, colour in (("models", "#8da0cb"), ("strategies", "#fc8d62")):
        for name, row in summary[kind].items():
            value = _value(row["pass@1"])
            low, high = (_value(v) for v in row["pass@1_ci"])
            labels.append(f"{name} ({kind[:-1] if kind == 'models' else 'strategy'})")
            values.append(value)
            lows.append(max(0.0, value - low))
            highs.append(max(0.0, high - value))
            colours.append(colour)
    fig, ax = _figure(height=0.45 * len(labels) + 1.2)
    ax.barh(labels, values, xerr=[lows, highs], color=colours, capsize=3)
    ax.set_xlim(0, 100)
    ax.set_xlabel("pass@1 on hidden tests (%), 95% bootstrap interval")
    ax.invert_yaxis()
    return _png(fig)


def cost_frontier(summary: dict[str, Any]) -> PNG:
    """Cost of the run against pass@1; the frontier joins the points nothing beats."""
    points = [
        (row["cost"] or 0.0, _value(row["pass@1"]), name, "o")
        for name, row in summary["strategies"].items()
    ] + [
        (row["cost"] or 0.0, _value(row["pass@1"]), name, "s")
        for name, row in summary["models"].items()
    ]
    fig, ax = _figure()
    for cost, value, name, marker in points:
        ax.scatter([cost], [value], marker=marker, s=50)
        ax.annotate(name, (cost, value), textcoords="offset points", xytext=(5, 4), fontsize=8)
    frontier, best = [], -1.0
    for cost, value, _, _ in sorted(points, key=lambda p: (p[0], -p[1])):
        if value > best:
            frontier.append((cost, value))
            best = value
    if len(frontier) > 1:
        ax.plot(*zip(*frontier, strict=True), linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("cost of the run (squares: one model's samples; circles: strategies)")
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(-2, 102)
    return _png(fig)


def oracle_gap(summary: dict[str, Any]) -> PNG:
    """Per strategy: what it chose against what was there to choose (the oracle)."""
    names = list(summary["strategies"])
    chosen = [_value(summary["strategies"][n]["pass@1"]) for n in names]
    oracle = [_value(summary["strategies"][n]["oracle"]) for n in names]
    fig, ax = _figure()
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], oracle, width=0.4, label="oracle", color="#bbbbbb")
    ax.bar([p + 0.2 for p in positions], chosen, width=0.4, label="pass@1", color="#66c2a5")
    ax.set_xticks(list(positions), names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of problems")
    ax.legend()
    return _png(fig)


def latency(summary: dict[str, Any]) -> PNG:
    """Per-problem latency of each strategy (generation as charged plus sandbox time)."""
    names = list(summary["strategies"])
    data = [summary["strategies"][n]["latencies_s"] or [0.0] for n in names]
    fig, ax = _figure()
    ax.boxplot(data, tick_labels=names)
    ax.set_ylabel("seconds per problem")
    return _png(fig)


FIGURES = {
    "pass_at_1": ("pass@1 per model and strategy", pass_at_1),
    "cost_frontier": ("cost against pass@1", cost_frontier),
    "oracle_gap": ("oracle gap", oracle_gap),
    "latency": ("latency per problem", latency),
}
