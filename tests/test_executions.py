"""The execution cache and the logged batch run, on the real process sandbox and a real log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from codeens.executions import ExecutionCache, Program, key_of, run_logged
from codeens.recorder import Recorder
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits, Verdict
from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Store

RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"


def _programs() -> list[Program]:
    return [Program("add#right", RIGHT, "r" * 64), Program("add#wrong", WRONG, "w" * 64)]


def test_each_program_runs_once_per_suite_and_every_use_is_logged(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    cache = ExecutionCache()
    suite = parse_test_suite(TESTS)
    with ProcessSandbox(Limits(timeout=5.0)) as box:
        first = run_logged(
            box, _programs(), suite, target="add", recorder=Recorder(store, "a"), cache=cache
        )
        again = run_logged(
            box, _programs(), suite, target="add", recorder=Recorder(store, "b"), cache=cache
        )
        other = parse_test_suite("assert add(0, 0) == 0\n")
        third = run_logged(
            box, _programs()[:1], other, target="add", recorder=Recorder(store, "c"), cache=cache
        )
    assert {k: str(r.verdict) for k, r in first.items()} == {
        "add#right": "passed",
        "add#wrong": "failed",
    }
    assert {k: (r.verdict, r.tests_passed) for k, r in again.items()} == {
        k: (r.verdict, r.tests_passed) for k, r in first.items()
    }
    assert third["add#right"].verdict is Verdict.PASSED
    assert (cache.hits, cache.misses) == (2, 3)
    rows = {(e.run_id, e.code_hash[:1]): e for e in store.executions(limit=None)}
    assert set(rows) == {("a", "r"), ("a", "w"), ("b", "r"), ("b", "w"), ("c", "r")}
    # Run b reused run a's executions and says which; a and c ran in the sandbox.
    assert rows[("b", "r")].cached_from == rows[("a", "r")].id
    assert rows[("b", "w")].cached_from == rows[("a", "w")].id
    assert rows[("a", "r")].cached_from is None and rows[("c", "r")].cached_from is None
    assert rows[("b", "w")].verdict == "failed" and rows[("b", "w")].target == "add"


def test_the_key_separates_limits_backends_and_bound_suites() -> None:
    suite = parse_test_suite("def check(candidate):\n    assert candidate(1, 2) == 3\n")
    with ProcessSandbox(Limits(timeout=5.0)) as box, ProcessSandbox(Limits(timeout=6.0)) as slow:
        plain = key_of(box, RIGHT, suite)
        assert key_of(box, RIGHT, suite) == plain
        assert key_of(slow, RIGHT, suite) != plain
        assert key_of(box, WRONG, suite) != plain
        # check(candidate) is bound to the entry point: another name is another suite.
        assert key_of(box, RIGHT, suite, entry_point="plus") != plain
        assert plain.entry_point == "add"
        assert dataclasses.replace(plain, backend="docker") != plain


def test_results_that_blame_the_sandbox_are_not_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    cache = ExecutionCache()
    suite = parse_test_suite(TESTS)
    box = ProcessSandbox(Limits(timeout=5.0))
    box.close()  # a closed sandbox answers infra_error for everything
    broken = run_logged(
        box, _programs(), suite, target="add", recorder=Recorder(store, "a"), cache=cache
    )
    assert {r.verdict for r in broken.values()} == {Verdict.INFRA_ERROR}
    with ProcessSandbox(Limits(timeout=5.0)) as fresh:
        fixed = run_logged(
            fresh, _programs(), suite, target="add", recorder=Recorder(store, "b"), cache=cache
        )
    assert {str(r.verdict) for r in fixed.values()} == {"passed", "failed"}
    assert all(e.cached_from is None for e in store.executions(limit=None))
