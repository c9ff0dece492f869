"""The Docker backend: a pool of warm, hardened containers, one fresh process per candidate.

Starting a container costs about 250 ms here, an ``exec`` into a running one about 50 ms, so
containers are started once per pool and reused. Between candidates the trusted driver (run
as the sandbox uid) kills every other process of that uid and empties every writable area,
before and after the candidate runs; nothing a candidate leaves behind reaches the next.

The containers' keeper process (``sleep`` under docker-init) runs as root with every
capability dropped, so the candidate (uid 65534) cannot signal it and break the pool.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import struct
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.errors import first_line
from codeens.sandbox.backends import docker_park
from codeens.sandbox.backends.base import (
    Candidate,
    Sandbox,
    driver_input,
    driver_source,
)
from codeens.sandbox.errors import SandboxUnavailable
from codeens.sandbox.image import DEFAULT_IMAGE
from codeens.sandbox.results import ExecutionResult, Limits
from codeens.sandbox.testfile import TestSuite

SANDBOX_USER = "65534:65534"
WORKDIR = "/work"
WRITABLE = ("/work", "/tmp", "/dev/shm")
GRACE_S = 2.0
POLL_S = 0.25
LABEL = docker_park.LABEL
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def container_options(limits: Limits, image: str, owner: str) -> dict[str, Any]:
    """The hardened ``containers.run`` keyword arguments; one place to audit them."""
    memory = f"{limits.memory_mb + 64}m"
    return {
        "image": image,
        "command": ["sleep", "infinity"],
        "detach": True,
        "init": True,
        "user": "0:0",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {
            "/work": "rw,nosuid,nodev,noexec,size=64m,nr_inodes=4096,mode=1777",
            "/tmp": "rw,nosuid,nodev,noexec,size=64m,nr_inodes=4096,mode=1777",
        },
        "shm_size": "16m",
        "ipc_mode": "private",
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": 128,
        "nano_cpus": 1_000_000_000,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        "environment": ENV,
        "hostname": "sandbox",
        "working_dir": "/",  # a tmpfs that is also the working dir gets mode 0755
        "labels": {LABEL: "1", f"{LABEL}.owner": owner},
        "stop_signal": "SIGKILL",
        # Killing it is enough: closing a pool does not wait for the removal (disk work).
        "auto_remove": True,
    }


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerSandbox(Sandbox):
    """Run candidates in a pool of warm hardened containers."""

    name = "docker"
    isolation = "docker (no network, read-only root, uid 65534, no capabilities)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        image: str = Field(DEFAULT_IMAGE, min_length=1, description="Sandbox image tag.")
        keep_warm: float = Field(
            60.0,
            ge=0,
            le=3600,
            description="Seconds a closed pool's containers stay parked for the next codeens "
            "process on this host (0: removed on close).",
        )

    def __init__(
        self,
        limits: Limits,
        workers: int = 1,
        image: str = DEFAULT_IMAGE,
        keep_warm: float = 0.0,
    ) -> None:
        super().__init__(limits, workers)
        self.image = image
        self.keep_warm = keep_warm
        self._owner = _owner()
        self._idle: queue.Queue[_Slot] = queue.Queue()
        self._all: dict[str, _Slot] = {}
        self._starting = 0  # containers being started or claimed, not yet in _all
        self._key = ""  # docker_park.pool_key once connected
        self._filler: threading.Thread | None = None
        # Re-entrant: close() may run from a signal handler while this thread holds it.
        self._lock = threading.RLock()
        self._closed = False
        self._client: Any = None
        self._ready_error: str | None = None

    # ----------------------------------------------------------------- engine and pool

    def _api(self) -> Any:
        with self._lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox was closed")
            if self._client is None and self._ready_error is None:
                self._connect()
            if self._ready_error is not None:
                raise SandboxUnavailable(self._ready_error)
            return self._client.api

    def _connect(self) -> None:
        import docker
        from docker.errors import DockerException, ImageNotFound

        try:
            client = docker.from_env(timeout=30)
            client.ping()
        except DockerException as exc:
            self._ready_error = f"Docker engine not reachable ({first_line(exc)})"
            return
        try:
            image = client.images.get(self.image)
        except ImageNotFound:
            self._ready_error = (
                f"sandbox image {self.image} not found; build it with `codeens sandbox build`"
            )
            return
        except DockerException as exc:
            self._ready_error = f"Docker engine error ({first_line(exc)})"
            return
        options = container_options(self.limits, self.image, self._owner)
        self._key = docker_park.pool_key(options, image.id)
        self._client = client
        reap_stale(client)

    def _reserve(self) -> bool:
        """Take the right to add one container to the pool, if it has room."""
        with self._lock:
            if self._closed or len(self._all) + self._starting >= self.workers:
                return False
            self._starting += 1
            return True

    def _start_container(self) -> _Slot:
        """One more container for a reserved place: a parked one if any, else a new one."""
        try:
            cid = next(iter(self._claim(1)), None)
            if cid is None:
                cid = self._client.containers.run(
                    name=docker_park.in_use_name(),
                    **container_options(self.limits, self.image, self._owner),
                ).id
        finally:
            with self._lock:
                self._starting -= 1
        slot = _Slot(cid)
        with self._lock:
            closed = self._closed
            if not closed:
                self._all[slot.cid] = slot
        if closed:  # closed while this container was starting
            _stop_all(self._client.api, [slot.cid])
            raise SandboxUnavailable("the sandbox was closed")
        return slot

    def _claim(self, count: int) -> list[str]:
        if self.keep_warm <= 0:
            return []
        try:
            return docker_park.claim(self._client.api, self._key, count)
        except Exception:  # the engine's listing failed: start new ones
            return []

    def prepare(self) -> None:
        """Connect now (tens of milliseconds), then start the pool's containers and drivers
        in the background, so that the first candidates do not wait for them. Connecting
        first leaves the threads that start containers almost nothing to run in Python:
        they wait on the engine while the caller loads its inputs."""
        try:
            api = self._api()
        except SandboxUnavailable:
            return  # run() reports it
        self._filler = threading.Thread(
            target=self._fill, args=(api,), name="docker-pool", daemon=True
        )
        self._filler.start()

    def _fill(self, api: Any) -> None:
        # The first alone: ready in about half the time two take together started at once.
        if self._reserve():
            self._warm_one(api)
        starters = []
        while self._reserve():
            starter = threading.Thread(target=self._warm_one, args=(api,), daemon=True)
            starter.start()
            starters.append(starter)
        for starter in starters:
            starter.join()

    def _warm_one(self, api: Any) -> None:
        try:
            slot = self._start_container()
            slot.server = _Server.start(api, slot.cid)
        except Exception:
            return  # the pool has room again; run() starts one and reports what fails
        self._idle.put(slot)

    def _acquire(self) -> _Slot:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            if self._reserve():
                return self._start_container()
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                if self._closed:
                    raise SandboxUnavailable("the sandbox was closed") from None

    def _discard(self, slot: _Slot) -> None:
        slot.stop_server()
        with self._lock:
            self._all.pop(slot.cid, None)
        _stop_all(self._client.api, [slot.cid])

    def close(self) -> None:
        """Park the idle containers for the next process (``keep_warm``), kill the rest (the
        engine removes them)."""
        if self._filler is not None and self.keep_warm > 0:
            self._filler.join(timeout=30)  # containers still starting are parked too
        self._release(park=True)

    def discard(self) -> None:
        """Remove every container now (on a signal: nothing is parked)."""
        self._release(park=False)

    def _release(self, *, park: bool) -> None:
        with self._lock:
            self._closed = True
            slots = dict(self._all)
            self._all.clear()
            client = self._client
        idle = set()
        while True:
            try:
                idle.add(self._idle.get_nowait().cid)
            except queue.Empty:
                break
        for slot in slots.values():
            slot.stop_server()
        if client is None:
            return
        # Only idle containers are parked: one still running a candidate is killed.
        parkable = [cid for cid in slots if cid in idle] if park else []
        rest = [cid for cid in slots if cid not in parkable]
        try:
            rest += docker_park.park(client.api, parkable, self._key, self.keep_warm)
        except Exception:
            rest += parkable
        _stop_all(client.api, rest)

    # -------------------------------------------------------------------------- running

    def run(self, candidate: Candidate, suite: TestSuite) -> ExecutionResult:
        from docker.errors import DockerException

        started = time.monotonic()
        try:
            api = self._api()
            slot = self._acquire()
        except SandboxUnavailable as exc:
            return self.infra_error(candidate, suite, str(exc))
        except DockerException as exc:
            return self.infra_error(candidate, suite, f"cannot start a container: {exc}")
        payload = driver_input(
            candidate,
            suite,
            self.limits,
            workdir=WORKDIR,
            sweep=True,
            wipe=WRITABLE,
            own_cgroup=True,
        )
        try:
            if slot.server is None:
                slot.server = _Server.start(api, slot.cid)
            out, timed_out = slot.server.request(payload, self.limits.timeout + GRACE_S)
        except (DockerException, OSError) as exc:
            self._discard(slot)
            return self.infra_error(candidate, suite, f"sandbox failure: {first_line(exc)}")
        if timed_out:
            # The driver did not answer in time: stop everything the sandbox uid runs
            # (driver included) from outside, and start a fresh driver next time.
            slot.stop_server()
            try:
                _kill_sandbox_uid(api, slot.cid)
            except DockerException:
                pass
        elif not out or b'"final": true' in out:
            slot.stop_server()  # the candidate took the driver down; restart it next run
        if (timed_out or not out) and not _running(api, slot.cid):
            self._discard(slot)
            return self.infra_error(candidate, suite, "sandbox container died during the run")
        self._idle.put(slot)
        return self.report(out, candidate, suite, started, timed_out=timed_out)


def _stop_all(api: Any, cids: list[str]) -> None:
    """Kill containers, in parallel; the engine then removes them (``auto_remove``). One
    that cannot be killed (already stopping, say) is removed outright."""

    def stop(cid: str) -> None:
        try:
            api.kill(cid)
        except Exception:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)

    threads = [threading.Thread(target=stop, args=(cid,)) for cid in cids[1:]]
    for thread in threads:
        thread.start()
    if cids:
        stop(cids[0])
    for thread in threads:
        thread.join()


class _Slot:
    """One warm container and the driver server running in it."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.server: _Server | None = None

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class _Server:
    """A long-lived ``docker exec`` of the driver; one request and one report line at a time."""

    def __init__(self, stream: Any) -> None:
        self.closed = False
        self.stream = stream
        self.sock: socket.socket = stream._sock
        self.reader = _FrameReader(self.sock)

    @classmethod
    def start(cls, api: Any, cid: str) -> _Server:
        exec_id = api.exec_create(
            cid,
            ["python3", "-I", "-c", driver_source()],
            stdin=True,
            stdout=True,
            stderr=False,
            user=SANDBOX_USER,
            workdir=WORKDIR,
            environment=ENV,
        )["Id"]
        return cls(api.exec_start(exec_id, socket=True))

    def request(self, payload: bytes, budget: float) -> tuple[bytes, bool]:
        """Send one request; return the report line (empty if the driver died) and
        whether the host deadline passed first."""
        deadline = time.monotonic() + budget
        self.sock.settimeout(budget)
        self.sock.sendall(payload)
        while True:
            line = self.reader.take_line()
            if line is not None:
                return line, False
            if self.reader.eof or self.closed:
                return b"", False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"", True
            # Short waits: a close() from another thread (a signal handler closing the
            # pool) is noticed within POLL_S even where it does not wake a blocked recv.
            self.sock.settimeout(min(remaining, POLL_S))
            try:
                self.reader.pump()
            except TimeoutError:
                continue

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.stream.close()
        self.sock.close()


