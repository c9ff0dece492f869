"""The Docker backend: a pool of warm, hardened containers, one fresh process per candidate.

Starting a container costs about 250 ms here, an ``exec`` into a running one about 50 ms, so
containers are started once per pool and reused. Between candidates the trusted driver (run
as the sandbox uid) kills every other process of that uid and empties every writable area,
before and after the candidate runs; nothing a candidate leaves behind reaches the next.

The containers' keeper process (``sleep`` under docker-init) runs as root with every
capability dropped, so the candidate (uid 65534) cannot signal it and break the pool.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
import time
import uuid
from typing import Any

from codeens.sandbox.backends.base import (
    Candidate,
    Sandbox,
    driver_input,
    driver_source,
    parse_report,
)
from codeens.sandbox.errors import SandboxUnavailable
from codeens.sandbox.image import DEFAULT_IMAGE
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.testfile import TestSuite

SANDBOX_USER = "65534:65534"
WORKDIR = "/work"
WRITABLE = ("/work", "/tmp", "/dev/shm")
GRACE_S = 2.0
LABEL = "codeens.sandbox"
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
        "working_dir": WORKDIR,
        "labels": {LABEL: "1", f"{LABEL}.owner": owner},
        "stop_signal": "SIGKILL",
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

    def __init__(self, limits: Limits, workers: int = 1, image: str = DEFAULT_IMAGE) -> None:
        super().__init__(limits, workers)
        self.image = image
        self._owner = _owner()
        self._idle: queue.Queue[str] = queue.Queue()
        self._all: set[str] = set()
        self._lock = threading.Lock()
        self._client: Any = None
        self._ready_error: str | None = None

    # ----------------------------------------------------------------- engine and pool

    def _api(self) -> Any:
        with self._lock:
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
            self._ready_error = f"Docker engine not reachable ({_first_line(exc)})"
            return
        try:
            client.images.get(self.image)
        except ImageNotFound:
            self._ready_error = (
                f"sandbox image {self.image} not found; build it with `codeens sandbox build`"
            )
            return
        except DockerException as exc:
            self._ready_error = f"Docker engine error ({_first_line(exc)})"
            return
        self._client = client
        reap_stale(client)

    def _start_container(self) -> str:
        container = self._client.containers.run(
            name=f"codeens-sbx-{uuid.uuid4().hex[:12]}",
            **container_options(self.limits, self.image, self._owner),
        )
        cid: str = container.id
        with self._lock:
            self._all.add(cid)
        return cid

    def _acquire(self) -> str:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            may_start = len(self._all) < self.workers
        if may_start:
            return self._start_container()
        return self._idle.get()

    def _discard(self, cid: str) -> None:
        with self._lock:
            self._all.discard(cid)
        try:
            self._client.api.remove_container(cid, force=True)
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            ids = list(self._all)
            self._all.clear()
        if self._client is None:
            return
        for cid in ids:
            try:
                self._client.api.remove_container(cid, force=True)
            except Exception:
                pass
        self._client.close()
        self._client = None

    # -------------------------------------------------------------------------- running

    def run(self, candidate: Candidate, suite: TestSuite) -> ExecutionResult:
        from docker.errors import DockerException

        started = time.monotonic()
        try:
            api = self._api()
            cid = self._acquire()
        except SandboxUnavailable as exc:
            return self.infra_error(candidate, suite, str(exc))
        except DockerException as exc:
            return self.infra_error(candidate, suite, f"cannot start a container: {exc}")
        payload = driver_input(
            candidate, suite, self.limits, workdir=WORKDIR, sweep=True, wipe=WRITABLE
        )
        try:
            out, timed_out = self._exec(api, cid, payload)
        except (DockerException, OSError) as exc:
            self._discard(cid)
            return self.infra_error(candidate, suite, f"sandbox failure: {_first_line(exc)}")
        if not self._healthy(api, cid):
            self._discard(cid)
            return self.infra_error(candidate, suite, "sandbox container died during the run")
        self._idle.put(cid)
        result = parse_report(
            out, candidate, suite, self.name, self.isolation, time.monotonic() - started
        )
        if timed_out:
            result.verdict = Verdict.TIMEOUT
            result.message = "deadline exceeded (enforced by the host)"
        return result

    def _exec(self, api: Any, cid: str, payload: bytes) -> tuple[bytes, bool]:
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
        stream = api.exec_start(exec_id, socket=True)
        raw: socket.socket = stream._sock
        deadline = time.monotonic() + self.limits.timeout + GRACE_S
        timed_out = False
        try:
            raw.sendall(payload)
            reader = _FrameReader(raw)
            while not reader.eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not timed_out:
                    timed_out = True
                    self._kill_all(api, cid)
                    deadline = time.monotonic() + 10.0
                    continue
                if remaining <= 0:
                    raise OSError("sandbox did not stop after the deadline")
                raw.settimeout(remaining)
                try:
                    reader.pump()
                except TimeoutError:
                    continue
        finally:
            stream.close()
            raw.close()
        return reader.stdout, timed_out

    def _kill_all(self, api: Any, cid: str) -> None:
        kill = api.exec_create(cid, ["sh", "-c", "kill -9 -1"], user=SANDBOX_USER)["Id"]
        api.exec_start(kill)

    def _healthy(self, api: Any, cid: str) -> bool:
        try:
            state = api.inspect_container(cid)["State"]
        except Exception:
            return False
        return bool(state.get("Running"))


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


def reap_stale(client: Any) -> int:
    """Remove sandbox containers left by codeens processes on this host that are gone."""
    host = socket.gethostname()
    removed = 0
    for info in client.api.containers(all=True, filters={"label": LABEL}):
        owner = info.get("Labels", {}).get(f"{LABEL}.owner", "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            client.api.remove_container(info["Id"], force=True)
            removed += 1
        except Exception:
            pass
    return removed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
