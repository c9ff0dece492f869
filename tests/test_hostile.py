"""Hostile programs against the real Docker sandbox, each checked for leftovers.

Every case runs in the same warm container (one worker), so anything a case leaves behind
(a process, a file) would be seen by the leftover check after it, and by the cases that
look for the previous case's residue. Probes that try to escape return "blocked" when the
sandbox held, so a passing verdict there means the isolation worked.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from hostile_cases import CASES as OWN_CASES
from hostile_cases import SECRET_ENV, SECRET_VALUE, Case
from hostile_peers import PEER_CASES

from codeens.sandbox.backends.docker import LABEL, DockerSandbox
from conftest import eventually, run_box

CASES = OWN_CASES + PEER_CASES

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def host_server() -> Iterator[str]:
    """A real TCP server on the host's loopback that the sandbox must not reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = server.getsockname()
    yield f"{host}:{port}"
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def host_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(SECRET_VALUE)
    return path


def _processes(box: DockerSandbox) -> list[str]:
    """'pid comm state ppid' of every process in the container other than PID 1."""
    client = docker.from_env()
    try:
        container = client.containers.get(next(iter(box._all)))
        script = (
            "import os\nme = os.getpid()\nfor p in os.listdir('/proc'):\n"
            "    if p.isdigit() and int(p) not in (1, me):\n"
            "        s = open('/proc/%s/stat' % p).read()\n"
            "        rest = s[s.rindex(')') + 2:].split()\n"
            "        print(p, s[s.index('(') + 1:s.rindex(')')], rest[0], rest[1])\n"
        )
        out = container.exec_run(["python3", "-c", script], user="0:0").output.decode()
    finally:
        client.close()
    return sorted(line for line in out.splitlines() if line)


def _leftovers(processes: list[str]) -> list[str]:
    """Processes that are neither the keeper, the driver server, nor its zygote."""
    rows = [line.split() for line in processes]
    servers = {pid for pid, comm, _state, ppid in rows if comm == "python3" and ppid == "0"}
    allowed = {"sleep"}
    return [
        " ".join(row)
        for row in rows
        if not (
            (row[1] in allowed and row[2] != "Z")
            or (row[1] == "python3" and row[2] != "Z" and (row[0] in servers or row[3] in servers))
        )
    ] + (["more than one driver server"] if len(servers) > 1 else [])


def _files(box: DockerSandbox) -> str:
    client = docker.from_env()
    try:
        container = client.containers.get(next(iter(box._all)))
        return container.exec_run(
            ["sh", "-c", "ls -A /work /tmp /dev/shm"], user="0:0"
        ).output.decode()
    finally:
        client.close()


def _host_tmp() -> set[str]:
    """codeens' own temporary files on the host (other programs' come and go)."""
    return {name for name in os.listdir("/tmp") if name.startswith("codeens")}


def _container_diff(box: DockerSandbox) -> list[tuple[str, int]]:
    """Changes to the container's own file system layer (only the mount points: tmpfs
    contents are not in it, and the root is read-only)."""
    client = docker.from_env()
    try:
        changes = client.api.diff(next(iter(box._all))) or []
        return sorted((c["Path"], c["Kind"]) for c in changes)
    finally:
        client.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_program(
    case: Case,
    docker_box: DockerSandbox,
    host_server: str,
    host_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET_VALUE)
    containers_before = _sandbox_containers()
    assert containers_before, "the warm container is found by its owner label"
    host_tmp_before = _host_tmp()
    diff_before = _container_diff(docker_box)
    candidate = case.candidate.replace("HOSTPORT", host_server).replace("HOSTFILE", str(host_file))

    result = run_box(docker_box, candidate, case.tests)

    assert result.verdict == case.verdict, (result.verdict, result.message, result.tests)
    assert case.message in result.message, result.message
    assert SECRET_VALUE not in result.output
    # Nothing left behind: only the keeper, the driver and its zygote; empty work areas;
    # the same containers as before; no new files in the host's /tmp.
    deadline = time.monotonic() + 3
    while _leftovers(_processes(docker_box)):
        assert time.monotonic() < deadline, _processes(docker_box)
        time.sleep(0.05)
    assert _files(docker_box).split() == ["/dev/shm:", "/tmp:", "/work:"]
    assert eventually(lambda: _sandbox_containers() == containers_before)
    assert _host_tmp() - host_tmp_before == set()
    assert _container_diff(docker_box) == diff_before


def _sandbox_containers() -> set[str]:
    """This process's sandbox containers (other sessions' pools come and go meanwhile)."""
    owner = f"{LABEL}.owner={socket.gethostname()}:{os.getpid()}"
    client = docker.from_env()
    try:
        return {c["Id"] for c in client.api.containers(all=True, filters={"label": owner})}
    finally:
        client.close()


def test_suite_has_enough_cases() -> None:
    assert len(CASES) >= 35
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.source for c in CASES)
