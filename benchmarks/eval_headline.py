"""The headline table: the embedded models and the strategies on fixed benchmark slices.

Runs ``codeens eval`` on a slice spread over each benchmark (HumanEval ids 0, 4, 8, ...,
160: 41 problems; MBPP test problems 11, 23, 35, ...: every 12th, 42 problems), with a
private log, then writes the tables to ``benchmarks/results/eval_headline.md`` and into
README.md between the ``eval-headline`` markers, so the README's figures are regenerated,
never typed. The slices are fixed by their stride, not chosen by looking at results.
``--slices heldout`` runs the slices offset by two (HumanEval 2, 6, ..., 162) and six
(MBPP 17, 29, ...) instead, which no default was chosen on, and writes
``eval_heldout.md`` and the README's ``eval-heldout`` block.

The log is kept in git compressed (``eval_log.py pack``); when ``--db`` is the default and
absent, the archive is unpacked first. An interrupted run is continued: an unfinished eval
run in the log with the same command line is resumed (``codeens eval --resume``) instead of
started again.

Usage (from outside the checkout, or with the installed package first on sys.path):
    .venv/bin/python benchmarks/eval_headline.py [--samples 4]
        [--strategies vote,majority,codebertscore,cascade,score-ensemble,moa]
        [--only humaneval|mbpp] [--slices readme|heldout] [--reuse] [--mbpp-data DIR]
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

from eval_log import ARCHIVE, DB, unpack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# Two sets of slices: the README's, which the strategies were compared (and defaults
# chosen) on, and held-out ones, offset from them, which nothing was looked at or tuned on.
SLICE_SETS: dict[str, dict[str, str]] = {
    "readme": {
        "humaneval": ",".join(f"HumanEval/{i}" for i in range(0, 164, 4)),
        "mbpp": ",".join(str(i) for i in range(11, 511, 12)),
    },
    "heldout": {
        "humaneval": ",".join(f"HumanEval/{i}" for i in range(2, 164, 4)),
        "mbpp": ",".join(str(i) for i in range(17, 511, 12)),
    },
}
DESCRIPTIONS = {
    "readme": {
        "humaneval": "ids 0, 4, 8, ..., 160",
        "mbpp": "test problems 11, 23, 35, ..., 503 (every 12th)",
    },
    "heldout": {
        "humaneval": "held-out ids 2, 6, 10, ..., 162",
        "mbpp": "held-out test problems 17, 29, 41, ..., 509 (every 12th)",
    },
}
MARKERS = {"readme": "eval-headline", "heldout": "eval-heldout"}


def _codeens() -> str:
    return str(Path(sys.executable).with_name("codeens"))


def _recorded(db: Path, benchmark: str, args: argparse.Namespace, strategies: str) -> Any:
    """The newest eval run of this slice, samples and strategies in the log, if any."""
    if not db.exists():
        return None
    from codeens.storage import Store

    wanted = {
        "benchmark": benchmark,
        "task_ids": SLICE_SETS[args.slices][benchmark].split(","),
        "strategies": strategies.split(","),
        "samples": args.samples,
    }
    for run in Store(db).runs(limit=200):
        spec = json.loads(run.config_json or "{}")
        if run.kind == "eval" and all(spec.get(k) == v for k, v in wanted.items()):
            return run
    return None


def run_eval(
    args: argparse.Namespace, benchmark: str, extra: list[str], strategies: str
) -> dict[str, Any]:
    spec_args = [
        "eval",
        benchmark,
        "--problems",
        SLICE_SETS[args.slices][benchmark],
        "--samples",
        str(args.samples),
        "--strategies",
        strategies,
        *extra,
    ]
    tail = ["--db", str(args.db), "--json", "--quiet"]
    label = " ".join(["codeens", *spec_args[:3], "...", *spec_args[4:], *tail])
    run = _recorded(args.db, benchmark, args, strategies)
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


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several eval runs of one slice as one table: the strategy groups ran one after the
    other on the same log, so the sample pass (and every model row) of the later runs was
    served from the earlier one's generations and the strategies chose among the same
    candidates. Times add up; each run keeps its command."""
    out = dict(parts[0])
    out["strategies"] = {k: v for part in parts for k, v in part["strategies"].items()}
    out["wall_s"] = sum(part["wall_s"] for part in parts)
    out["runs"] = [{"run_id": p["run_id"], "command": p["command"]} for p in parts]
    by_task = {t["task_id"]: dict(t, strategies=dict(t["strategies"])) for t in out["per_task"]}
    for part in parts[1:]:
        for task in part["per_task"]:
            if task["task_id"] in by_task:
                by_task[task["task_id"]]["strategies"].update(task["strategies"])
    out["per_task"] = list(by_task.values())
    return out


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def ci(pair: list[float | None]) -> str:
    return f"{pct(pair[0])}-{pct(pair[1])}"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cascade_thresholds(db: Path, run_ids: list[str]) -> str:
    """The thresholds the cascade children of an eval run used, as recorded in their traces
    (the default changed between the two slices)."""
    from codeens.storage import Store

    store = Store(db)
    seen: set[str] = set()
    for child in (c for run_id in run_ids for c in store.children(run_id)):
        if child.strategy != "cascade":
            continue
        for decision in store.decisions(child.id):
            trace = json.loads(decision.trace_json or "{}")
            if "thresholds" in trace:
                seen.add(str(trace["thresholds"]))
    return ", ".join(sorted(seen)) or "-"


