"""`vote`: visible pass rate first, then execution agreement on model-written tests.

Candidates and tests come from the `replay` backend (recorded completions; the test
prompt is built with the strategy's own prompt builder), everything else is real: the
CLI, extraction, the Docker sandbox and the SQLite log.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from codeens.strategies.gentests import parse_tests, prompt_for_tests, visible_asserts
from conftest import REPO, run_cli

CORRECT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
CORRECT_COMMENTED = "```python\ndef add(a: int, b: int) -> int:\n    return a + b  # sum\n```"
# Right on the visible tests (first arguments 2, -4, 0), wrong from a = 10 on.
BIG = "```python\ndef add(a: int, b: int) -> int:\n    return a + b if a < 10 else a - b\n```"
BIG_BODY = "    return a + b if a < 10 else a - b\n"  # the same program, from a base model
TIMES = "```python\ndef add(a, b):\n    return a * b\n```"
# Fails add(0, 0) == 0 only.
NEAR = "```python\ndef add(a: int, b: int) -> int:\n    return a + b if a != 0 else b + 1\n```"


def _fence(*lines: str) -> str:
    return "Here are the tests:\n```python\n" + "\n".join(lines) + "\n```\n"


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    return path


def _prompts(problem: Path, chat: bool) -> tuple[str, str]:
    """The solve prompt and the test-writing prompt (default 10 tests) as the model sees them."""
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    tests = loaded.tests_for(stub.name)
    solve = solve_prompt(loaded, stub, tests).text_for(chat)
    return solve, prompt_for_tests(loaded, stub, tests, 10).text_for(chat)


def _model(
    tmp: Path, problem: Path, name: str, candidates: list[str], tests: str | None, chat: bool = True
) -> str:
    """Record a model's candidates (seeds 0..) and its test-writing reply; its config."""
    path = tmp / f"{name}.jsonl"
    solve, write_tests = _prompts(problem, chat)
    for seed, text in enumerate(candidates):
        record(path, name, solve, seed, Completion(text, 40, 20))
    if tests is not None:
        record(path, name, write_tests, 0, Completion(tests, 60, 30))
    return (
        f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{path}"\n'
        f"chat = {str(chat).lower()}\n"
    )


