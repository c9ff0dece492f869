"""The headline table: the embedded models and the strategies on fixed benchmark slices.

Runs ``codeens eval`` on a slice spread over each benchmark (HumanEval ids 0, 4, 8, ...,
160: 41 problems; MBPP test problems 11, 23, 35, ...: every 12th, 42 problems), with a
private log, then writes the tables to ``benchmarks/results/eval_headline.md`` and into
README.md between the ``eval-headline`` markers, so the README's figures are regenerated,
never typed. The slices are fixed by their stride, not chosen by looking at results.

An interrupted run is continued: an unfinished eval run in the private log with the same
command line is resumed (``codeens eval --resume``) instead of started again.

Usage (from outside the checkout, or with the installed package first on sys.path):
    .venv/bin/python benchmarks/eval_headline.py [--samples 4]
        [--strategies vote,majority,codebertscore,cascade,score-ensemble,moa]
        [--only humaneval|mbpp] [--reuse] [--mbpp-data DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- eval-headline:start -->", "<!-- eval-headline:end -->"
SLICES = {
    "humaneval": ",".join(f"HumanEval/{i}" for i in range(0, 164, 4)),
    "mbpp": ",".join(str(i) for i in range(11, 511, 12)),
}
DESCRIBED = {
    "humaneval": "ids 0, 4, 8, ..., 160",
    "mbpp": "test problems 11, 23, 35, ..., 503 (every 12th)",
}


def _codeens() -> str:
    return str(Path(sys.executable).with_name("codeens"))


def _recorded(db: Path, benchmark: str, args: argparse.Namespace) -> Any:
    """The newest eval run of this slice, samples and strategies in the log, if any."""
    if not db.exists():
        return None
    from codeens.storage import Store

    wanted = {
        "benchmark": benchmark,
        "task_ids": SLICES[benchmark].split(","),
        "strategies": args.strategies.split(","),
        "samples": args.samples,
    }
    for run in Store(db).runs(limit=200):
        spec = json.loads(run.config_json or "{}")
        if run.kind == "eval" and all(spec.get(k) == v for k, v in wanted.items()):
            return run
    return None


def run_eval(args: argparse.Namespace, benchmark: str, extra: list[str]) -> dict[str, Any]:
    spec_args = [
        "eval",
        benchmark,
        "--problems",
        SLICES[benchmark],
        "--samples",
        str(args.samples),
        "--strategies",
        args.strategies,
        *extra,
    ]
    tail = ["--db", str(args.db), "--json", "--quiet"]
    label = " ".join(["codeens", *spec_args[:3], "...", *spec_args[4:], *tail])
    run = _recorded(args.db, benchmark, args)
    if args.reuse and run is not None and run.status == "done" and run.summary_json:
        stored: dict[str, Any] = json.loads(run.summary_json)
        stored["command"] = label
        return stored
    run_id = run.id if run is not None and run.status != "done" else None
    command = [_codeens(), *spec_args, *tail]
    if run_id is not None:
        command = [_codeens(), "eval", "--resume", run_id, *tail]
    started = time.monotonic()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["command"] = label
    if run_id is None:
        summary["wall_s"] = time.monotonic() - started
    return summary


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def ci(pair: list[float | None]) -> str:
    return f"{pct(pair[0])}-{pct(pair[1])}"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cascade_thresholds(db: Path, run_id: str) -> str:
    """The thresholds the cascade children of an eval run used, as recorded in their traces
    (the default changed between the two slices)."""
    from codeens.storage import Store

    store = Store(db)
    seen: set[str] = set()
    for child in store.children(run_id):
        if child.strategy != "cascade":
            continue
        for decision in store.decisions(child.id):
            trace = json.loads(decision.trace_json or "{}")
            if "thresholds" in trace:
                seen.add(str(trace["thresholds"]))
    return ", ".join(sorted(seen)) or "-"


def table(summary: dict[str, Any], db: Path) -> list[str]:
    lines = [
        f"**{summary['benchmark']} {summary['split']}**, {DESCRIBED[summary['benchmark']]}: "
        f"{summary['problems_done']} problems, {summary['samples']} samples per model; "
        f"oracle (any sample passes the "
        f"hidden tests) {pct(summary['oracle'])} %; run took "
        f"{summary['wall_s'] / 60:.1f} min.",
        "",
        "| model | pass@1 % (95% CI) | pass@k % | CodeBLEU | CodeBERTScore F1 | tokens |",
        "|---|---|---|---|---|---|",
    ]
    k = summary["samples"]
    for name, row in summary["models"].items():
        lines.append(
            f"| {name} | {pct(row['pass@1'])} ({ci(row['pass@1_ci'])}) | "
            f"pass@{k} {pct(row.get(f'pass@{k}'))} | {num(row['codebleu'])} | "
            f"{num(row['codebertscore_f1'])} | {row['tokens']} |"
        )
    lines += [
        "",
        "| strategy | pass@1 % (95% CI) | oracle % | selection eff. % | tokens | cost | "
        "p50 / p95 s | escalated % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["strategies"].items():
        lines.append(
            f"| {name} | {pct(row['pass@1'])} ({ci(row['pass@1_ci'])}) | "
            f"{pct(row['oracle'])} | {pct(row['selection_efficiency'])} | {row['tokens']} | "
            f"{num(row['cost'], 6)} | {num(row['latency_p50_s'], 1)} / "
            f"{num(row['latency_p95_s'], 1)} | {pct(row['escalated'])} |"
        )
    best_model = max(summary["models"].items(), key=lambda kv: kv[1]["pass@1"] or 0.0)
    best = max(summary["strategies"].items(), key=lambda kv: kv[1]["pass@1"] or 0.0)
    gap = 100 * ((best[1]["pass@1"] or 0.0) - (best_model[1]["pass@1"] or 0.0))
    lines += [
        "",
        f"Best strategy {best[0]} {pct(best[1]['pass@1'])} % against the best single member "
        f"{best_model[0]} {pct(best_model[1]['pass@1'])} % per sample: {gap:+.1f} points; "
        f"selection efficiency {pct(best[1]['selection_efficiency'])} %.",
        "",
        f"Cascade thresholds per stage, as recorded: {cascade_thresholds(db, summary['run_id'])}.",
        "",
        f"Command: `{summary['command']}` (run `{summary['run_id']}`)",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument(
        "--strategies", default="vote,majority,codebertscore,cascade,score-ensemble,moa"
    )
    parser.add_argument("--mbpp-data", type=Path, default=None, help="Default: shipped copy.")
    parser.add_argument("--db", type=Path, default=RESULTS / "eval_headline.db")
    parser.add_argument("--no-readme", action="store_true", help="Leave README.md alone.")
    parser.add_argument(
        "--reuse", action="store_true", help="Tabulate finished runs of the same slices again."
    )
    parser.add_argument("--only", choices=sorted(SLICES), default=None, help="One benchmark.")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    extra = {
        "humaneval": [],
        "mbpp": ["--split", "test", *(["--data", str(args.mbpp_data)] if args.mbpp_data else [])],
    }
    names = [args.only] if args.only else ["humaneval", "mbpp"]
    summaries = [run_eval(args, name, extra[name]) for name in names]
    missing = [name for name in SLICES if name not in names]
    body = [
        f"Embedded Qwen2.5-Coder pair on 2 CPU cores; `python benchmarks/eval_headline.py "
        f"--samples {args.samples} --strategies {args.strategies}`. Pass rates are on the "
        "hidden tests, with 95% bootstrap intervals over problems; the oracle is the share of "
        "problems where some program the strategy saw passes; selection efficiency is "
        "pass@1 / oracle.",
        "",
        *(
            ["Not run yet: " + ", ".join(f"the {n} slice" for n in missing) + ".", ""]
            if missing
            else []
        ),
    ]
    for summary in summaries:
        body += table(summary, args.db)
    text = "\n".join(body)
    (RESULTS / "eval_headline.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "eval_headline.json").write_text(json.dumps(summaries, indent=1), "utf-8")
    print(text)
    if not args.no_readme:
        readme = ROOT / "README.md"
        old = readme.read_text(encoding="utf-8")
        if START in old and END in old:
            new = re.sub(
                re.escape(START) + ".*?" + re.escape(END),
                lambda _: f"{START}\n{text}\n{END}",
                old,
                flags=re.S,
            )
            readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
