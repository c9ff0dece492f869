"""SIGTERM and SIGINT to codeens remove its sandbox containers, as a normal exit does.

Issue 19: an eval ended with SIGTERM left two running containers behind. Here the real
``codeens sandbox run`` executable holds a pool of two containers busy with slow candidates
and a queue of more; after the signal no container it owned may remain, and it exits with
the signal's conventional status.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import docker
import pytest

from codeens.sandbox.backends.docker import LABEL
from codeens.sandbox.backends.docker_park import owner_of
from conftest import CODEENS, eventually

pytestmark = pytest.mark.docker


def _owned(pid: int) -> list[str]:
    """Containers the process ``pid`` on this host uses (started or claimed parked)."""
    client = docker.from_env()
    try:
        owner = f"{socket.gethostname()}:{pid}"
        found = client.api.containers(all=True, filters={"label": LABEL})
        return [c["Id"] for c in found if owner_of(c) == owner]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)]
)
def test_signal_removes_the_containers(
    tmp_path: Path, sandbox_image: str, signum: signal.Signals, status: int
) -> None:
    tests = tmp_path / "tests.py"
    tests.write_text("assert add(2, 3) == 5\n")
    candidates = []
    for i in range(5):
        path = tmp_path / f"slow{i}.py"
        path.write_text("import time\ndef add(a, b):\n    time.sleep(60)\n    return a + b\n")
        candidates.append(str(path))
    options = ["--tests", str(tests), "--workers", "2", "--timeout", "30"]
    proc = subprocess.Popen(
        [str(CODEENS), "sandbox", "run", *candidates, *options, "--db", str(tmp_path / "log.db")],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_owned(proc.pid)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the pool never started two containers"
            time.sleep(0.2)
        time.sleep(0.5)  # both candidates are inside their containers now
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert eventually(lambda: _owned(proc.pid) == []), _owned(proc.pid)