def _solve(tmp: Path, problem: Path, models: list[str], samples: int, *extra: str) -> Any:
    config = tmp / "codeens.toml"
    config.write_text(
        f"samples = {samples}\n{''.join(extra)}\n[sandbox]\ntimeout = 5.0\nworkers = 2\n\n"
        + "\n".join(models)
    )
    db = tmp / f"log-{len(list(tmp.glob('log-*.db')))}.db"
    proc = run_cli(
        "solve", str(problem), "--config", str(config), "--db", str(db), "--json", cwd=tmp
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    with sqlite3.connect(db) as conn:
        stored = json.loads(conn.execute("SELECT trace_json FROM decisions").fetchone()[0])
    assert stored == data["trace"]["add"]
    return proc.returncode, data, db


def _chosen_code(data: dict[str, Any]) -> str:
    return data["solution"].split("def add", 1)[1]


def test_parsing_keeps_single_line_asserts_that_call_the_target() -> None:
    reply = _fence(
        "assert add(1,1)==2",
        "    assert add(10, 5) == 15",  # indented (inside a test function): kept
        "assert sub(1) == 0",  # not the target
        "assert add(1,",  # a statement over two lines: dropped
        "       2) == 3",
        "assert add(1, 1) == 2",  # a duplicate once normalised
        "assert add(2, 3) == 5 + ",  # does not parse
        "x = add(4, 4)",
        "assert True",
    )
    assert parse_tests(reply, "add") == ["assert add(1, 1) == 2", "assert add(10, 5) == 15"]
    visible = (
        "def test_x():\n    assert add(2, 3) == 5\n    assert (\n        add(1, 2) == 3\n    )\n"
    )
    assert visible_asserts(visible, "add") == ["assert add(2, 3) == 5"]


def test_base_models_continue_the_stub_with_an_assert(problem: Path) -> None:
    _, base = _prompts(problem, chat=False)
    visible = "assert add(2, 3) == 5\nassert add(-4, 1) == -3\nassert add(0, 0) == 0\n"
    assert base.endswith(f'    """\n    pass\n\n\n# tests\n{visible}assert add(')
    _, chat = _prompts(problem, chat=True)
    assert "Write 10 new, different tests for `add`" in chat


def test_generated_tests_separate_candidates_that_tie_on_visible_tests(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    alpha_tests = _fence(
        "assert add(1, 1) == 2",
        "assert add(10, 5) == 15",
        "assert add(2, 3) == 5",  # a visible test: nothing new, dropped
        "assert sub(1) == 0",
        "assert add(1,\n       2) == 3",
    )
    models = [
        _model(tmp_path, problem, "alpha", [CORRECT, CORRECT_COMMENTED, BIG], alpha_tests),
        _model(tmp_path, problem, "beta", [BIG_BODY] * 3, "20, 1) == 21\nprint(1)\n", chat=False),
    ]
    code, data, db = _solve(tmp_path, problem, models, 3)
    assert code == 0
    trace = data["trace"]["add"]
    info = trace["generated_tests"]
    assert info["status"] == "used"
    assert [t["test"] for t in info["tests"]] == [
        "assert add(1, 1) == 2", "assert add(10, 5) == 15", "assert add(20, 1) == 21",
    ]  # fmt: skip
    assert not any(t["suspect"] for t in info["tests"])
    assert info["sources"] == [
        {"model": "alpha", "samples": 1, "kept": 2}, {"model": "beta", "samples": 1, "kept": 1},
    ]  # fmt: skip
    # Both behave alike on the visible tests; the big-argument program is the majority
    # (4 samples against 2) but passes 1 generated test against 3: 1 x sqrt(4) < 3 x sqrt(2).
    groups = [(g["size"], g["generated_passed"], g["score"]) for g in trace["groups"]]
    assert groups == [(2, 3, 4.242641), (4, 1, 2.0)]
    assert "return a + b\n" in _chosen_code(data)
    assert trace["chosen"] == {
        "candidate": trace["groups"][0]["candidates"][0], "group": 0, "pooled_groups": 1,
    }  # fmt: skip
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT target, code FROM generations WHERE target = 'add/tests'")
        assert sorted(r[1] for r in rows) == [
            "assert add(1, 1) == 2\nassert add(10, 5) == 15\nassert add(2, 3) == 5",
            "assert add(20, 1) == 21",
        ]
        # Each distinct candidate ran twice: on the visible and on the generated tests.
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (4,)

    # Without generated tests the duplicates decide, and the majority is wrong.
    _, plain, _ = _solve(tmp_path, problem, models, 3, "[strategies.vote]\ngenerated_tests = 0\n")
    assert plain["trace"]["add"]["generated_tests"]["status"] == "skipped"
    assert "a - b" in _chosen_code(plain)


def _suspect_models(tmp: Path, problem: Path) -> list[str]:
    # Three of the four tests expect a - b; two of the three distinct programs fail them.
    tests = _fence(
        "assert add(1, 1) == 2",
        "assert add(10, 5) == 5",
        "assert add(20, 4) == 16",
        "assert add(30, 10) == 20",
    )
    return [_model(tmp, problem, "alpha", [CORRECT, CORRECT_COMMENTED, BIG, TIMES], tests)]


def test_a_suspect_test_does_not_override_the_agreement(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    code, data, _ = _solve(tmp_path, problem, _suspect_models(tmp_path, problem), 4)
    assert code == 0
    trace = data["trace"]["add"]
    tests = trace["generated_tests"]["tests"]
    assert [(t["suspect"], t["passed_by"], t["failed_by"]) for t in tests] == [
        (False, 2, 1), (True, 1, 2), (True, 1, 2), (True, 1, 2),
    ]  # fmt: skip
    # Counted, the three suspect tests would give the big-argument program 4 x sqrt(1),
    # more than 1 x sqrt(2): with weight 0 the agreeing majority keeps its lead.
    eligible = [
        (g["size"], g["generated_passed"], g["suspect_passed"], g["score"])
        for g in trace["groups"]
        if g["eligible"]
    ]
    assert eligible == [(2, 1, 0, 1.414214), (1, 1, 3, 1.0)]
    assert "return a + b\n" in _chosen_code(data)


def test_visible_tests_always_dominate(tmp_path: Path, problem: Path, sandbox_image: str) -> None:
    tests = _fence("assert add(1, 1) == 2", "assert add(10, 5) == 15", "assert add(7, 3) == 10")
    models = [_model(tmp_path, problem, "alpha", [CORRECT, BIG] + [NEAR] * 6, tests)]
    code, data, _ = _solve(tmp_path, problem, models, 8)
    assert code == 0
    groups = data["trace"]["add"]["groups"]
    # The six samples that fail add(0, 0) pass every generated test: the best agreement
    # score of all, yet not eligible.
    best_overall = max(groups, key=lambda g: g["score"])
    assert best_overall["size"] == 6 and best_overall["visible_pass_rate"] < 1
    assert not best_overall["eligible"]
    assert [(g["eligible"], g["score"]) for g in groups] == [
        (True, 3.0), (True, 2.0), (False, 7.348469),
    ]  # fmt: skip
    assert data["chosen"]["add"]["pass_rate"] == 1.0
    assert "return a + b\n" in _chosen_code(data)


def test_same_seed_and_recordings_give_the_same_decision_and_trace(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    models = _suspect_models(tmp_path, problem)
    first = _solve(tmp_path, problem, models, 4)
    second = _solve(tmp_path, problem, models, 4)  # a fresh log: nothing served from cache
    assert first[1]["chosen"] == second[1]["chosen"]
    assert first[1]["trace"] == second[1]["trace"]
    assert first[1]["solution"] == second[1]["solution"]


def test_no_usable_tests_falls_back_to_the_plain_vote(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    models = [
        _model(tmp_path, problem, "alpha", [BIG, BIG, CORRECT], "I cannot write tests."),
        _model(tmp_path, problem, "beta", [BIG_BODY] * 3, None, chat=False),  # nothing recorded
    ]
    code, data, _ = _solve(tmp_path, problem, models, 3)
    trace = data["trace"]["add"]
    assert trace["generated_tests"]["status"] == "none usable"
    sources = trace["generated_tests"]["sources"]
    assert sources[0] == {"model": "alpha", "samples": 1, "kept": 0}
    assert sources[1]["model"] == "beta" and "no recorded completion" in sources[1]["error"]
    assert "plain pass-rate vote" in trace["why"]
    assert code == 0 and "a - b" in _chosen_code(data)
    assert data["failures"] == {}  # a model that cannot write tests is not a run failure


# The embedded Qwen 0.5B on a shared CPU: a minute, more under load.
@pytest.mark.timeout(1800)
def test_embedded_models_smoke(tmp_path: Path, problem: Path, sandbox_image: str) -> None:
    db = tmp_path / "smoke.db"
    proc = run_cli(
        "solve", str(problem), "--strategy", "vote", "--json", "--samples", "2", "--db", str(db),
        "--models", "qwen-coder-0.5b", cwd=tmp_path, timeout=1700,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert {"scores", "generated_tests", "why"} <= set(trace)
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert row[0] == "vote" and json.loads(row[1]) == trace
