"""`codeens eval --ray` on a real two-node Ray cluster started here (head and one worker
node, both on this machine, token authentication on), with replay members and the real
sandbox: the same results as a serial run, and nothing finished lost when a worker or the
driver is killed mid-run."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CODEENS, run_cli
from eval_fixtures import SAMPLES, setup_replay

pytestmark = pytest.mark.docker

RAY = CODEENS.parent / "ray"
IDS = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/7", "HumanEval/12"]
ARGS = ["humaneval", "--problems", ",".join(IDS), "--samples", str(SAMPLES)]
ARGS += ["--strategies", "majority,cascade"]


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(RAY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head node and a second node joined to it, one CPU each."""
    root = tmp_path_factory.mktemp("ray")
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    env = dict(os.environ)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
    )
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={root / 't'}"]
    try:
        _ray("start", *head, *common, env=env)
        _ray("start", f"--address={address}", *common, env=env)
        yield Cluster(address, env)
    finally:
        subprocess.run(
            [str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120, check=False
        )


def _eval(
    tmp_path: Path, config: Path, db: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "eval", *args, "--config", str(config), "--db", str(db), "--json", "--quiet",
        cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> dict[str, Any]:
    """The slice run serially, once: what every Ray run must reproduce."""
    tmp_path = tmp_path_factory.mktemp("serial")
    config = setup_replay(tmp_path, "humaneval", IDS)
    done = _eval(tmp_path, config, tmp_path / "serial.db", *ARGS)
    assert done.returncode == 0, done.stderr
    return {"summary": json.loads(done.stdout), "counts": _counts(tmp_path / "serial.db")}


def _counts(db: Path) -> dict[str, Any]:
    """What the log holds, independent of ids and timings."""
    with sqlite3.connect(db) as conn:
        return {
            "runs": conn.execute(
                "SELECT kind, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall(),
            "generations": conn.execute(
                "SELECT model, target, code_hash, cached_from IS NULL, count(*) "
                "FROM generations GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            "executions": conn.execute(
                "SELECT target, code_hash, tests_hash, verdict, cached_from IS NULL, count(*) "
                "FROM executions GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
            ).fetchall(),
            "decisions": conn.execute(
                "SELECT target, strategy, status, chosen_hash FROM decisions ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            # Every cached_from names a row made for the same request or program.
            "bad_pointers": conn.execute(
                "SELECT count(*) FROM generations g LEFT JOIN generations h "
                "ON g.cached_from = h.id WHERE g.cached_from IS NOT NULL "
                "AND (h.id IS NULL OR h.request_key != g.request_key)"
            ).fetchone()[0]
            + conn.execute(
                "SELECT count(*) FROM executions e LEFT JOIN executions f "
                "ON e.cached_from = f.id WHERE e.cached_from IS NOT NULL "
                "AND (f.id IS NULL OR f.code_hash != e.code_hash OR f.tests_hash != e.tests_hash)"
            ).fetchone()[0],
        }


def _same_results(summary: dict[str, Any], expected: dict[str, Any]) -> None:
    assert summary["status"] == "done"
    assert summary["per_task"] == expected["per_task"]
    for key in ("models", "strategies"):
        for name, row in expected[key].items():
            got = summary[key][name]
            for metric in ("pass@1", "pass@1_ci", "cost", "tokens"):
                if metric in row:
                    assert got[metric] == row[metric], (key, name, metric)


def test_ray_run_gives_the_serial_runs_results_and_rows(
    tmp_path: Path, cluster: Cluster, serial: dict[str, Any]
) -> None:
    config = setup_replay(tmp_path, "humaneval", IDS)
    db = tmp_path / "ray.db"
    done = _eval(tmp_path, config, db, *ARGS, "--ray", cluster.address, env=cluster.env)
    assert done.returncode == 0, done.stderr
    assert f"ray: {len(IDS)} tasks on 2 node(s)" in done.stderr, done.stderr
    _same_results(json.loads(done.stdout), serial["summary"])
    counts = _counts(db)
    assert counts == serial["counts"]
    assert counts["bad_pointers"] == 0


def _running_task(deadline: float) -> int:
    """The pid of a Ray worker process running a problem right now (Ray sets the process
    title of a worker to ``ray::<task>`` while it runs one)."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and title.startswith(b"ray::solve_problem"):
                return int(proc.name)
        time.sleep(0.02)
    pytest.fail("no Ray task was seen running")


def _finished(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT id FROM runs WHERE kind = 'eval-item'").fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []
    return [r[0] for r in rows]


def _start(
    tmp_path: Path, config: Path, db: Path, *args: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CODEENS), "eval", *args, "--config", str(config), "--db", str(db), "--quiet",
         "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _started(
    tmp_path: Path, config: Path, db: Path, cluster: Cluster
) -> tuple[subprocess.Popen[str], float]:
    """The slice started on the cluster, once its first problem is in the log."""
    process = _start(tmp_path, config, db, *ARGS, "--ray", cluster.address, env=cluster.env)
    deadline = time.monotonic() + 300
    while not _finished(db):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process, deadline


def test_killing_a_worker_mid_run_loses_nothing(
    tmp_path: Path, cluster: Cluster, serial: dict[str, Any]
) -> None:
    config = setup_replay(tmp_path, "humaneval", IDS)
    db = tmp_path / "ray.db"
    process, deadline = _started(tmp_path, config, db, cluster)
    victim = _running_task(deadline)
    before = set(_finished(db))
    os.kill(victim, signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert len(before) < 2 * len(IDS), "the worker was killed before the run ended"
    assert before <= set(_finished(db)), "a finished problem was lost"
    assert out.startswith("{"), (out[:2000], err[-2000:])
    _same_results(json.loads(out), serial["summary"])
    assert _counts(db) == serial["counts"]


def test_resume_on_ray_after_the_driver_is_killed(
    tmp_path: Path, cluster: Cluster, serial: dict[str, Any]
) -> None:
    config = setup_replay(tmp_path, "humaneval", IDS)
    db = tmp_path / "ray.db"
    process, _ = _started(tmp_path, config, db, cluster)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    with sqlite3.connect(db) as conn:
        run_id = conn.execute("SELECT id FROM runs WHERE kind = 'eval'").fetchone()[0]
        kept = conn.execute("SELECT id, request_key FROM generations").fetchall()
    finished = _finished(db)
    assert 0 < len(finished) < 2 * len(IDS), "killed mid-run"

    resumed = _eval(tmp_path, config, db, "--resume", run_id, "--ray", cluster.address,
                    env=cluster.env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    _same_results(json.loads(resumed.stdout), serial["summary"])
    assert _counts(db) == serial["counts"], "nothing was done twice, nothing is missing"
    with sqlite3.connect(db) as conn:
        still = conn.execute("SELECT id, request_key FROM generations").fetchall()
        for child in finished:
            n = conn.execute("SELECT count(*) FROM decisions WHERE run_id = ?", (child,))
            assert n.fetchone()[0] == 1, f"finished child {child} was decided again"
    assert set(kept) <= set(still)


def test_a_ray_address_that_is_not_one_or_answers_nothing_is_refused(tmp_path: Path) -> None:
    done = run_cli("eval", "humaneval", "--ray", "majority", "--limit", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not a cluster address" in done.stderr
    db = tmp_path / "log.db"
    port = _free_port()  # nothing listens there
    done = run_cli(
        "eval", "humaneval", "--limit", "1", "--ray", f"127.0.0.1:{port}", "--db", str(db),
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no Ray cluster answers" in done.stderr
    assert (
        not db.exists()
        or not sqlite3.connect(db)
        .execute("SELECT name FROM sqlite_master WHERE name = 'runs'")
        .fetchall()
        or not sqlite3.connect(db).execute("SELECT * FROM runs").fetchall()
    )


def test_endpoint_members_keep_their_concurrency_cap_across_the_cluster(
    tmp_path: Path, cluster: Cluster
) -> None:
    """Two workers on two nodes, one endpoint capped at one request in flight: each
    process alone would allow one, so only a cluster-wide cap keeps the server at one."""
    from test_models_openai import FaultServer

    server = FaultServer([], delay=0.4)
    config = tmp_path / "codeens.toml"
    config.write_text(
        '[sandbox]\nbackend = "process"\n'
        '[[models]]\nname = "remote"\nbackend = "openai"\nlocation = "served-model"\n'
        f'[models.options]\nbase_url = "{server.base_url}"\nmax_concurrency = 1\n'
        "max_retries = 0\n"
    )
    try:
        done = _eval(
            tmp_path, config, tmp_path / "ray.db", "humaneval", "--problems", ",".join(IDS),
            "--samples", "1", "--ray", cluster.address, env=cluster.env,
        )  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert "on 2 node(s)" in done.stderr, done.stderr
    assert server.attempts == len(IDS)
    assert server.max_in_flight == 1
