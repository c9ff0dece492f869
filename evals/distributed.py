"""``codeens eval --ray``: an eval's problems as Ray tasks, the log written by the driver.

Each problem is one task (:func:`solve_problem`) doing what the serial runner does for it
(:func:`codeens.evals.runner.one_problem`): the sample pass, one solve per strategy and the
hidden pass. A task works on a SQLite file of its own seeded with the problem's rows from
the real log (:mod:`codeens.storage.transfer`) and returns the rows it added; the driver
appends them as each task finishes, so the real log has only whole problems in it and
``--resume`` and the summary work as for a serial run.

A worker process keeps its sandbox pool and loaded models from one task to the next, for
the run whose spec it last saw. Tasks whose worker dies are retried by Ray (a problem is
idempotent: it starts again from the same rows). Endpoint members keep their concurrency
cap across the cluster: one named Ray actor per base URL hands out its request slots.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import hashlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from codeens.evals.runner import load_problems, one_problem, spec_of
from codeens.evals.spec import EvalSpec
from codeens.executions import ExecutionCache
from codeens.generation import Generator
from codeens.progress import Progress
from codeens.storage import Run, Store
from codeens.storage.transfer import RowBatch, append, changes, load, snapshot

# How often Ray reruns a problem whose worker process died before it finished.
RETRIES = 3


class RemoteFailure(Exception):
    """A task raised on a worker (not a worker death, which is retried)."""


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What one problem's task hands back: its new rows, the notes it made and where and
    how long it ran."""

    index: int
    rows: RowBatch
    notes: tuple[str, ...]
    node: str
    pid: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class ClusterStats:
    """How the run went on the cluster: tasks, where they ran, and time spent."""

    tasks: int
    nodes: int
    workers: int
    task_s: float  # summed time inside the tasks
    wall_s: float  # the driver's wall time, from connecting to the last result

    def line(self) -> str:
        overhead = (self.wall_s - self.task_s / max(1, self.workers)) / max(1, self.tasks)
        return (
            f"ray: {self.tasks} tasks on {self.nodes} node(s), {self.workers} worker "
            f"process(es); {self.task_s:.1f} s inside tasks, {self.wall_s:.1f} s wall, "
            f"{1000 * overhead:.0f} ms overhead per task"
        )


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (None: start a local one for this run).

    ConnectionError with one line when it cannot: Ray itself retries an address where
    nothing answers for minutes, so a host:port is knocked on first.
    """
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    host, _, port = (address or "").rpartition(":")
    if address is not None and host and port.isdigit() and "://" not in address:
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise ConnectionError(f"no Ray cluster answers at {address}: {exc}") from exc
    try:
        ray.init(
            address=address,
            include_dashboard=False if address is None else None,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, ray.exceptions.RayError) as exc:
        first = (str(exc) or type(exc).__name__).splitlines()[0]
        raise ConnectionError(f"cannot join the Ray cluster at {address}: {first}") from exc


def execute(
    run: Run, store: Store, progress: Progress, address: str | None
) -> tuple[Run, ClusterStats]:
    """Do (or finish) the run on the cluster at ``address``; as ``runner.execute`` does,
    KeyboardInterrupt (and any failure) marks it ``interrupted`` and propagates.

    What Ray prints meanwhile (a worker that died, a retry) goes to stderr: stdout is the
    command's (``--json``).
    """
    with contextlib.redirect_stdout(sys.stderr):
        return _execute(run, store, progress, address)


def _execute(
    run: Run, store: Store, progress: Progress, address: str | None
) -> tuple[Run, ClusterStats]:
    import ray

    spec = spec_of(run)
    problems = load_problems(spec)
    started = time.monotonic()
    run.status = "running"
    store.write(run)
    connect(address)
    remote = ray.remote(max_retries=RETRIES)(solve_problem)
    pending: dict[Any, int] = {}
    done = 0
    task_s = 0.0
    where: set[tuple[str, int]] = set()
    try:
        for index, item in enumerate(problems):
            rows = snapshot(store, run.id, item.task_id, f"{run.id}-{index:04d}-")
            pending[remote.remote(run.config_json, run.id, index, rows)] = index
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    result: TaskResult = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    first = (str(exc.cause) or type(exc.cause).__name__).splitlines()[0]
                    raise RemoteFailure(f"{problems[index].task_id}: {first}") from exc
                append(store, result.rows)
                done += 1
                task_s += result.seconds
                where.add((result.node, result.pid))
                for note in result.notes:
                    progress.note(f"{problems[index].task_id}: {note}")
                progress.update(f"{problems[index].task_id} ({done}/{len(problems)} done)")
    except BaseException:
        run.status = "interrupted"
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    else:
        run.status = "done"
    finally:
        wall = time.monotonic() - started
        run.wall_s += wall
        store.write(run)
        ray.shutdown()
    nodes = len({node for node, _ in where})
    return run, ClusterStats(len(problems), nodes, len(where), task_s, wall)


class _Notes(Progress):
    """A silent progress that keeps the lines meant to stay, for the driver to print."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


