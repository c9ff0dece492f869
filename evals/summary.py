"""The numbers of an eval run, computed from what it logged (never from memory).

Per model (the sample pass): pass@k by the unbiased estimator, CodeBLEU and CodeBERTScore
F1 of the extracted code against the canonical solution, tokens and cost. Per strategy
(its child runs): pass@1 of the chosen program on the hidden tests, the oracle (some
program it saw passes), selection efficiency, tokens, cost, latency per problem, and for
``cascade`` the share of problems escalated; where a strategy's candidates came from
several requests (``prompt-ensemble``'s variants, MoA's layers), the same per origin
(``generations.origin``): samples, their hidden pass rate, its oracle. Pass rates carry
95% bootstrap intervals over problems. A problem counts only once every strategy has finished it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from codeens.evals.metrics import bootstrap_ci, mean, pass_at_k, percentile
from codeens.evals.runner import children_of, load_problems, spec_of
from codeens.evals.spec import EvalSpec
from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Generation, Run, Store


def summarize(store: Store, run: Run, *, similarity: bool = True) -> dict[str, Any]:
    """Everything a report shows, as plain JSON-ready values."""
    spec = spec_of(run)
    problems = load_problems(spec)
    hidden = _hidden_verdicts(store, run.id)
    by_task: dict[str, list[Generation]] = defaultdict(list)
    for row in store.generations(run.id):
        by_task[row.target].append(row)
    per_task: list[dict[str, Any]] = []
    for index, item in enumerate(problems):
        children = {c.strategy: c for c in children_of(store, run.id, index)}
        suite_hash = parse_test_suite(item.hidden_tests).tests_hash
        verdicts = hidden.get((item.task_id, suite_hash), {})
        rows = by_task[item.task_id]
        if not rows or set(children) != set(spec.strategies):
            continue  # not finished yet (an interrupted run)
        per_task.append(
            {
                "task_id": item.task_id,
                "canonical": item.canonical,
                "models": _models_on_task(spec, rows, verdicts),
                "strategies": {
                    name: _strategy_on_task(store, child, verdicts)
                    for name, child in children.items()
                },
            }
        )
    if similarity:
        _add_similarity(per_task)
    summary: dict[str, Any] = finite(
        {
            "run_id": run.id,
            "status": run.status,
            "benchmark": spec.benchmark,
            "split": spec.split,
            "problems_total": len(problems),
            "problems_done": len(per_task),
            "samples": spec.samples,
            "models": _models_table(spec, per_task),
            "strategies": _strategies_table(spec, per_task),
            "oracle": _share([any(m["passed"] for m in t["models"].values()) for t in per_task]),
            "wall_s": run.wall_s,
            "per_task": [
                {
                    "task_id": t["task_id"],
                    "models": {n: m["passed"] for n, m in t["models"].items()},
                    "strategies": {n: s["passed"] for n, s in t["strategies"].items()},
                }
                for t in per_task
            ],
        }
    )
    return summary


def finite(value: Any) -> Any:
    """``value`` with every NaN replaced by None, so the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def ks_for(samples: int) -> list[int]:
    """The k of pass@k worth reporting for ``samples`` per problem."""
    return sorted({k for k in (1, 2, 5, 10, samples) if k <= samples})


def _hidden_verdicts(store: Store, run_id: str) -> dict[tuple[str, str], dict[str, bool]]:
    out: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for row in store.executions(run_id, limit=None):
        passed = row.verdict == "passed" and row.tests_total > 0
        out[(row.target, row.tests_hash)][row.code_hash] = passed
    return out


def _models_on_task(
    spec: EvalSpec, rows: list[Generation], verdicts: dict[str, bool]
) -> dict[str, dict[str, Any]]:
    by_model: dict[str, list[Generation]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.model, r.seed)):
        by_model[row.model].append(row)
    out = {}
    for name in spec.models:
        samples = by_model.get(name, [])[: spec.samples]
        passes = [bool(r.code_hash and verdicts.get(r.code_hash)) for r in samples]
        out[name] = {
            "n": len(samples),
            "c": sum(passes),
            "passed": any(passes),
            "codes": [r.code for r in samples if r.code],
            "tokens": sum(r.input_tokens + r.output_tokens for r in samples),
            "cost": sum(r.cost for r in samples),
            "latency_s": sum(r.latency_s for r in samples),
        }
    return out


