"""Eval reports: Markdown with PNG files beside it, and one self-contained HTML page.

The HTML embeds its plots as data URIs and needs nothing else to open; a small inline
script counts the images that decoded (``data-images-loaded`` on ``<body>``), which is
what the headless-browser test reads.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codeens.evals.plots import FIGURES

Table = tuple[list[str], list[list[str]]]


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(pair: list[float | None]) -> str:
    return f"{pct(pair[0])} to {pct(pair[1])}"


Column = tuple[str, str, Callable[[Any], str]]
"""A per-name table column: its heading, the summary row's key, how the value is written."""


def _per_name(first: str, rows: dict[str, dict[str, Any]], columns: list[Column]) -> Table:
    """One line per model or strategy: its name, then each column's value from its row."""
    head = [first, *[heading for heading, _, _ in columns]]
    lines = []
    for name, row in rows.items():
        lines.append([name, *[cell(row.get(key)) for _, key, cell in columns]])
    return head, lines


def _cost(value: float | None) -> str:
    return num(value, 6)


def _seconds(value: float | None) -> str:
    return num(value, 2)


# The columns models and strategies share: the chosen program's score, then what it cost.
_SCORE: list[Column] = [("pass@1 %", "pass@1", pct), ("95% CI", "pass@1_ci", _ci)]
_SPENT: list[Column] = [("tokens", "tokens", str), ("cost", "cost", _cost)]


def model_table(summary: dict[str, Any]) -> Table:
    ks = sorted({int(k[5:]) for row in summary["models"].values() for k in row if _is_k(k)})
    columns: list[Column] = [*_SCORE, *[(f"pass@{k} %", f"pass@{k}", pct) for k in ks if k > 1]]
    columns += [
        ("CodeBLEU", "codebleu", num),
        ("CodeBERTScore F1", "codebertscore_f1", num),
        ("code extracted %", "extracted", pct),
        *_SPENT,
    ]
    return _per_name("model", summary["models"], columns)


def _is_k(key: str) -> bool:
    return key.startswith("pass@") and key[5:].isdigit()


def strategy_table(summary: dict[str, Any]) -> Table:
    columns: list[Column] = [
        *_SCORE,
        ("oracle %", "oracle", pct),
        ("selection efficiency %", "selection_efficiency", pct),
        *_SPENT,
        ("p50 s", "latency_p50_s", _seconds),
        ("p95 s", "latency_p95_s", _seconds),
        ("escalated %", "escalated", pct),
        ("errors", "errors", str),
    ]
    return _per_name("strategy", summary["strategies"], columns)


def task_table(summary: dict[str, Any]) -> Table:
    models = list(summary["models"])
    strategies = list(summary["strategies"])
    head = ["problem", *models, *strategies]
    rows = []
    for task in summary["per_task"]:
        marks = [task["models"][m] for m in models] + [task["strategies"][s] for s in strategies]
        rows.append([task["task_id"], *["pass" if m else "fail" for m in marks]])
    return head, rows


def headline(summary: dict[str, Any]) -> str:
    return (
        f"{summary['benchmark']} ({summary['split']}): {summary['problems_done']} of "
        f"{summary['problems_total']} problems done, {summary['samples']} samples per model, "
        f"run {summary['run_id']} ({summary['status']}). Oracle over every model's samples: "
        f"{pct(summary['oracle'])} %."
    )