def lost(row: dict[str, Any], problems: int) -> str:
    """Problems where a program the strategy saw passes the hidden tests and its choice does
    not: every problem it passes is one where its oracle holds, so oracle minus pass@1."""
    if row["oracle"] is None or row["pass@1"] is None:
        return "-"
    return str(round(problems * (row["oracle"] - row["pass@1"])))


def table(summary: dict[str, Any], described: dict[str, str]) -> list[str]:
    lines = [
        f"**{summary['benchmark']} {summary['split']}**, {described[summary['benchmark']]}: "
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
        "| strategy | pass@1 % (95% CI) | oracle % | selection eff. % | lost | tokens | cost | "
        "p50 / p95 s | escalated % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["strategies"].items():
        lines.append(
            f"| {name} | {pct(row['pass@1'])} ({ci(row['pass@1_ci'])}) | "
            f"{pct(row['oracle'])} | {pct(row['selection_efficiency'])} | "
            f"{lost(row, summary['problems_done'])} | {row['tokens']} | "
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
        *(
            [f"Cascade thresholds per stage, as recorded: {summary['cascade_thresholds']}.", ""]
            if "cascade" in summary["strategies"]
            else []
        ),
        *[
            f"Command: `{run['command']}` (run `{run['run_id']}`)"
            for run in summary.get("runs", [summary])
        ],
        "",
    ]
    return lines


def _earlier(path: Path, exclude: list[str]) -> dict[str, dict[str, Any]]:
    """The summaries of the last tabulation, by benchmark, except those in ``exclude``."""
    if not path.exists():
        return {}
    out = {}
    for summary in json.loads(path.read_text(encoding="utf-8")):
        if summary["benchmark"] not in exclude:
            summary.setdefault("cascade_thresholds", "-")
            out[summary["benchmark"]] = summary
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument(
        "--strategies",
        action="append",
        help="Comma-separated; given again, a further eval run over the same slice whose "
        "strategies join the same table (default: vote,majority,codebertscore,cascade,"
        "score-ensemble,moa).",
    )
    parser.add_argument("--mbpp-data", type=Path, default=None, help="Default: shipped copy.")
    parser.add_argument("--db", type=Path, default=DB)
    parser.add_argument("--no-readme", action="store_true", help="Leave README.md alone.")
    parser.add_argument(
        "--reuse", action="store_true", help="Tabulate finished runs of the same slices again."
    )
    parser.add_argument("--only", choices=sorted(SLICE_SETS["readme"]), help="One benchmark.")
    parser.add_argument(
        "--slices",
        choices=sorted(SLICE_SETS),
        default="readme",
        help="readme: the compared slices; heldout: the offset ones nothing is tuned on.",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.db == DB and unpack(args.db):
        print(f"log restored from {ARCHIVE.name}", file=sys.stderr)
    extra = {
        "humaneval": [],
        "mbpp": ["--split", "test", *(["--data", str(args.mbpp_data)] if args.mbpp_data else [])],
    }
    names = [args.only] if args.only else ["humaneval", "mbpp"]
    groups = args.strategies or ["vote,majority,codebertscore,cascade,score-ensemble,moa"]
    summaries = [merged([run_eval(args, n, extra[n], g) for g in groups]) for n in names]
    for summary in summaries:
        run_ids = [r["run_id"] for r in summary["runs"]]
        summary.setdefault("cascade_thresholds", cascade_thresholds(args.db, run_ids))
    stem = "eval_headline" if args.slices == "readme" else f"eval_{args.slices}"
    # A slice not run this time keeps its earlier table, said to be earlier.
    earlier = _earlier(RESULTS / f"{stem}.json", exclude=names)
    missing = [n for n in SLICE_SETS[args.slices] if n not in names and n not in earlier]
    body = [
        f"Embedded Qwen2.5-Coder pair on 2 CPU cores; `python benchmarks/eval_headline.py "
        f"--samples {args.samples} "
        + " ".join(f"--strategies {g}" for g in groups)
        + f" --slices {args.slices}`. "
        "Pass rates are on the "
        "hidden tests, with 95% bootstrap intervals over problems; the oracle is the share of "
        "problems where some program the strategy saw passes; selection efficiency is "
        "pass@1 / oracle; lost counts the problems where it held and the choice failed.",
        "",
        *(
            ["Not run yet: " + ", ".join(f"the {n} slice" for n in missing) + ".", ""]
            if missing
            else []
        ),
    ]
    for summary in summaries:
        body += table(summary, DESCRIPTIONS[args.slices])
    for summary in earlier.values():
        strategies = ",".join(summary["strategies"])
        body += [
            f"Not rerun this time: the {summary['benchmark']} table below is the earlier run's "
            f"(strategies {strategies}).",
            "",
            *table(summary, DESCRIPTIONS[args.slices]),
        ]
    summaries += earlier.values()
    text = "\n".join(body)
    (RESULTS / f"{stem}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"{stem}.json").write_text(json.dumps(summaries, indent=1), "utf-8")
    print(text)
    if not args.no_readme:
        readme_block(MARKERS[args.slices], text)


def readme_block(marker: str, text: str) -> None:
    """Put ``text`` between the README's ``<!-- marker:start/end -->`` lines, if present."""
    readme = ROOT / "README.md"
    old = readme.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in old and end in old:
        new = re.sub(
            re.escape(start) + ".*?" + re.escape(end),
            lambda _: f"{start}\n{text}\n{end}",
            old,
            flags=re.S,
        )
        readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
