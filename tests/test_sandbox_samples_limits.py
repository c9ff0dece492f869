"""Per-test time limits: the rule, holding results to final limits, the scheduling order,
the sample and problem readers, and the driver enforcing a test's own limit (process
backend: no Docker needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.batch import Job, interleaved, run_batch
from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.results import TestOutcome as Outcome
from codeens.sandbox.samples import Problem, read_problems, read_samples
from codeens.sandbox.testfile import parse_test_suite
from codeens.sandbox.timelimits import TimeLimits, TimeRule, enforce

SLOW_AND_FAST = "def f(x):\n    if x == 2:\n        while True:\n            pass\n    return x\n"


def test_rule_is_factor_times_reference_between_floor_and_ceiling() -> None:
    rule = TimeRule(ceiling=3.0, factor=4.0, floor=0.5)
    assert rule.limit(None) is None
    assert rule.limit(0.01) == 0.5
    assert rule.limit(0.25) == 1.0
    assert rule.limit(10.0) == 3.0


def test_reference_first_then_fastest_pass() -> None:
    limits = TimeLimits(TimeRule(ceiling=9.0, factor=2.0, floor=0.1), {"A": (0.2, None)})
    assert limits.limits("A", 2) == (0.4, None)
    assert limits.limits("B", 1) == (None,)
    tests = [Outcome("a", "passed", duration=0.5), Outcome("b", "passed", duration=0.3)]
    limits.observe("A", ExecutionResult("x", Verdict.PASSED, "p", 2, 2, tests))
    # The reference keeps the first test; the second had none and takes the pass.
    assert limits.limits("A", 2) == (0.4, 0.6)
    faster = [Outcome("a", "passed", duration=0.1), Outcome("b", "failed", duration=0.01)]
    limits.observe("A", ExecutionResult("y", Verdict.FAILED, "p", 2, 1, faster))
    assert limits.limits("A", 2) == (0.4, 0.6), "a failed test sets no limit"


def test_enforce_turns_the_first_slow_test_into_the_timeout() -> None:
    tests = [
        Outcome("a", "passed", duration=0.1),
        Outcome("b", "passed", duration=2.0),
        Outcome("c", "passed", duration=0.1),
    ]
    result = ExecutionResult("x", Verdict.PASSED, "p", 3, 3, tests)
    held = enforce(result, (1.0, 1.0, None))
    assert held.verdict is Verdict.TIMEOUT and held.tests_passed == 1
    assert [(t.name, t.outcome, t.limit) for t in held.tests] == [
        ("a", "passed", 1.0),
        ("b", "timeout", 1.0),
    ]
    assert "limit of 1.000 s" in held.message
    kept = enforce(result, (1.0, 3.0, None))
    assert kept.verdict is Verdict.PASSED and [t.limit for t in kept.tests] == [1.0, 3.0, None]


def test_interleaved_takes_problems_in_turn() -> None:
    box = Candidate("c", "x = 1\n")
    suite = parse_test_suite("assert x == 1\n")
    jobs = [Job(p, box, suite) for p in ("A", "A", "A", "B", "C", "C")]
    assert interleaved(jobs) == [0, 3, 4, 1, 5, 2]


def test_readers_make_whole_programs(tmp_path: Path) -> None:
    problems_file = tmp_path / "problems.jsonl"
    record = {
        "task_id": "T/0",
        "prompt": "def f(x):\n",
        "test": "assert f(1) == 1\n",
        "entry_point": "f",
        "canonical_solution": "    return x\n",
    }
    problems_file.write_text(json.dumps(record) + "\n\n")
    problems = read_problems(problems_file)
    assert problems == [
        Problem("T/0", "def f(x):\n", "assert f(1) == 1\n", "f", "def f(x):\n    return x\n")
    ]
    samples_file = tmp_path / "samples.jsonl"
    lines = [
        {"task_id": "T/0", "completion": "    return 1\n"},
        {"task_id": "T/0", "solution": "def f(x):\n    return 2\n"},
    ]
    samples_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    samples = read_samples(samples_file, problems)
    assert [(s.index, s.program) for s in samples] == [
        (0, "def f(x):\n    return 1\n"),
        (1, "def f(x):\n    return 2\n"),
    ]
    samples_file.write_text('{"task_id": "T/9", "completion": ""}\n')
    with pytest.raises(SandboxInputError, match=r"samples\.jsonl:1: no problem 'T/9'"):
        read_samples(samples_file, problems)
    samples_file.write_text('{"task_id": "T/0"}\n')
    with pytest.raises(SandboxInputError, match="'completion' or 'solution'"):
        read_samples(samples_file, problems)


def test_driver_stops_a_test_at_its_own_limit_process_backend() -> None:
    suite = parse_test_suite("assert f(1) == 1\nassert f(2) == 2\nassert f(3) == 3\n")
    with ProcessSandbox(Limits(timeout=20.0, memory_mb=256)) as box:
        started = time.monotonic()
        result = box.run(Candidate("c", SLOW_AND_FAST), suite.with_limits((None, 0.5, 0.5)))
        elapsed = time.monotonic() - started
    assert result.verdict is Verdict.TIMEOUT, result
    assert [(t.outcome, t.limit) for t in result.tests] == [("passed", None), ("timeout", 0.5)]
    assert 0.5 <= result.tests[-1].duration < 1.5
    assert elapsed < 5.0, "the whole-run timeout (20 s) must not be what stopped it"
    # Killed at once, not after the half-second grace a finished child gets (as root the
    # child is in a pid namespace, where only the zygote's kill reaches it).
    assert result.resources["wall_s"] < 0.5 + 0.35, result.resources
    assert "exceeded its limit of 0.500 s" in result.message


def test_fallback_limit_from_the_fastest_pass_process_backend() -> None:
    """No reference: a correct but slow candidate is held to factor x the fastest pass."""
    suite = parse_test_suite("assert f(1) == 1\n")
    fast = Candidate("fast", "def f(x):\n    return x\n")
    slow = Candidate("slow", "import time\ndef f(x):\n    time.sleep(1.5)\n    return x\n")
    jobs = [Job("T", fast, suite), Job("T", slow, suite)]
    limits = TimeLimits(TimeRule(ceiling=10.0, factor=4.0, floor=0.3), {})
    with ProcessSandbox(Limits(timeout=10.0, memory_mb=256), workers=2) as box:
        results = run_batch(box, jobs, limits)
    assert [r.verdict for r in results] == [Verdict.PASSED, Verdict.TIMEOUT]
    assert results[1].tests[-1].outcome == "timeout" and results[1].tests[-1].limit == 0.3