def _strategy_on_task(store: Store, child: Run, verdicts: dict[str, bool]) -> dict[str, Any]:
    rows = store.generations(child.id)
    decisions = store.decisions(child.id)
    chosen = decisions[0].chosen_hash if decisions else None
    trace = json.loads(decisions[0].trace_json) if decisions else {}
    seen = {r.code_hash for r in rows if r.code_hash}
    executions = store.executions(child.id, limit=None)
    return {
        "passed": bool(chosen and verdicts.get(chosen)),
        "oracle": any(verdicts.get(h) for h in seen),
        "status": child.status,
        "tokens": sum(r.input_tokens + r.output_tokens for r in rows),
        "cost": sum(r.cost for r in rows),
        # Generation time as charged plus sandbox time: what this strategy alone would take.
        "latency_s": sum(r.latency_s for r in rows) + sum(e.duration_s for e in executions),
        "escalated": bool(trace.get("escalated")) if "escalated" in trace else None,
        "origins": by_origin(rows, verdicts),
    }


def by_origin(rows: Sequence[Generation], verdicts: dict[str, bool]) -> dict[str, list[bool]]:
    """Per origin of the candidate samples (a prompt variant, a MoA layer), whether each
    sample's program passed the hidden tests."""
    out: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        if row.code_hash is not None:
            out[row.origin or "unrecorded"].append(bool(verdicts.get(row.code_hash)))
    return dict(out)


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def _interval(values: list[float]) -> list[float]:
    return list(bootstrap_ci(values))


def _models_table(spec: EvalSpec, per_task: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in spec.models:
        cells = [t["models"][name] for t in per_task]
        usable = [c for c in cells if c["n"] > 0]
        row: dict[str, Any] = {}
        for k in ks_for(spec.samples):
            values = [pass_at_k(c["n"], c["c"], k) for c in usable if c["n"] >= k]
            row[f"pass@{k}"] = mean(values)
            if k == 1:
                row["pass@1_ci"] = _interval(values)
        row["codebleu"] = mean([s for c in cells for s in c.get("codebleu", [])])
        row["codebertscore_f1"] = mean([s for c in cells for s in c.get("codebertscore", [])])
        row["extracted"] = _share([bool(c["codes"]) for c in cells])
        row["tokens"] = sum(c["tokens"] for c in cells)
        row["cost"] = sum(c["cost"] for c in cells)
        row["latency_p50_s"] = percentile([c["latency_s"] for c in cells], 50)
        table[name] = row
    return table


def _strategies_table(spec: EvalSpec, per_task: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in spec.strategies:
        cells = [t["strategies"][name] for t in per_task]
        passed = [1.0 if c["passed"] else 0.0 for c in cells]
        oracle = _share([c["oracle"] for c in cells])
        pass1 = mean(passed)
        latencies = [c["latency_s"] for c in cells]
        escalations = [c["escalated"] for c in cells if c["escalated"] is not None]
        table[name] = {
            "pass@1": pass1,
            "pass@1_ci": _interval(passed),
            "oracle": oracle,
            "selection_efficiency": pass1 / oracle if oracle else math.nan,
            "tokens": sum(c["tokens"] for c in cells),
            "cost": sum(c["cost"] for c in cells),
            "latency_p50_s": percentile(latencies, 50),
            "latency_p95_s": percentile(latencies, 95),
            "latencies_s": latencies,
            "escalated": _share(escalations) if escalations else None,
            "errors": sum(c["status"] == "error" for c in cells),
        }
        origins = _origins_table(cells)
        if origins:
            table[name]["origins"] = origins
    return table


def _origins_table(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per origin over the problems: samples, the share whose program passed the hidden
    tests, and the share of problems where one of them did (its oracle); nothing when all
    candidates came from one kind of request."""
    names = sorted({o for c in cells for o in c.get("origins", {})})
    table: dict[str, dict[str, Any]] = {}
    if len(names) < 2:
        return table
    for origin in names:
        flags = [c["origins"][origin] for c in cells if origin in c.get("origins", {})]
        samples = [f for task in flags for f in task]
        table[origin] = {
            "samples": len(samples),
            "sample_pass_rate": _share(samples),
            "oracle": _share([any(task) for task in flags]),
        }
    return table


def _add_similarity(per_task: list[dict[str, Any]]) -> None:
    from codeens.evals.similarity import codebertscore_f1, codebleu

    pairs = [
        (cell, code, task["canonical"])
        for task in per_task
        for cell in task["models"].values()
        for code in cell["codes"]
    ]
    if not pairs:
        return
    cands = [code for _, code, _ in pairs]
    refs = [ref for _, _, ref in pairs]
    bleu = codebleu(cands, refs)
    bert = codebertscore_f1(cands, refs)
    for (cell, _, _), b, s in zip(pairs, bleu, bert, strict=True):
        cell.setdefault("codebleu", []).append(b)
        cell.setdefault("codebertscore", []).append(s)
