"""Confining a host process as root: its own uid, namespaces, private temporary mounts.

The process backend's privileged half: the kernel calls (through libc), the preexec step
that puts the driver in its namespaces and drops it to a slot uid, killing every process
of a uid, and the host-wide reservation of slot uids. Nothing here runs candidate code.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

SLOT_BASE = 1_990_000  # first uid handed to candidates when running as root
SLOT_RANGE = 4096  # uids tried when claiming slots (other codeens processes hold some)
LOCK_DIR = "/run/codeens-sandbox"  # root-only lock files: which slot uids are taken
NPROC = 64  # processes (threads included) a slot uid may have
TMPFS_OPTIONS = b"size=64m,nr_inodes=16384,mode=1777"  # bounded like docker's work areas
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


def run_as(uid: int, command: list[str], *, timeout: float) -> int | None:
    """Run ``command`` as ``uid`` (its own group, no others, empty environment, no
    input or output); its exit status, or None when it could not run or timed out."""
    try:
        done = subprocess.run(
            command,
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid``, whatever session or namespace it made for itself.

    A helper started as that uid signals everything it may signal: kill(-1), three times
    for good measure (a process being killed cannot fork, and children made during the
    sweep are reached by it).
    """
    helper = shutil.which("kill", path="/usr/bin:/bin")
    if helper is not None:
        command = [helper, "-s", "KILL", "--", "-1", "-1", "-1"]
    else:
        python = interpreter_for(uid) or sys.executable
        command = [python, "-I", "-c", KILL_ALL]
    run_as(uid, command, timeout=10)


KILL_ALL = """import os, signal
for _ in range(3):
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


def kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# ------------------------------------------------------------------ the confinement


@dataclass(frozen=True)
class Plan:
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


def confine(plan: Plan, report_fd: int) -> None:
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


def _private_mounts(plan: Plan, failed: list[str]) -> list[str]:
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


def limit_nproc(limit: int) -> None:
    """Preexec step without root: cap the user's processes (it cannot raise the hard cap)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def user_tasks(uid: int) -> int:
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


def proc_per_mount() -> bool:
    """Linux >= 5.8 gives each proc mount its own options; older kernels share them with
    the host's /proc, so hidepid is only used where it cannot leak to the host."""
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


@functools.cache
def interpreter_for(uid: int) -> str | None:
    """A Python the unprivileged ``uid`` can start (the venv's may live under /root)."""
    seen: list[str] = []
    for path in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(path)
        if real in seen or not os.path.isfile(real):
            continue
        seen.append(real)
        if run_as(uid, [real, "-I", "-c", "import json, select, socket"], timeout=30) == 0:
            return real
    return None


# ------------------------------------------------------------------------ uid slots


@dataclass
class Slot:
    """One worker slot: the uid its runs get (root only) and the lock that reserves it."""

    uid: int | None
    lock_fd: int | None = None

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def claim_uids(count: int) -> list[Slot]:
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
        return [Slot(SLOT_BASE + i) for i in range(count)]
    slots: list[Slot] = []
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
        slots.append(Slot(uid, fd))
    return slots
