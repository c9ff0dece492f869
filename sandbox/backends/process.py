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

import ctypes
import fcntl
import functools
import os
import platform
import queue
import resource
import shutil
import signal
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
    parse_report,
)
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.testfile import TestSuite

GRACE_S = 2.0
SLOT_BASE = 1_990_000  # first uid handed to candidates when running as root
SLOT_RANGE = 4096  # uids tried when claiming slots (other codeens processes hold some)
LOCK_DIR = "/run/codeens-sandbox"  # root-only lock files: which slot uids are taken
NPROC = 64  # processes (threads included) a slot uid may have
NPROC_HEADROOM = 64  # without root: processes allowed beyond what the user already runs
TMPFS_OPTIONS = b"size=64m,mode=1777"
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
INSIDE_WORKDIR = "/tmp/work"

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 1 << 14
MS_PRIVATE = 1 << 18

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


# ------------------------------------------------------------------------ kernel calls

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


def _check(rc: int) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags))


def _mount(
    source: bytes | None, target: str, fstype: bytes | None, flags: int, data: bytes | None
) -> None:
    _check(_libc.mount(source, target.encode(), fstype, flags, data))


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid``, whatever session or namespace it made for itself.

    A helper started as that uid signals everything it may signal: kill(-1), three times
    for good measure (a process being killed cannot fork, and children made during the
    sweep are reached by it).
    """
    helper = shutil.which("kill", path="/usr/bin:/bin")
    if helper is not None:
        command = [helper, "-s", "KILL", "--", "-1", "-1", "-1"]
    else:
        python = _interpreter_for(uid) or sys.executable
        command = [python, "-I", "-c", KILL_ALL]
    try:
        subprocess.run(
            command,
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        pass


KILL_ALL = """import os, signal
for _ in range(3):
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# ------------------------------------------------------------------ the confinement


@dataclass(frozen=True)
class _Plan:
    """What the driver's preexec step does (root only)."""

    uid: int
    dirs: tuple[str, ...]
    hide_proc: bool


def _attempt(failed: list[str], what: str, step: functools.partial[None]) -> bool:
    try:
        step()
    except OSError as exc:
        failed.append(f"{what} ({exc.strerror or exc})")
        return False
    return True


def _confine(plan: _Plan, report_fd: int) -> None:
    """Runs in the forked driver before exec, as root: namespaces, mounts, limits, uid.

    Steps that fail are written to ``report_fd``; the uid switch must succeed (an error
    there aborts the start). Popen's own user/group switch would come before this, too
    early for the privileged steps, so it is done here, last.
    """
    failed: list[str] = []
    private = _attempt(failed, "mount namespace", functools.partial(_unshare, CLONE_NEWNS))
    private = private and _attempt(
        failed,
        "private mounts",
        functools.partial(_mount, None, "/", None, MS_REC | MS_PRIVATE, None),
    )
    for flag, what in (
        (CLONE_NEWNET, "network namespace"),
        (CLONE_NEWPID, "pid namespace"),
        (CLONE_NEWIPC, "ipc namespace"),
    ):
        _attempt(failed, what, functools.partial(_unshare, flag))
    mounted: list[str] = []
    if private:
        mounted = _private_mounts(plan, failed)
    else:
        hidden = ("/proc",) if plan.hide_proc else ()
        failed.extend(f"{path} (no private mounts)" for path in plan.dirs + hidden)
    if "/tmp" in mounted:
        os.mkdir(INSIDE_WORKDIR, 0o700)
        os.chown(INSIDE_WORKDIR, plan.uid, plan.uid)
        os.chdir(INSIDE_WORKDIR)
    else:
        os.chdir("/")
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
    os.write(report_fd, "\n".join(failed).encode())
    os.setgroups([])
    os.setgid(plan.uid)
    os.setuid(plan.uid)


def _private_mounts(plan: _Plan, failed: list[str]) -> list[str]:
    """Fresh tmpfs over each writable shared directory, and /proc without others' processes."""
    mounted = []
    for path in plan.dirs:
        step = functools.partial(
            _mount, b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, TMPFS_OPTIONS
        )
        if _attempt(failed, path, step):
            mounted.append(path)
    if plan.hide_proc:
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        _attempt(
            failed,
            "/proc",
            functools.partial(_mount, b"proc", "/proc", b"proc", flags, b"hidepid=2"),
        )
    return mounted


