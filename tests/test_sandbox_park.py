"""Warm containers kept between processes: a closed pool parks them, the next one claims them.

Each test uses a memory limit of its own, so its pool key differs from every other pool's
on the engine (other tests' parked containers are never claimed here, nor ours there).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from codeens.sandbox.backends import docker_park
from codeens.sandbox.backends.docker import LABEL, DockerSandbox
from codeens.sandbox.results import Limits
from conftest import CODEENS, eventually, run_box

pytestmark = pytest.mark.docker

ADD = "def add(a, b):\n    return a + b\n"
ADD_TEST = "assert add(2, 3) == 5\n"
HOSTILE = (
    "import os, time\n"
    "for area in ('/tmp', '/work', '/dev/shm'):\n"
    "    open(os.path.join(area, 'left-behind'), 'w').close()\n"
    "def add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        if os.fork() == 0:\n            while True:\n"
    "                open('/dev/shm/daemon-alive', 'w').close()\n"
    "                time.sleep(0.01)\n"
    "        os._exit(0)\n    return a + b\n"
)
CLEAN_CHECK = (
    "import os, time\n"
    "def others():\n    me = os.getpid()\n    names = []\n"
    "    for pid in os.listdir('/proc'):\n"
    "        if pid.isdigit() and int(pid) not in (1, me):\n"
    "            names.append(open(f'/proc/{pid}/comm').read().strip())\n"
    "    return sorted(names)\n"
    "def leftovers():\n"
    "    time.sleep(0.2)  # a surviving daemon would write its file again by now\n"
    "    return sorted(os.listdir('/tmp') + os.listdir('/work') + os.listdir('/dev/shm'))\n"
)
CLEAN_TEST = "assert leftovers() == []\nassert others() == ['python3', 'python3', 'sleep']\n"


@pytest.fixture
def api() -> Iterator[docker.APIClient]:
    client = docker.from_env()
    yield client.api
    client.close()


def _ours(api: docker.APIClient, memory_mb: int) -> dict[str, str]:
    """id -> name of every sandbox container with this test's memory limit."""
    found = {}
    for info in api.containers(all=True, filters={"label": LABEL}):
        try:
            detail = api.inspect_container(info["Id"])
        except docker.errors.NotFound:  # removed since the listing (another pool, expiry)
            continue
        if detail["HostConfig"]["Memory"] == (memory_mb + 64) << 20:
            found[info["Id"]] = detail["Name"].lstrip("/")
    return found


@pytest.fixture
def memory_mb(api: docker.APIClient, request: pytest.FixtureRequest) -> Iterator[int]:
    """A memory limit no other test uses; its containers are removed at the end."""
    size = 200 + sum(map(ord, request.node.name)) % 500
    yield size
    for cid in _ours(api, size):
        with contextlib.suppress(docker.errors.NotFound):  # the attendant may be first
            api.remove_container(cid, force=True)


def _box(memory_mb: int, image: str, keep_warm: float, workers: int = 1) -> DockerSandbox:
    return DockerSandbox(Limits(timeout=10, memory_mb=memory_mb), workers, image, keep_warm)


def test_a_closed_pool_parks_and_the_next_claims_cleaned(
    api: docker.APIClient, memory_mb: int, sandbox_image: str
) -> None:
    with _box(memory_mb, sandbox_image, keep_warm=60) as first:
        assert run_box(first, HOSTILE, ADD_TEST).verdict == "passed"
        used = _ours(api, memory_mb)
        assert len(used) == 1
        assert all(name.startswith(f"codeens-sbx-{os.getpid()}-") for name in used.values())
    parked = _ours(api, memory_mb)
    assert parked.keys() == used.keys()
    assert all(name.startswith(docker_park.PARK_PREFIX) for name in parked.values())

    with _box(memory_mb, sandbox_image, keep_warm=60) as second:
        result = run_box(second, CLEAN_CHECK, CLEAN_TEST)
        assert result.verdict == "passed", (result.message, result.tests)
        assert _ours(api, memory_mb).keys() == used.keys()  # claimed, not a new one
        assert all(n.startswith("codeens-sbx-") for n in _ours(api, memory_mb).values())
    assert _ours(api, memory_mb).keys() == used.keys()  # parked again


