"""Faults around the sandbox: no engine, a killed run, and containers left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from codeens.sandbox.backends.docker import LABEL, DockerSandbox, reap_stale
from codeens.sandbox.backends.docker_park import owner_of
from codeens.storage import Store
from conftest import CODEENS, REPO, eventually, run_box, run_cli

EXAMPLES = REPO / "examples" / "sandbox"
SLOW_CANDIDATE = "import time\ntime.sleep(0.4)\n\n\ndef add(a, b):\n    return a + b\n"
SLOW_TESTS = (
    "def test_small():\n    assert add(2, 3) == 5\n\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n"
)


def _owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def _containers() -> dict[str, str]:
    """Every sandbox container (running or not): id -> the process using it, as
    ``host:pid`` (its creator, or the process that claimed it parked)."""
    client = docker.from_env()
    try:
        return {
            info["Id"]: owner_of(info)
            for info in client.api.containers(all=True, filters={"label": LABEL})
        }
    finally:
        client.close()


def _owned_by(pid: int) -> set[str]:
    return {cid for cid, owner in _containers().items() if owner == _owner(pid)}


@contextlib.contextmanager
def _remove_leftovers(pids: list[int]) -> Iterator[None]:
    """Whatever a test asserts, do not leave its containers on the engine."""
    try:
        yield
    finally:
        for pid in pids:
            for cid in _owned_by(pid):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _slow_batch(tmp_path: Path, count: int) -> tuple[list[Path], Path]:
    cands = []
    for i in range(count):
        path = tmp_path / f"slow_{i:02d}.py"
        path.write_text(SLOW_CANDIDATE, encoding="utf-8")
        cands.append(path)
    tests = tmp_path / "test_slow.py"
    tests.write_text(SLOW_TESTS, encoding="utf-8")
    return cands, tests


def _count_rows(db: Path) -> int:
    """Rows committed so far, read through a read-only stdlib connection."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize(
    "docker_host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"], ids=["unix", "tcp"]
)
def test_unreachable_engine_is_infra_error(tmp_path: Path, docker_host: str) -> None:
    db = tmp_path / "log.db"
    cands = [EXAMPLES / "candidate_good.py", EXAMPLES / "candidate_bad.py"]
    proc = run_cli(
        "sandbox",
        "run",
        *map(str, cands),
        "--tests",
        str(EXAMPLES / "test_add.py"),
        "--json",
        "--db",
        str(db),
        cwd=tmp_path,
        env={"DOCKER_HOST": docker_host},
        timeout=90,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["candidate"] for r in results) == sorted(map(str, cands))
    for result in results:
        assert result["verdict"] == "infra_error", result
        assert "engine" in result["message"].lower(), result["message"]
        assert result["tests_passed"] == 0
        assert result["tests"] == [], "nothing may be reported as passed or failed"
    rows = Store(db).executions()
    assert sorted(r.candidate for r in rows) == sorted(map(str, cands))
    assert {r.verdict for r in rows} == {"infra_error"}


