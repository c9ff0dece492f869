"""The process backend: the same trusted driver, started as a plain host process.

For machines without Docker. Each candidate gets its own process session, resource limits
(address space, CPU, file size, processes), an empty environment and a wall-clock deadline
enforced here.

When codeens runs as root, each run also gets an unprivileged uid of its own (one per
worker slot), private mount, network, PID and IPC namespaces, fresh size-capped tmpfs over
/tmp, /var/tmp, /dev/shm and /run/lock, and every process of its uid is killed before and
after the run. Steps the kernel refuses are skipped and named in the result.

It stays weaker isolation than docker: world-readable host files stay readable, memory is
bounded by RLIMIT_AS only, and the kernel is shared without a seccomp filter. Without root
it cannot protect the user's own files, the network or /tmp. Every result says what held.
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from codeens.sandbox.backends.base import (
    Candidate,
    Sandbox,
    driver_input,
    driver_source,
)
from codeens.sandbox.backends.confine import (
    INSIDE_WORKDIR,
    NPROC,
    Plan,
    Slot,
    claim_uids,
    confine,
    interpreter_for,
    kill_session,
    kill_uid,
    limit_nproc,
    proc_per_mount,
    user_tasks,
)
from codeens.sandbox.results import ExecutionResult, Limits
from codeens.sandbox.testfile import TestSuite

GRACE_S = 2.0
NPROC_HEADROOM = 64  # without root: processes allowed beyond what the user already runs
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")

NOT_CONTAINED = "host files readable where world-readable, no memory cgroup, shared kernel"


def host_warning() -> str:
    """The one line the CLI prints whenever the process backend is chosen."""
    line = (
        "warning: --backend process is weaker isolation than docker: candidates can read "
        "world-readable host files, memory is capped by RLIMIT_AS only (no cgroup), and the "
        "kernel is shared without seccomp"
    )
    if os.geteuid() != 0:
        line += (
            "; not running as root, so candidates can also read and change your own files, "
            "reach the network and share /tmp"
        )
    return line


# ---------------------------------------------------------------------- the backend


@dataclass
class _Launch:
    """A started driver and what the run needs to finish and clean up."""

    proc: subprocess.Popen[bytes]
    workdir: str
    isolation: str
    cleanup: list[str] = field(default_factory=list)


class ProcessSandbox(Sandbox):
    """Run each candidate in a separate, as far as possible confined, process on the host."""

    name = "process"
    isolation = "process (weaker isolation than docker; each result says what held)"

    @classmethod
    def warning(cls) -> str | None:
        return host_warning()

    def __init__(self, limits: Limits, workers: int = 1) -> None:
        super().__init__(limits, workers)
        slots = claim_uids(self.workers) if os.geteuid() == 0 else []
        if not slots:
            slots = [Slot(None) for _ in range(self.workers)]
        self._slots: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self._slots.put(slot)
        self._live: set[int] = set()
        # Re-entrant: close() may run from a signal handler while this thread holds it.
        self._lock = threading.RLock()
        self._closed = False

    def close(self) -> None:
        """Kill the drivers still running and give idle slot uids back."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for pid in live:
            kill_session(pid)
        while True:
            try:
                slot = self._slots.get_nowait()
            except queue.Empty:
                return
            self._free(slot)

    def _take_slot(self) -> Slot | None:
        """A free slot, waiting for one; None once the sandbox is closed."""
        while not self._closed:
            try:
                slot = self._slots.get(timeout=0.5)
            except queue.Empty:
                continue
            if not self._closed:
                return slot
            self._free(slot)
        return None

    def _free(self, slot: Slot) -> None:
        if slot.uid is not None:
            kill_uid(slot.uid)
        slot.release()

    def run(self, candidate: Candidate, suite: TestSuite) -> ExecutionResult:
        started = time.monotonic()
        slot = self._take_slot()
        if slot is None:
            return self.infra_error(candidate, suite, "the sandbox was closed")
        try:
            return self._run_in(slot, candidate, suite, started)
        finally:
            if self._closed:
                self._free(slot)
            else:
                self._slots.put(slot)

    def _run_in(
        self, slot: Slot, candidate: Candidate, suite: TestSuite, started: float
    ) -> ExecutionResult:
        uid = slot.uid
        python = interpreter_for(uid) if uid is not None else None
        if uid is not None and python is not None:
            kill_uid(uid)
        try:
            if uid is not None and python is not None:
                launch = self._start_confined(uid, python)
            else:
                launch = self._start_plain(uid is not None)
        except (OSError, subprocess.SubprocessError) as exc:
            return self.infra_error(candidate, suite, f"cannot start the driver: {exc}")
        with self._lock:
            self._live.add(launch.proc.pid)
        try:
            return self._finish(launch, candidate, suite, started)
        finally:
            kill_session(launch.proc.pid)
            with self._lock:
                self._live.discard(launch.proc.pid)
            if uid is not None and python is not None:
                kill_uid(uid)
            for path in launch.cleanup:
                shutil.rmtree(path, ignore_errors=True)

    def _finish(
        self, launch: _Launch, candidate: Candidate, suite: TestSuite, started: float
    ) -> ExecutionResult:
        payload = driver_input(
            candidate, suite, self.limits, workdir=launch.workdir, sweep=False, once=True
        )
        proc = launch.proc
        try:
            out, _ = proc.communicate(payload, timeout=self.limits.timeout + GRACE_S)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.communicate()
            return self.report(
                b"", candidate, suite, started, timed_out=True, isolation=launch.isolation
            )
        return self.report(out, candidate, suite, started, isolation=launch.isolation)

    def _start_confined(self, uid: int, python: str) -> _Launch:
        """As root: the driver enters its namespaces and drops to the slot uid (confine)."""
        plan = Plan(
            uid=uid,
            dirs=tuple(d for d in PRIVATE_DIRS if os.path.isdir(d)),
            hide_proc=proc_per_mount(),
        )
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [python, "-I", "-c", driver_source()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_environment(INSIDE_WORKDIR),
                start_new_session=True,
                preexec_fn=functools.partial(confine, plan, write_fd),
            )
        finally:
            os.close(write_fd)
            failed = _read_all(read_fd).decode("utf-8", "replace").split("\n")
            os.close(read_fd)
        failed = [f for f in failed if f]
        launch = _Launch(proc, INSIDE_WORKDIR, _root_isolation(plan, failed))
        if _failed(failed, "/tmp"):
            try:
                launch.workdir = _host_workdir(uid)
            except OSError:
                kill_session(proc.pid)
                proc.communicate()
                raise
            launch.cleanup.append(launch.workdir)
        return launch

    def _start_plain(self, root: bool) -> _Launch:
        """Without root (or without an interpreter a spare uid can run): today's limits."""
        workdir = tempfile.mkdtemp(prefix="codeens-run-")
        limit = user_tasks(os.getuid()) + NPROC_HEADROOM
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", driver_source()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=workdir,
                env=_environment(workdir),
                start_new_session=True,
                preexec_fn=functools.partial(limit_nproc, limit),
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return _Launch(proc, workdir, _plain_isolation(root, limit), [workdir])


