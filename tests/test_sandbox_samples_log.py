"""``codeens sandbox run --samples`` logs as it goes: rows appear in the SQLite log while
the run goes on, each once its limits are final, and a run ended by SIGINT or SIGTERM
keeps every row already judged (process backend, the real executable, a real log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.batch import Job, run_batch
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.testfile import parse_test_suite
from codeens.sandbox.timelimits import TimeLimits, TimeRule
from codeens.storage import Store
from conftest import CODEENS, run_cli

IDENTITY = "    return x\n"
SLEEPS = "    import time\n    time.sleep(60)\n    return x\n"
SLOW_PASS = "    import time\n    time.sleep(1.5)\n    return x\n"


def _problem(task_id: str, reference: bool) -> dict[str, str]:
    record = {
        "task_id": task_id,
        "prompt": "def f(x):\n",
        "test": "assert f(1) == 1\nassert f(2) == 2\n",
        "entry_point": "f",
    }
    if reference:
        record["canonical_solution"] = IDENTITY
    return record


def _files(tmp_path: Path, samples: list[tuple[str, str]]) -> tuple[Path, Path]:
    problems = tmp_path / "problems.jsonl"
    records = [_problem("R", True), _problem("N", False), _problem("M", False)]
    problems.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = tmp_path / "samples.jsonl"
    lines = [{"task_id": t, "completion": c} for t, c in samples]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return problems, path


def _logged(db: Path) -> Counter[str]:
    """How many times each candidate label is in the log."""
    if not db.exists():
        return Counter()
    return Counter(row.candidate for row in Store(db).executions(limit=None))


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)]
)
def test_rows_appear_while_running_and_survive_a_signal(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    # R has a reference: its rows are final at once. M has none, but all its samples
    # finish: final when the last does. N has none and one sample sleeps: its fast
    # sample waits for it, and the signal ends the run with its limits as they stand.
    problems, samples = _files(
        tmp_path,
        [
            ("R", IDENTITY),
            ("N", SLEEPS),
            ("R", "    return 0\n"),
            ("M", IDENTITY),
            ("N", IDENTITY),
            ("R", IDENTITY),
            ("M", "    return -x\n"),
        ],
    )
    db = tmp_path / "log.db"
    args = ["sandbox", "run", "--samples", str(samples), "--problems", str(problems)]
    args += ["--backend", "process", "--workers", "2", "--timeout", "60", "--db", str(db)]
    env = dict(os.environ, CODEENS_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [str(CODEENS), *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    early = {"R#0", "R#2", "R#5", "M#3", "M#6"}
    try:
        deadline = time.monotonic() + 30
        while set(_logged(db)) != early:
            assert proc.poll() is None, proc.communicate()
            assert set(_logged(db)) <= early, "a row was logged before its limits were final"
            assert time.monotonic() < deadline, f"only {sorted(_logged(db))} in the log"
            time.sleep(0.1)
        time.sleep(1.0)  # N#4 is done too by now, held until N's sleeper ends
        assert set(_logged(db)) == early
        assert proc.poll() is None, "the sleeper should still be running"
        sent = time.monotonic()
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=20)
        stopped = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert stopped < 5, f"{stopped:.1f} s to stop"
    logged = _logged(db)
    assert logged == Counter(early | {"N#4"}), "each judged row once, the sleeper's none"
    rows = Store(db).executions(limit=None)
    assert len({row.run_id for row in rows}) == 1
    held = next(row for row in rows if row.candidate == "N#4")
    assert held.verdict == "passed" and held.target == "N"


def test_every_sample_logged_once_as_in_the_results(tmp_path: Path) -> None:
    # M's slow pass is held to 4x M's fastest pass (the 0.3 s floor): logged as the
    # timeout the results file reports, not as the pass it ran as.
    problems, samples = _files(
        tmp_path,
        [
            ("R", IDENTITY),
            ("M", SLOW_PASS),
            ("R", "    return 0\n"),
            ("M", IDENTITY),
            ("N", "    return -x\n"),
        ],
    )
    db, out = tmp_path / "log.db", tmp_path / "results.jsonl"
    args = ["sandbox", "run", "--samples", str(samples), "--problems", str(problems)]
    args += ["--backend", "process", "--workers", "2", "--timeout", "10", "--time-floor"]
    args += ["0.3", "--db", str(db), "--results", str(out)]
    proc = run_cli(*args, cwd=tmp_path, env={"CODEENS_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdict"] for r in lines] == ["passed", "timeout", "failed", "passed", "failed"]
    rows = Store(db).executions(limit=None)
    assert len(rows) == len(lines) == 5
    assert Counter(row.candidate for row in rows) == Counter(
        f"{r['task_id']}#{r['sample']}" for r in lines
    )
    verdicts = {row.candidate: (row.target, row.verdict) for row in rows}
    assert verdicts == {
        f"{r['task_id']}#{r['sample']}": (r["task_id"], r["verdict"]) for r in lines
    }


def test_on_final_hears_each_result_once_when_its_limits_are_final() -> None:
    suite = parse_test_suite("assert f(1) == 1\n")
    fast = Candidate("fast", "def f(x):\n    return x\n")
    slow = Candidate("slow", "import time\ndef f(x):\n    time.sleep(1.0)\n    return x\n")
    jobs = [Job("B", slow, suite), Job("A", slow, suite), Job("B", fast, suite)]
    limits = TimeLimits(TimeRule(ceiling=10.0, factor=4.0, floor=0.2), {"A": (0.5,)})
    finished: list[str] = []
    heard: list[tuple[str, str, ExecutionResult]] = []

    def on_result(job: Job, _result: ExecutionResult) -> None:
        finished.append(f"{job.problem}:{job.candidate.label}")

    def on_final(job: Job, result: ExecutionResult) -> None:
        heard.append((job.problem, job.candidate.label, result))
        if job.problem == "B":  # B has no reference: final only once all of B is done
            assert {"B:slow", "B:fast"} <= set(finished)
        else:  # A's reference fixes its limit: final as soon as it finished
            assert finished[-1] == "A:slow"

    with ProcessSandbox(Limits(timeout=10.0, memory_mb=256), workers=3) as box:
        results = run_batch(box, jobs, limits, on_result=on_result, on_final=on_final)
    assert [r.verdict for r in results] == [Verdict.TIMEOUT, Verdict.PASSED, Verdict.PASSED]
    assert sorted((p, c) for p, c, _ in heard) == [("A", "slow"), ("B", "fast"), ("B", "slow")]
    by_label = {(p, c): r for p, c, r in heard}
    assert [by_label[(j.problem, j.candidate.label)] for j in jobs] == results