@pytest.mark.docker
def test_missing_image_is_infra_error(tmp_path: Path, sandbox_image: str) -> None:
    proc = run_cli(
        "sandbox",
        "run",
        str(EXAMPLES / "candidate_good.py"),
        "--tests",
        str(EXAMPLES / "test_add.py"),
        "--image",
        "codeens-sandbox:no-such-tag",
        "--json",
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 1
    (result,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert result["verdict"] == "infra_error"
    assert "no-such-tag" in result["message"]
    assert result["tests"] == []


@pytest.mark.docker
def test_sigkill_mid_batch_keeps_the_log_and_leaves_reapable_containers(
    tmp_path: Path, sandbox_image: str
) -> None:
    db = tmp_path / "killed.db"
    cands, tests = _slow_batch(tmp_path, 12)
    log = (tmp_path / "stdout.txt").open("w"), (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            *(str(CODEENS), "sandbox", "run", *map(str, cands), "--tests", str(tests)),
            *("--workers", "1", "--timeout", "10", "--db", str(db), "--json"),
        ],
        cwd=tmp_path,
        stdout=log[0],
        stderr=log[1],
        stdin=subprocess.DEVNULL,
    )
    pid = proc.pid
    with _remove_leftovers([pid]):
        try:
            deadline = time.monotonic() + 90
            seen = 0
            while seen < 3:
                assert proc.poll() is None, "the batch finished before it could be killed"
                assert time.monotonic() < deadline, "no rows appeared in time"
                time.sleep(0.05)
                seen = _count_rows(db)
            os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=30)  # reap it, or the zombie still counts as alive
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for f in log:
                f.close()
        assert proc.returncode == -signal.SIGKILL
        assert len(cands) > seen, "the kill really came mid-batch"

        # The log survived intact, with at least every row seen before the kill, each whole.
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = conn.execute(
                "SELECT candidate, verdict, tests_passed, tests_total, tests_json, run_id "
                "FROM executions"
            ).fetchall()
        finally:
            conn.close()
        assert seen <= len(rows) < len(cands)
        assert len({r[0] for r in rows}) == len(rows), "no row written twice"
        assert len({r[5] for r in rows}) == 1, "one run id for the whole batch"
        for candidate, verdict, passed, total, tests_json, _run_id in rows:
            assert candidate in {str(c) for c in cands}
            assert verdict == "passed"
            assert passed == total == 2
            assert [t["outcome"] for t in json.loads(tests_json)] == ["passed", "passed"]
        # The database is still usable for the next run.
        assert Store(db).integrity_ok()

        # The killed process could not clean up: its warm container is still there ...
        left = _owned_by(pid)
        assert left, "expected the killed run's container to be left behind"
        assert all(owner.endswith(f":{pid}") for cid, owner in _containers().items() if cid in left)
        # ... and reaping removes them (live owners' containers are covered below).
        client = docker.from_env()
        try:
            removed = reap_stale(client)
        finally:
            client.close()
        assert removed >= len(left)
        assert not _owned_by(pid)


@pytest.mark.docker
def test_live_owners_containers_are_not_reaped(docker_box: DockerSandbox) -> None:
    result = run_box(docker_box, "def add(a, b):\n    return a + b\n", SLOW_TESTS)
    assert result.verdict == "passed"
    mine = _owned_by(os.getpid())
    assert mine, "the warm session sandbox owns a container"
    client = docker.from_env()
    try:
        reap_stale(client)
    finally:
        client.close()
    assert _owned_by(os.getpid()) == mine


@pytest.mark.docker
@pytest.mark.parametrize("keep_warm", ["0", "60"])
def test_normal_run_leaves_no_container_in_use(
    tmp_path: Path, sandbox_image: str, keep_warm: str
) -> None:
    """Without --keep-warm, a finished run's containers are gone; with it, they are parked
    (in use by nobody) for the next run."""
    before = set(_containers())
    cands, tests = _slow_batch(tmp_path, 4)
    proc = subprocess.Popen(
        [
            *(str(CODEENS), "sandbox", "run", *map(str, cands), "--tests", str(tests)),
            *("--workers", "2", "--json", "--keep-warm", keep_warm),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    pid = proc.pid
    with _remove_leftovers([pid]):
        seen_during: set[str] = set()
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            seen_during |= _owned_by(pid)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert [json.loads(line)["verdict"] for line in out.splitlines()] == ["passed"] * 4
        assert seen_during, "the run's containers were never observed (check is vacuous)"
        if keep_warm == "0":  # killed on close, removed by the engine just after
            gone = eventually(lambda: not (seen_during & set(_containers())))
            assert gone, "containers of a finished run are still there"
        after = _containers()
        if keep_warm != "0":
            assert seen_during <= set(after), "the finished run's containers were parked"
            assert {after[cid] for cid in seen_during} == {f"{socket.gethostname()}:"}
        assert not _owned_by(pid)
        leaked = {c: o for c, o in _containers().items() if c in set(after) - before}
        assert not any(o == _owner(pid) for o in leaked.values()), leaked