def _limit_nproc(limit: int) -> None:
    """Preexec step without root: cap the user's processes (it cannot raise the hard cap)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def _user_tasks(uid: int) -> int:
    """Processes and threads whose real uid is ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as handle:
                fields = _status_fields(handle.read())
        except OSError:
            continue
        if fields.get("Uid", "-1").split()[:1] == [str(uid)]:
            total += int(fields.get("Threads", "1").strip() or "1")
    return total


def _status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


def _proc_per_mount() -> bool:
    """Linux >= 5.8 gives each proc mount its own options; older kernels share them with
    the host's /proc, so hidepid is only used where it cannot leak to the host."""
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


@functools.cache
def _interpreter_for(uid: int) -> str | None:
    """A Python the unprivileged ``uid`` can start (the venv's may live under /root)."""
    seen: list[str] = []
    for path in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(path)
        if real in seen or not os.path.isfile(real):
            continue
        seen.append(real)
        try:
            done = subprocess.run(
                [real, "-I", "-c", "import json, select, socket"],
                user=uid,
                group=uid,
                extra_groups=[],
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return real
    return None


# ------------------------------------------------------------------------ uid slots


@dataclass
class _Slot:
    """One worker slot: the uid its runs get (root only) and the lock that reserves it."""

    uid: int | None
    lock_fd: int | None = None

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _claim_uids(count: int) -> list[_Slot]:
    """Reserve ``count`` slot uids no other codeens process on this host holds.

    An exclusive flock on a root-only file per uid; the lock lasts as long as the sandbox.
    Where the lock directory cannot be used, the first ``count`` uids are taken unlocked.
    """
    try:
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        info = os.lstat(LOCK_DIR)
        usable = info.st_uid == 0 and (info.st_mode & 0o077) == 0 and os.path.isdir(LOCK_DIR)
    except OSError:
        usable = False
    if not usable:
        return [_Slot(SLOT_BASE + i) for i in range(count)]
    slots: list[_Slot] = []
    for uid in range(SLOT_BASE, SLOT_BASE + SLOT_RANGE):
        if len(slots) == count:
            break
        try:
            fd = os.open(f"{LOCK_DIR}/{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        slots.append(_Slot(uid, fd))
    return slots


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

    def __init__(self, limits: Limits, workers: int = 1) -> None:
        super().__init__(limits, workers)
        slots = _claim_uids(self.workers) if os.geteuid() == 0 else []
        if not slots:
            slots = [_Slot(None) for _ in range(self.workers)]
        self._slots: queue.Queue[_Slot] = queue.Queue()
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
            _kill_session(pid)
        while True:
            try:
                slot = self._slots.get_nowait()
            except queue.Empty:
                return
            self._free(slot)

    def _take_slot(self) -> _Slot | None:
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

    def _free(self, slot: _Slot) -> None:
        if slot.uid is not None:
            _kill_uid(slot.uid)
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
        self, slot: _Slot, candidate: Candidate, suite: TestSuite, started: float
    ) -> ExecutionResult:
        uid = slot.uid
        python = _interpreter_for(uid) if uid is not None else None
        if uid is not None and python is not None:
            _kill_uid(uid)
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
            _kill_session(launch.proc.pid)
            with self._lock:
                self._live.discard(launch.proc.pid)
            if uid is not None and python is not None:
                _kill_uid(uid)
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
            _kill_session(proc.pid)
            proc.communicate()
            result = parse_report(
                b"", candidate, suite, self.name, launch.isolation, time.monotonic() - started
            )
            result.verdict = Verdict.TIMEOUT
            result.message = "deadline exceeded (enforced by the host)"
            return result
        return parse_report(
            out, candidate, suite, self.name, launch.isolation, time.monotonic() - started
        )

    def _start_confined(self, uid: int, python: str) -> _Launch:
        """As root: the driver enters its namespaces and drops to the slot uid (_confine)."""
        plan = _Plan(
            uid=uid,
            dirs=tuple(d for d in PRIVATE_DIRS if os.path.isdir(d)),
            hide_proc=_proc_per_mount(),
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
                preexec_fn=functools.partial(_confine, plan, write_fd),
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
                _kill_session(proc.pid)
                proc.communicate()
                raise
            launch.cleanup.append(launch.workdir)
        return launch

    def _start_plain(self, root: bool) -> _Launch:
        """Without root (or without an interpreter a spare uid can run): today's limits."""
        workdir = tempfile.mkdtemp(prefix="codeens-run-")
        limit = _user_tasks(os.getuid()) + NPROC_HEADROOM
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", driver_source()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=workdir,
                env=_environment(workdir),
                start_new_session=True,
                preexec_fn=functools.partial(_limit_nproc, limit),
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


def _root_isolation(plan: _Plan, failed: list[str]) -> str:
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