@dataclasses.dataclass
class _Worker:
    """What a worker process keeps between tasks of one run's spec."""

    key: str
    spec: EvalSpec
    sandbox: Any
    base: Generator | None = None
    problems: list[Any] = dataclasses.field(default_factory=list)

    def close(self) -> None:
        if self.base is not None:
            self.base.close()
        self.sandbox.close()


_WORKER: list[_Worker] = []  # at most one: the spec this process last worked for


def _close_workers() -> None:
    while _WORKER:
        _WORKER.pop().close()


atexit.register(_close_workers)


def _worker(spec_json: str) -> _Worker:
    """This process's sandbox pool and models for ``spec_json``, opened on first use."""
    key = hashlib.sha256(spec_json.encode()).hexdigest()
    if _WORKER and _WORKER[0].key == key:
        return _WORKER[0]
    _close_workers()
    spec = EvalSpec.model_validate_json(spec_json)
    worker = _Worker(key, spec, spec.config.sandbox.open(), problems=load_problems(spec))
    _WORKER.append(worker)
    _share_endpoint_slots()
    return worker


def solve_problem(spec_json: str, run_id: str, index: int, seed: RowBatch) -> TaskResult:
    """One eval problem on this worker (the Ray task); see the module doc."""
    from codeens.solve import load_strategy

    started = time.perf_counter()
    worker = _worker(spec_json)
    spec = worker.spec
    models = [spec.config.model(name) for name in spec.models]
    strategies = [load_strategy(name, spec.config) for name in spec.strategies]
    notes = _Notes()
    with tempfile.TemporaryDirectory(prefix="codeens-ray-") as tmp:
        store = Store(Path(tmp) / "problem.sqlite")
        try:
            load(store, seed)
            if worker.base is None:  # its store is never used: each task reads its own
                worker.base = Generator(store, run_id, charge_cached=True)
            one_problem(
                run_id, index, worker.problems[index], spec, models, strategies,
                store=store, generator=worker.base.for_run(run_id, store),
                sandbox=worker.sandbox, executions=ExecutionCache(), progress=notes,
            )  # fmt: skip
            rows = changes(store, seed)
        finally:
            store.engine.dispose()
    return TaskResult(
        index=index,
        rows=rows,
        notes=tuple(notes.lines),
        node=_node_id(),
        pid=os.getpid(),
        seconds=time.perf_counter() - started,
    )


def _node_id() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside a Ray worker (a direct call in a test)
        return "local"


def _share_endpoint_slots() -> None:
    """Make endpoint members in this process draw request slots from the cluster-wide
    actor of their base URL instead of a per-process semaphore."""
    from codeens.models.openai_compat import OpenAICompat

    OpenAICompat.endpoints.slots_factory = cluster_slots


def cluster_slots(base_url: str, size: int) -> Any:
    """A semaphore-like object backed by one named actor per base URL (created by the
    first worker that asks; later sizes for that URL are ignored, as in one process)."""
    import ray

    name = "codeens-slots-" + hashlib.sha256(base_url.encode()).hexdigest()[:16]
    actor = (
        _slots_actor()
        .options(name=name, namespace="codeens", get_if_exists=True, lifetime="detached")
        .remote(size)
    )
    return ClusterSlots(actor, ray)


class ClusterSlots:
    """``acquire``/``release`` like threading.BoundedSemaphore, on a Ray actor."""

    def __init__(self, actor: Any, ray: Any) -> None:
        self._actor = actor
        self._ray = ray

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return bool(self._ray.get(self._actor.acquire.remote()))

    def release(self) -> None:
        self._ray.get(self._actor.release.remote())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@functools.cache
def _slots_actor() -> Any:
    import asyncio

    import ray

    @ray.remote(num_cpus=0, max_concurrency=1000)  # type: ignore[call-overload]
    class Slots:
        def __init__(self, size: int) -> None:
            self.semaphore = asyncio.Semaphore(size)

        async def acquire(self) -> bool:
            await self.semaphore.acquire()
            return True

        async def release(self) -> None:
            self.semaphore.release()

    return Slots
