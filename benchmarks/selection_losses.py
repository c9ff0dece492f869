"""Problems a strategy lost: some program it saw passes the hidden tests, its choice does not.

For each finished eval run given, and each strategy, lists every task where the strategy's
oracle holds but its chosen program fails the hidden tests, with what selection could see:
the chosen program's result on the visible tests against the hidden-passing programs'
results, and a one-word reason:

- ``no-visible-tests``: the problem has none, so every candidate ties on the visible pass;
- ``visible-tie``: a hidden-passing program had the same visible pass count as the choice
  and a tie-break (agreement, generated tests, score, order) picked the wrong one;
- ``chose-fewer-visible``: a hidden-passing program passed more visible tests than the
  choice (the strategy's scores outweighed the visible pass rate);
- ``visible-lower``: every hidden-passing program passed fewer visible tests than the
  choice (the visible tests disagree with the hidden ones, or a passing program crashed);
- ``not-executed``: the hidden-passing programs never ran on the visible tests in this
  strategy (a cascade that stopped before reaching them, an MoA layer that was not run).

Usage: .venv/bin/python benchmarks/selection_losses.py --db benchmarks/results/eval_headline.db
           RUN_ID [RUN_ID ...] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from codeens.evals.runner import children_of, load_problems, spec_of
from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Store


def losses(store: Store, run_id: str) -> list[dict[str, Any]]:
    run = store.run(run_id)
    if run is None:
        raise SystemExit(f"no run {run_id!r} in {store.path}")
    spec = spec_of(run)
    hidden: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for row in store.executions(run.id, limit=None):
        passed = row.verdict == "passed" and row.tests_total > 0
        hidden[(row.target, row.tests_hash)][row.code_hash] = passed
    out = []
    for index, item in enumerate(load_problems(spec)):
        verdicts = hidden.get((item.task_id, parse_test_suite(item.hidden_tests).tests_hash), {})
        for child in children_of(store, run.id, index):
            decisions = store.decisions(child.id)
            chosen = decisions[0].chosen_hash if decisions else None
            seen = {r.code_hash for r in store.generations(child.id) if r.code_hash}
            winners = sorted(h for h in seen if verdicts.get(h))
            if not winners or (chosen and verdicts.get(chosen)):
                continue
            visible = _visible(store, child.id)
            chosen_visible = visible.get((chosen or "")[:12])
            winners_visible = [visible.get(h[:12]) for h in winners]
            out.append(
                {
                    "run_id": run.id,
                    "task_id": item.task_id,
                    "strategy": child.strategy,
                    "chosen": (chosen or "")[:12] or None,
                    "chosen_visible": chosen_visible,
                    "passing": len(winners),
                    "passing_visible": winners_visible,
                    "reason": _reason(chosen_visible, winners_visible),
                }
            )
    return out


def _visible(store: Store, child_id: str) -> dict[str, list[int]]:
    """Code-hash prefix -> [passed, total] on the visible suite (the first suite run)."""
    rows = sorted(store.executions(child_id, limit=None), key=lambda r: r.id or 0)
    if not rows:
        return {}
    suite = rows[0].tests_hash
    return {
        r.code_hash[:12]: [r.tests_passed, r.tests_total] for r in rows if r.tests_hash == suite
    }


def _reason(chosen: list[int] | None, winners: list[list[int] | None]) -> str:
    ran = [w for w in winners if w is not None]
    if not ran:
        return "no-visible-tests" if chosen is None else "not-executed"
    if chosen is None or chosen[1] == 0:
        return "no-visible-tests"
    best = max(w[0] for w in ran)
    if best > chosen[0]:
        return "chose-fewer-visible"
    return "visible-tie" if best == chosen[0] else "visible-lower"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    store = Store(args.db)
    rows = [row for run_id in args.runs for row in losses(store, run_id)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| run | task | strategy | chosen visible | passing programs (visible) | reason |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        chosen = "-" if row["chosen_visible"] is None else "/".join(map(str, row["chosen_visible"]))
        winners = ", ".join(
            "-" if w is None else "/".join(map(str, w)) for w in row["passing_visible"]
        )
        print(
            f"| {row['run_id']} | {row['task_id']} | {row['strategy']} | {chosen} | "
            f"{row['passing']} ({winners}) | {row['reason']} |"
        )
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[f"{row['strategy']}:{row['reason']}"] += 1
    print("\n" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
