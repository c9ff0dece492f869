"""``codeens cascade calibrate``: pick cascade thresholds from the runs in the log.

For every problem target in the log, the samples each configured model produced (from any
strategy's runs, the model's first prompt, de-duplicated by request, lowest seeds first, at
most ``k``) and their visible-test executions are replayed through the cascade's own
acceptance rule (:func:`codeens.strategies.cascade.run_cascade`) for every threshold of a
grid. A simulated answer is correct when it passed the visible tests.

Visible-test pass alone cannot rank thresholds: the cascade accepts only candidates that
pass, and the best-so-far fallback keeps any passing one, so every threshold would look
equally correct and the cheapest would always win. By default the history is therefore
replayed leave-one-test-out (``--holdout``): the cascade sees all visible tests but one,
and the answer is correct when it passes the held-out test. ``--no-holdout`` gives the
plain visible-pass simulation. Targets with one test are always simulated plainly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError

TestRow = tuple[str, str, str]  # name, outcome, message


@dataclass
class Unit:
    """One problem target: each model's samples (code hash or None, cost, tokens)."""

    name: str
    samples: dict[str, list[tuple[str | None, float, int]]]
    executions: dict[str, tuple[str, tuple[TestRow, ...]]]  # hash12 -> verdict, tests


@dataclass
class Simulation:
    """One threshold vector's simulated pass rate, mean cost and escalation share."""

    thresholds: tuple[float, ...]
    pass_rate: float
    mean_cost: float
    escalated: float