def figures(summary: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """name -> (title, PNG); none when no problem is done yet."""
    if not summary["per_task"]:
        return {}
    return {name: (title, draw(summary)) for name, (title, draw) in FIGURES.items()}


def _markdown_table(table: Table) -> list[str]:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _html_table(table: Table) -> str:
    head, rows = table
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""
COUNT_IMAGES = (
    "window.addEventListener('load', function () {"
    " var ok = 0; document.querySelectorAll('img').forEach(function (i) {"
    " if (i.complete && i.naturalWidth > 0) { ok += 1; } });"
    " document.body.setAttribute('data-images-loaded', String(ok)); });"
)


def write(
    out: Path, title: str, sections: list[tuple[str, str, list[Table]]], images: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ ``plots/*.png``) and ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    md = [f"# {title}", ""]
    page = [f"<h1>{html.escape(title)}</h1>"]
    for heading, text, tables in sections:
        md += [f"## {heading}", "", text, ""]
        page += [f"<h2>{html.escape(heading)}</h2>", f"<p>{html.escape(text)}</p>"]
        for table in tables:
            md += [*_markdown_table(table), ""]
            page.append(_html_table(table))
    if images:
        plots.mkdir(exist_ok=True)
        md += ["## Plots", ""]
        page.append("<h2>Plots</h2>")
        for name, (caption, png) in images.items():
            (plots / f"{name}.png").write_bytes(png)
            md += [f"![{caption}](plots/{name}.png)", ""]
            data = base64.b64encode(png).decode("ascii")
            page.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    markdown = out / "report.md"
    markdown.write_text("\n".join(md), encoding="utf-8")
    document = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body data-images-loaded='0' data-images='{len(images)}'>{''.join(page)}"
        f"<script>{COUNT_IMAGES}</script></body></html>"
    )
    page_path = out / "report.html"
    page_path.write_text(document, encoding="utf-8")
    return markdown, page_path


def run_report(summary: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """The report of one eval run."""
    sections = [
        ("Summary", headline(summary), []),
        ("Models", "Each model's own samples, scored on the hidden tests.", [model_table(summary)]),
        (
            "Strategies",
            "The chosen program per problem, selected on visible tests, scored on hidden ones. "
            "Cost and latency charge every sample a strategy used at its original price.",
            [strategy_table(summary)],
        ),
        (
            "Problems",
            "Models: any sample passes; strategies: the choice passes.",
            [task_table(summary)],
        ),
    ]
    title = f"codeens eval {summary['run_id']}: {summary['benchmark']}"
    return write(out, title, sections, figures(summary))


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> Table:
    head = ["kind", "name", "pass@1 % A", "pass@1 % B", "change (points)", "cost A", "cost B"]
    rows = []
    for kind in ("models", "strategies"):
        for name in dict.fromkeys([*a[kind], *b[kind]]):
            left, right = a[kind].get(name), b[kind].get(name)
            pa = left["pass@1"] if left else None
            pb = right["pass@1"] if right else None
            change = "-" if pa is None or pb is None else f"{100 * (pb - pa):+.1f}"
            rows.append(
                [
                    kind[:-1] if kind == "models" else "strategy",
                    name,
                    pct(pa),
                    pct(pb),
                    change,
                    num(left["cost"], 6) if left else "-",
                    num(right["cost"], 6) if right else "-",
                ]
            )
    return head, rows


def flips_table(a: dict[str, Any], b: dict[str, Any]) -> Table:
    """Problems both runs did where a strategy's outcome differs."""
    tasks_b = {t["task_id"]: t for t in b["per_task"]}
    rows = []
    for task in a["per_task"]:
        other = tasks_b.get(task["task_id"])
        if other is None:
            continue
        for name, passed in task["strategies"].items():
            if name in other["strategies"] and other["strategies"][name] != passed:
                rows.append(
                    [
                        task["task_id"],
                        name,
                        "pass" if passed else "fail",
                        "pass" if other["strategies"][name] else "fail",
                    ]
                )
    return ["problem", "strategy", "A", "B"], rows


def compare_report(a: dict[str, Any], b: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """The differences between two eval runs (A, then B)."""
    shared = {t["task_id"] for t in a["per_task"]} & {t["task_id"] for t in b["per_task"]}
    sections = [
        ("Run A", headline(a), []),
        ("Run B", headline(b), []),
        (
            "Pass@1 and cost",
            f"{len(shared)} problems were done by both runs.",
            [compare_table(a, b)],
        ),
        ("Problems that changed", "Strategy outcomes that differ.", [flips_table(a, b)]),
    ]
    title = f"codeens eval: {a['run_id']} (A) against {b['run_id']} (B)"
    images = {}
    for tag, summary in (("a", a), ("b", b)):
        if summary["per_task"]:
            for name, (caption, png) in figures(summary).items():
                if name == "pass_at_1":
                    images[f"{tag}_{name}"] = (f"run {tag.upper()}: {caption}", png)
    return write(out, title, sections, images)
