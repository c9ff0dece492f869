"""Split comparisons against the in-process path, test by test, on real benchmark programs.

Every HumanEval canonical solution and every MBPP reference solution (test split) runs
against its hidden tests twice in one warm Docker pool: split (the default: the driver holds
the expected values) and in-process (``suite.in_process()``, the path before). A wrong
program made from each (its entry point returns its first argument, or None) runs the same
way. Each test's pass/fail must agree between the two; the counts are printed.
``--recorded DB`` adds every distinct program a recorded eval generated for those problems
(read from a copy of the database, through Store).

Usage: .venv/bin/python benchmarks/split_equivalence.py [--workers 2] [--limit N]
       [--recorded benchmarks/results/eval_headline.db]
(run it from outside the checkout or with the installed package first on sys.path).
tests/test_split_equivalence.py runs the same comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from codeens.evals.benchmarks import BenchmarkProblem
from codeens.evals.humaneval import HumanEval
from codeens.evals.mbpp import MBPP
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.image import DEFAULT_IMAGE
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.testfile import TestSuite, parse_test_suite

LIMITS = Limits(timeout=20.0, memory_mb=512)


@dataclass(frozen=True)
class Job:
    group: str
    label: str
    source: str
    suite: TestSuite


@dataclass
class Tally:
    """One group's counts: programs, tests, tests split, tests whose pass/fail agreed."""

    programs: int = 0
    tests: int = 0
    split: int = 0
    agree: int = 0
    passed: int = 0
    disagreements: list[str] = field(default_factory=list)

    def line(self, group: str) -> str:
        return (
            f"{group}: {self.programs} programs, {self.tests} tests "
            f"({self.split} split, {self.tests - self.split} in-process); "
            f"split and in-process agree on {self.agree}/{self.tests} "
            f"({self.passed} passed)"
        )


def wrong(source: str, entry: str) -> str:
    """The program with its entry point replaced by one that returns its first argument."""
    return f"{source}\n\ndef {entry}(*args, **kwargs):\n    return args[0] if args else None\n"


def jobs(limit: int | None = None, recorded: Path | None = None) -> Iterator[Job]:
    programs = _recorded(recorded) if recorded else {}
    for name, bench in (("humaneval", HumanEval()), ("mbpp", MBPP())):
        for problem in bench.load("test")[:limit]:
            suite = parse_test_suite(problem.hidden_tests, f"{problem.task_id} hidden tests")
            suite = suite.for_entry_point(problem.entry_point)
            yield Job(f"{name} reference", problem.task_id, problem.canonical, suite)
            bad = wrong(problem.canonical, problem.entry_point)
            yield Job(f"{name} wrong", problem.task_id, bad, suite)
            for digest, code in programs.get(problem.task_id, {}).items():
                source = _program(problem, name, code)
                if source is not None:
                    yield Job(f"{name} recorded", f"{problem.task_id}#{digest}", source, suite)


def _recorded(path: Path) -> dict[str, dict[str, str]]:
    """Extracted code of every successful recorded generation: target -> hash -> code."""
    from codeens.storage import Store

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "copy.db"
        shutil.copyfile(path, copy)
        rows = Store(copy).generations_of(None)
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.code and row.code_hash:
            found.setdefault(row.target, {}).setdefault(row.code_hash, row.code)
    return found


def _program(problem: BenchmarkProblem, benchmark: str, code: str) -> str | None:
    """The program an eval runs for ``code`` (as evals.runner builds it)."""
    from codeens.problem import fill, parse_problem

    path = Path(f"<{benchmark}>") / (problem.task_id.replace("/", "_") + ".py")
    parsed = parse_problem(problem.source, path)
    parsed = dataclasses.replace(parsed, stubs=(parsed.stub(problem.entry_point),))
    try:
        return fill(parsed, {problem.entry_point: code}, keep_tests=False)
    except ValueError:
        return None


def _both(box: DockerSandbox, job: Job) -> tuple[ExecutionResult, ExecutionResult]:
    """Split and in-process results; once more when the machine, not the program, failed."""
    candidate = Candidate(job.label, job.source)
    for _attempt in range(2):
        split = box.run(candidate, job.suite)
        plain = box.run(candidate, job.suite.in_process())
        flaky = {Verdict.TIMEOUT, Verdict.INFRA_ERROR}
        if split.verdict not in flaky and plain.verdict not in flaky:
            break
    return split, plain


def _count(tally: Tally, job: Job, split: ExecutionResult, plain: ExecutionResult) -> None:
    tally.programs += 1
    tally.tests += len(job.suite.cases)
    tally.split += sum(1 for c in job.suite.cases if c.isolation == "split")
    for i, case in enumerate(job.suite.cases):
        a = i < len(split.tests) and split.tests[i].outcome == "passed"
        b = i < len(plain.tests) and plain.tests[i].outcome == "passed"
        tally.passed += a
        if a == b:
            tally.agree += 1
        else:
            detail = split.tests[i].message if i < len(split.tests) else split.message
            tally.disagreements.append(
                f"{job.group} {job.label} {case.name}: split {a}, in-process {b} ({detail})"
            )


def compare(
    workers: int = 2,
    limit: int | None = None,
    log: Callable[[str], None] = print,
    recorded: Path | None = None,
) -> dict[str, Tally]:
    """Run every job both ways in one pool; one tally per group."""
    tallies: dict[str, Tally] = {}
    todo = list(jobs(limit, recorded))
    with (
        DockerSandbox(LIMITS, workers=workers, image=DEFAULT_IMAGE) as box,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        for job, (split, plain) in zip(todo, pool.map(lambda j: _both(box, j), todo), strict=True):
            _count(tallies.setdefault(job.group, Tally()), job, split, plain)
    for group, tally in tallies.items():
        log(tally.line(group))
        for line in tally.disagreements:
            log("  DISAGREE " + line)
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="problems per benchmark")
    parser.add_argument("--recorded", type=Path, default=None, help="an eval database")
    args = parser.parse_args()
    tallies = compare(args.workers, args.limit, recorded=args.recorded)
    sys.exit(1 if any(t.disagreements for t in tallies.values()) else 0)


if __name__ == "__main__":
    main()