def load_history(store: Any, models: Sequence[str], k: int) -> list[Unit]:
    """Every problem target with samples of the given models and visible executions."""
    runs = {r.id: r for r in store.runs(limit=None, children=True) if r.problem_hash}
    problems = store.problems()
    gens = store.generations_of(models)
    by_run: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for e in store.executions(limit=None, oldest_first=True):
        if e.run_id in runs:
            by_run[(e.run_id, e.target)].append(e)
    verdicts: dict[tuple[str, str], dict[str, tuple[str, tuple[TestRow, ...]]]] = {}
    for (run_id, target), rows in by_run.items():
        problem_hash = runs[run_id].problem_hash or ""
        problem = problems.get(problem_hash)
        whole = hashlib.sha256((problem.visible_tests if problem else "").encode()).hexdigest()
        hashes = {e.tests_hash for e in rows}
        # The visible suite: the problem's whole test file where it ran, else the run's first
        # suite for this target (every strategy executes on the visible tests first).
        visible = whole if whole in hashes else rows[0].tests_hash
        found = verdicts.setdefault((problem_hash, target), {})
        for e in rows:
            label = e.code_hash[:12]
            if e.tests_hash == visible and e.verdict != "infra_error" and label not in found:
                tests = tuple(
                    (t["name"], t["outcome"], t["message"]) for t in json.loads(e.tests_json)
                )
                found[label] = (e.verdict, tests)
    grouped: dict[tuple[str, str], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for g in gens:
        if g.run_id in runs:
            grouped[(runs[g.run_id].problem_hash or "", g.target)][g.model].append(g)
    units = []
    for (problem_hash, target), per_model in grouped.items():
        executions = verdicts.get((problem_hash, target), {})
        samples = {m: _first_samples(rows, k) for m, rows in per_model.items()}
        if any(h and h[:12] in executions for s in samples.values() for h, _, _ in s):
            path = problems[problem_hash].path if problem_hash in problems else problem_hash[:12]
            units.append(Unit(f"{path}:{target}", samples, executions))
    return sorted(units, key=lambda u: u.name)


def _first_samples(rows: list[Any], k: int) -> list[tuple[str | None, float, int]]:
    """The model's first prompt's distinct requests, lowest seeds first, original costs."""
    prompt = rows[0].prompt
    chosen: dict[str, Any] = {}
    for row in rows:
        held = chosen.get(row.request_key)
        if row.prompt == prompt and (held is None or (held.cached_from and not row.cached_from)):
            chosen[row.request_key] = row
    first = sorted(chosen.values(), key=lambda r: (r.seed, r.id))[:k]
    return [(r.code_hash, r.cost, r.input_tokens + r.output_tokens) for r in first]


def folds(
    unit: Unit, models: Sequence[str], k: int, holdout: bool
) -> list[tuple[list[Any], dict[str, bool]]]:
    """The stages (one per model) and per-candidate correctness, one pair per fold."""
    from codeens.strategies.cascade import Outcome, Stage

    ran = [tests for verdict, tests in unit.executions.values() if verdict in ("passed", "failed")]
    names = [t[0] for t in ran[0]] if ran else []
    held: list[str | None] = list(names) if holdout and len(names) >= 2 else [None]
    out = []
    for hold in held:
        correct: dict[str, bool] = {}
        stages = []
        for model in models:
            outcomes = []
            for code_hash, _, _ in unit.samples.get(model, []):
                if code_hash is None:
                    outcomes.append(Outcome(None))
                    continue
                if code_hash[:12] not in unit.executions:  # never ran: agrees with nothing
                    outcomes.append(Outcome(code_hash, ("unexecuted", code_hash)))
                    continue
                verdict, tests = unit.executions[code_hash[:12]]
                seen = tuple(t for t in tests if t[0] != hold)
                passes = sum(t[1] == "passed" for t in seen)
                if hold is None:
                    key: tuple[object, ...] = (verdict, seen)
                    passed = ok = verdict == "passed"
                else:
                    runs = verdict in ("passed", "failed")
                    key = ("ran" if runs else verdict, seen)
                    passed = runs and bool(seen) and passes == len(seen)
                    ok = runs and any(t[0] == hold and t[1] == "passed" for t in tests)
                correct[code_hash] = ok
                rate = passes / len(seen) if seen else 0.0
                outcomes.append(Outcome(code_hash, key, passed, rate))
            rows = unit.samples.get(model, [])
            cost, tokens = sum(r[1] for r in rows), sum(r[2] for r in rows)
            stages.append(Stage(model, len(rows) or k, outcomes, cost, tokens))
        out.append((stages, correct))
    return out


def simulate(
    prepared: list[list[tuple[list[Any], dict[str, bool]]]],
    thresholds: tuple[float, ...],
    budget: Any,
) -> Simulation:
    """Replay every fold of every unit; each unit weighs the same."""
    from codeens.strategies.cascade import run_cascade

    per_unit: list[tuple[float, ...]] = []
    for unit_folds in prepared:
        results = [
            (run_cascade(s.__getitem__, len(s), thresholds, budget), ok) for s, ok in unit_folds
        ]
        rows = [(ok.get(r.chosen or "", False), r.cost, r.escalated) for r, ok in results]
        per_unit.append(tuple(sum(column) / len(rows) for column in zip(*rows, strict=True)))
    means = [sum(column) / len(per_unit) for column in zip(*per_unit, strict=True)]
    return Simulation(thresholds, means[0], means[1], means[2])


def parse_grid(text: str) -> list[float]:
    """``0.1..1.0`` (step 0.1), ``0.2..0.8:0.05``, or a list ``0.3,0.5,0.9``."""
    try:
        if ".." in text:
            span, _, step_text = text.partition(":")
            low, high = (float(x) for x in span.split(".."))
            step = float(step_text) if step_text else 0.1
            count = round((high - low) / step) + 1 if step > 0 else 0
            values = [round(low + i * step, 6) for i in range(count)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"--grid {text!r}: expected LOW..HIGH[:STEP] or a list") from exc
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise InputError(f"--grid {text!r}: thresholds must lie in [0, 1]")
    return sorted(set(values))


@click.group("cascade")
def cascade() -> None:
    """Cost-aware cascades: tune the acceptance thresholds from the log."""


@cascade.command("calibrate")
@shared_options("db", "config")
@click.option("--target", type=click.FloatRange(0, 1), default=0.9, help="Pass rate (0.9).")
@click.option("--grid", default="0.1..1.0", help="LOW..HIGH[:STEP] or a,b,c (0.1..1.0).")
@click.option(
    "--holdout/--no-holdout",
    default=True,
    show_default=True,
    help="Judge each simulated answer on one held-out visible test (leave-one-out); "
    "plain visible-test pass cannot tell thresholds apart.",
)
@shared_options("json")
def calibrate(
    db: Path | None,
    config_path: Path | None,
    target: float,
    grid: str,
    holdout: bool,
    as_json: bool,
) -> None:
    """Simulate past runs for each threshold; choose the cheapest that reaches --target."""
    from pydantic import ValidationError

    from codeens.config import ConfigError, load_config
    from codeens.storage import Store
    from codeens.storage.db import default_db_path
    from codeens.strategies.cascade import Budget, Cascade, order_models
    from codeens.validation import first_error

    values = parse_grid(grid)
    try:
        config, _ = load_config(config_path)
        options = Cascade.Options.model_validate(config.strategies.get("cascade", {}))
    except ValidationError as exc:
        raise InputError(f"config [strategies.cascade] {first_error(exc)}") from exc
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    models = [m.name for m in order_models(config.models)]
    if len(models) < 2:
        raise InputError(f"cascade needs at least two models; {len(models)} configured")
    k = options.k or config.samples
    path = db or default_db_path()
    if not path.exists():
        click.echo(f"no history: {path} does not exist")
        return
    store = Store(path)
    units = load_history(store, models, k)
    if not units:
        click.echo(
            f"no history: no run in {store.path} has executed samples of {', '.join(models)}"
        )
        return
    prepared = [folds(u, models, k, holdout) for u in units]
    budget = Budget(options.max_cost, options.max_tokens)
    free = len(models) - 1
    uniform = [simulate(prepared, (t,) * len(models), budget) for t in values]
    tried = list(uniform)
    if free > 1 and len(values) ** free <= 4096:
        for combo in itertools.product(values, repeat=free):
            tried.append(simulate(prepared, (*combo, combo[-1]), budget))
    reaching = [s for s in tried if s.pass_rate >= target - 1e-9]
    if reaching:
        choice = min(reaching, key=lambda s: (round(s.mean_cost, 12), -s.pass_rate, s.thresholds))
    else:
        choice = max(tried, key=lambda s: (s.pass_rate, -round(s.mean_cost, 12)))
    same = len(set(choice.thresholds)) == 1
    snippet = "[strategies.cascade]\n" + (
        f"threshold = {choice.thresholds[0]}" if same else f"thresholds = {list(choice.thresholds)}"
    )
    evaluations = sum(len(f) for f in prepared)
    missing = {m: sum(not u.samples.get(m) for u in units) for m in models}
    if as_json:
        data: dict[str, Any] = {"units": len(units), "evaluations": evaluations, "k": k}
        data |= {"models": models, "holdout": holdout, "target": target, "missing": missing}
        data |= {"rows": [asdict(s) for s in uniform], "choice": asdict(choice)}
        data |= {"reaches_target": bool(reaching), "toml": snippet}
        click.echo(json.dumps(data))
        return
    mode = "leave-one-test-out" if holdout else "visible-test pass"
    click.echo(
        f"history: {len(units)} problem targets, {evaluations} simulations ({mode}); "
        f"models cheapest first: {', '.join(models)}; k={k}"
    )
    for model, count in missing.items():
        if count:
            click.echo(f"note: {count} target(s) have no samples of {model} (treated as failed)")
    click.echo(f"{'threshold':>9}  {'pass_rate':>9}  {'mean_cost':>12}  {'escalated':>9}")
    for s in uniform:
        click.echo(
            f"{s.thresholds[0]:>9.2f}  {s.pass_rate:>9.3f}  {s.mean_cost:>12.6g}  "
            f"{s.escalated:>9.2f}"
        )
    shown = f"threshold {choice.thresholds[0]}" if same else f"thresholds {list(choice.thresholds)}"
    verdict = f">= target {target}" if reaching else f"(no threshold reaches target {target})"
    click.echo(
        f"choice: {shown}: simulated pass rate {choice.pass_rate:.3f} {verdict}, "
        f"mean cost {choice.mean_cost:.6g}, escalated {choice.escalated:.0%}"
    )
    click.echo("")
    click.echo(snippet)