def test_no_keep_warm_neither_parks_nor_claims(
    api: docker.APIClient, memory_mb: int, sandbox_image: str
) -> None:
    with _box(memory_mb, sandbox_image, keep_warm=60) as warm:
        assert run_box(warm, ADD, ADD_TEST).verdict == "passed"
    parked = set(_ours(api, memory_mb))
    with _box(memory_mb, sandbox_image, keep_warm=0) as cold:
        assert run_box(cold, ADD, ADD_TEST).verdict == "passed"
        during = set(_ours(api, memory_mb))
    assert len(during - parked) == 1  # started its own
    # and killed it on close (the engine removes it); the parked one stays
    assert eventually(lambda: set(_ours(api, memory_mb)) == parked), _ours(api, memory_mb)


def test_a_dead_parked_container_is_passed_over(
    api: docker.APIClient, memory_mb: int, sandbox_image: str
) -> None:
    with _box(memory_mb, sandbox_image, keep_warm=60) as first:
        assert run_box(first, ADD, ADD_TEST).verdict == "passed"
    (dead,) = _ours(api, memory_mb)
    api.kill(dead)
    with _box(memory_mb, sandbox_image, keep_warm=60) as second:
        result = run_box(second, ADD, ADD_TEST)
        assert result.verdict == "passed", result.message
        assert set(_ours(api, memory_mb)) - {dead}, "a new container was started"
    # A parked container that stops is removed by the engine (auto_remove).
    assert eventually(lambda: dead not in _ours(api, memory_mb))


def test_the_attendant_removes_expired_containers(
    api: docker.APIClient, memory_mb: int, sandbox_image: str
) -> None:
    with _box(memory_mb, sandbox_image, keep_warm=1, workers=2) as box:
        for _ in range(2):
            assert run_box(box, ADD, ADD_TEST).verdict == "passed"
        assert _ours(api, memory_mb)
    assert _ours(api, memory_mb), "parked on close"
    deadline = time.monotonic() + 1 + docker_park.POLL_S + 15
    while _ours(api, memory_mb):
        assert time.monotonic() < deadline, _ours(api, memory_mb)
        time.sleep(0.25)


def test_clean_removes_parked_containers(
    api: docker.APIClient, memory_mb: int, sandbox_image: str, tmp_path: Path
) -> None:
    with _box(memory_mb, sandbox_image, keep_warm=600) as box:
        assert run_box(box, ADD, ADD_TEST).verdict == "passed"
    assert _ours(api, memory_mb)
    done = subprocess.run(
        [str(CODEENS), "sandbox", "clean"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "parked" in done.stderr + done.stdout
    assert not _ours(api, memory_mb)


def test_repeated_cli_runs_reuse_the_parked_pool(
    api: docker.APIClient, memory_mb: int, tmp_path: Path
) -> None:
    (tmp_path / "add.py").write_text(ADD)
    (tmp_path / "tests.py").write_text(ADD_TEST)
    command = [
        *(str(CODEENS), "sandbox", "run", "add.py", "--tests", "tests.py", "--json"),
        *("--workers", "2", "--memory", str(memory_mb), "--keep-warm", "60"),
    ]
    seen = []
    for _ in range(3):
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verdict"] == "passed"
        names = _ours(api, memory_mb)
        assert all(n.startswith(docker_park.PARK_PREFIX) for n in names.values()), names
        seen.append(set(names))
    assert len(seen[0]) == 2  # the pool starts both workers' containers
    assert seen[0] == seen[1] == seen[2]  # the later runs started none


def test_owner_of_follows_the_claim() -> None:
    host = socket.gethostname()
    labels = {docker_park.OWNER_LABEL: f"{host}:11"}
    assert docker_park.owner_of({"Names": ["/codeens-sbx-22-ab12"], "Labels": labels}) == (
        f"{host}:22"
    )
    parked_name = docker_park.parked_name("ab12", 5.0)
    assert docker_park.owner_of({"Names": ["/" + parked_name], "Labels": labels}) == f"{host}:"
    assert docker_park.parked({"Names": ["/" + parked_name]}) == ("ab12", 5.0)
    assert docker_park.owner_of({"Names": ["/other"], "Labels": labels}) == f"{host}:11"