def _kill_sandbox_uid(api: Any, cid: str) -> None:
    exec_id = api.exec_create(cid, ["sh", "-c", "kill -9 -1"], user=SANDBOX_USER)["Id"]
    api.exec_start(exec_id)


def _running(api: Any, cid: str) -> bool:
    try:
        return bool(api.inspect_container(cid)["State"].get("Running"))
    except Exception:
        return False


class _FrameReader:
    """Demultiplex Docker's attach stream (8-byte headers) into stdout bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.stdout = b""
        self.eof = False

    def pump(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            self.eof = True
            return
        self.buffer += chunk
        while len(self.buffer) >= 8:
            stream_type, size = struct.unpack(">BxxxL", self.buffer[:8])
            if len(self.buffer) < 8 + size:
                break
            data = self.buffer[8 : 8 + size]
            self.buffer = self.buffer[8 + size :]
            if stream_type == 1 and len(self.stdout) < (8 << 20):
                self.stdout += data

    def take_line(self) -> bytes | None:
        """The next complete stdout line, if one has arrived."""
        line, newline, rest = self.stdout.partition(b"\n")
        if not newline:
            return None
        self.stdout = rest
        return line


def reap_stale(client: Any, *, parked: bool = False) -> int:
    """Remove sandbox containers left by codeens processes on this host that are gone, and
    parked ones that expired (every parked one with ``parked``)."""
    host = socket.gethostname()
    removed, _left = docker_park.sweep(client.api, everything=parked)
    for info in client.api.containers(all=True, filters={"label": LABEL}):
        owner_host, _, pid = docker_park.owner_of(info).rpartition(":")
        if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            client.api.remove_container(info["Id"], force=True)
            removed += 1
        except Exception:
            pass
    return removed