def _host_workdir(uid: int) -> str:
    """Where /tmp could not be made private: a 0700 host directory owned by the slot uid."""
    path = tempfile.mkdtemp(prefix="codeens-run-")
    try:
        os.chown(path, uid, uid)
    except OSError:
        os.rmdir(path)
        raise
    return path


def _environment(workdir: str) -> dict[str, str]:
    return {"PATH": os.defpath, "HOME": workdir, "LANG": "C.UTF-8", "TMPDIR": workdir}


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _root_isolation(plan: Plan, failed: list[str]) -> str:
    """What held for a confined run, in words; steps that failed are named."""
    parts = [f"uid {plan.uid}"]
    private = [d for d in plan.dirs if not _failed(failed, d)]
    if private:
        parts.append("private " + " ".join(private))
    if not _failed(failed, "network namespace"):
        parts.append("no network")
    if not _failed(failed, "pid namespace"):
        parts.append("pid namespace")
    if plan.hide_proc and not _failed(failed, "/proc"):
        parts.append("other users' processes hidden")
    parts.append(f"{NPROC} processes")
    text = "process (weaker isolation than docker: " + ", ".join(parts)
    text += "; " + NOT_CONTAINED
    if failed:
        text += "; could not set up: " + ", ".join(failed)
    return text + ")"


def _failed(failed: list[str], what: str) -> bool:
    return any(f.startswith(what + " (") for f in failed)


def _plain_isolation(root: bool, limit: int) -> str:
    held = "runs as the invoking user, own session, " + f"{limit} processes"
    if root:
        held = "runs as root (no Python interpreter an unprivileged uid can run), own session"
    return (
        f"process (weaker isolation than docker: {held}; not contained: the user's files, "
        f"the network, /tmp, processes that leave the session; {NOT_CONTAINED})"
    )
