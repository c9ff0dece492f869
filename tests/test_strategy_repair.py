"""``repair`` end to end: recorded generations (``replay``), the real sandbox, a real log.

A repair prompt holds the fed-back program's real test results, so the recordings are keyed
by the prompts the strategy's own builder makes from candidates really executed here
(:func:`_executed`, in the process sandbox, whose driver is the Docker one's). Had the
strategy asked anything else, the replay model would have had nothing recorded for it and
the run's ``failures`` would say so. Every model has equal prices, so the default repairer
is the last configured one, ``beta``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.extract import extract_function, normalize
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import Problem, fill, load_problem
from codeens.prompts import solve_prompt
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
from codeens.strategies.interface import Candidate as CandidateValue
from codeens.strategies.moa_prompts import Reference, layer_prompt
from codeens.strategies.repair import INSTRUCTION
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

CORRECT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n"
MINUS = "```python\ndef add(a, b):\n    return a - b\n```"
TIMES = "```python\ndef add(a, b):\n    return a * b\n```"
ABS_PLUS = "```python\ndef add(a, b):\n    return abs(a) + b\n```"
OFF_BY_ONE = "```python\ndef add(a, b):\n    return a + b + 1\n```"
TIMEOUT = 2.0
MAX_CHARS = 4000


@pytest.fixture
def problem(tmp_path: Path) -> Problem:
    target = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", target)
    return load_problem(target)


def _first_prompt(problem: Problem) -> str:
    stub = problem.stubs[0]
    return solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)


def _executed(problem: Problem, text: str) -> CandidateValue:
    """The candidate ``text`` becomes, run on the visible tests."""
    stub = problem.stubs[0]
    code = extract_function(text, stub)
    assert code is not None, text
    program = fill(problem, {stub.name: code}, keep_tests=False)
    box = ProcessSandbox(Limits(timeout=TIMEOUT))
    result = box.run(Candidate("c.py", program), parse_test_suite(problem.tests_for(stub.name)))
    digest = hashlib.sha256(normalize(code).encode()).hexdigest()
    return CandidateValue(digest, code, program, result=result)


def _repair_prompt(problem: Problem, text: str) -> str:
    """The prompt that feeds the program in ``text`` back, with its real results."""
    stub = problem.stubs[0]
    fed = _executed(problem, text)
    reference = Reference(fed.code, fed.result)
    prompt = layer_prompt(
        problem, stub, problem.tests_for(stub.name), [reference], MAX_CHARS, INSTRUCTION
    )
    return prompt.text_for(True)


def _record(path: Path, model: str, prompt_text: str, outputs: list[str]) -> None:
    for seed, text in enumerate(outputs):
        record(path, model, prompt_text, seed, Completion(text, 50, 20))


def _config(tmp: Path, options: dict[str, Any], samples: int = 2) -> Path:
    lines = [f"samples = {samples}\n\n[sandbox]\ntimeout = {TIMEOUT}\nworkers = 2\n"]
    for name in ("alpha", "beta"):
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\n'
            f'location = "{tmp / (name + ".jsonl")}"\nchat = true\n'
        )
        (tmp / f"{name}.jsonl").touch()
    lines.append("[strategies.repair]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path = tmp / "codeens.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _solve(tmp: Path, problem: Problem, config: Path) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(
        "solve", str(problem.path), "--config", str(config), "--db", str(tmp / "log.db"),
        "--json", "--strategy", "repair", cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def _generations(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT model, origin, prompt FROM generations ORDER BY id").fetchall()


def test_a_repaired_program_passes_and_is_chosen(tmp_path: Path, problem: Problem) -> None:
    first = _first_prompt(problem)
    _record(tmp_path / "alpha.jsonl", "alpha", first, [MINUS, TIMES])
    _record(tmp_path / "beta.jsonl", "beta", first, [ABS_PLUS, TIMES])
    # abs(a) + b passes 2/3 and is fed back first; its repair passes: a * b is never fed.
    repair = _repair_prompt(problem, ABS_PLUS)
    _record(tmp_path / "beta.jsonl", "beta", repair, [TIMES, CORRECT])

    code, data, stderr = _solve(tmp_path, problem, _config(tmp_path, {}))

    assert code == 0, stderr
    assert data["failures"] == {}
    assert data["status"] == "solved" and "return a + b" in data["solution"]
    rows = _generations(tmp_path / "log.db")
    assert [(m, o) for m, o, _p in rows] == [
        ("alpha", "sample"), ("alpha", "sample"), ("beta", "sample"), ("beta", "sample"),
        ("beta", "repair:1"), ("beta", "repair:1"),
    ]  # fmt: skip
    fed = rows[4][2]
    assert fed == repair
    # The program and its failing assertion with the values compared; the others not.
    for expected in ("return abs(a) + b", "assert add(-4, 1) == -3: 5 == -3 is false"):
        assert expected in fed, expected
    assert "passed 2/3 tests" in fed and "return a * b" not in fed
    trace = data["trace"]["add"]
    assert trace["repairer"] == "beta"
    assert len(trace["rounds"]) == 1 and len(trace["rounds"][0]["repairs"]) == 1
    step = trace["rounds"][0]["repairs"][0]
    assert step["fed"]["pass_rate"] == round(2 / 3, 6)
    assert step["fed"]["failures"] == ["assert add(-4, 1) == -3: 5 == -3 is false"]
    assert step["samples"] == 2 and step["passed"] is True
    # a * b came back again: it is the first round's program, not a new one.
    assert [r["origin"] for r in step["returned"]] == ["sample", "repair:1"]
    assert trace["stopped"].startswith("round 1 produced a candidate that passes")
    assert trace["scores"][0]["origin"] == "repair:1" and trace["scores"][0]["pass_rate"] == 1
    assert data["chosen"]["add"]["candidate"] == trace["scores"][0]["candidate"]


def _two_round_recordings(tmp: Path, problem: Problem) -> None:
    first = _first_prompt(problem)
    _record(tmp / "alpha.jsonl", "alpha", first, [MINUS])
    _record(tmp / "beta.jsonl", "beta", first, [OFF_BY_ONE])
    # Round 1 fixes a - b only partly; round 2 feeds back that partial fix, not a - b again.
    _record(tmp / "beta.jsonl", "beta", _repair_prompt(problem, MINUS), [ABS_PLUS])
    _record(tmp / "beta.jsonl", "beta", _repair_prompt(problem, ABS_PLUS), [CORRECT])


def test_round_one_fails_again_and_round_two_succeeds(tmp_path: Path, problem: Problem) -> None:
    _two_round_recordings(tmp_path, problem)
    config = _config(tmp_path, {"repair_top_k": 1, "samples": 1}, samples=1)

    code, data, stderr = _solve(tmp_path, problem, config)

    assert code == 0, stderr
    assert data["failures"] == {}
    assert "return a + b" in data["solution"]
    rows = _generations(tmp_path / "log.db")
    assert [o for _m, o, _p in rows] == ["sample", "sample", "repair:1", "repair:2"]
    assert "-1 == 5 is false" in rows[2][2] and "5 == -3 is false" in rows[3][2]
    trace = data["trace"]["add"]
    assert [r["round"] for r in trace["rounds"]] == [1, 2]
    one, two = (r["repairs"][0] for r in trace["rounds"])
    assert "return a - b" not in rows[3][2]
    assert one["passed"] is False and one["returned"][0]["pass_rate"] == round(2 / 3, 6)
    assert two["fed"]["candidate"] == one["returned"][0]["candidate"]
    assert two["passed"] is True and trace["scores"][0]["origin"] == "repair:2"


def test_token_budget_stops_the_loop_and_the_best_so_far_is_chosen(
    tmp_path: Path, problem: Problem
) -> None:
    _two_round_recordings(tmp_path, problem)
    # One repair call spends 70 tokens: round 2 may not start.
    options = {"repair_top_k": 1, "samples": 1, "max_tokens": 70}
    code, data, stderr = _solve(tmp_path, problem, _config(tmp_path, options, samples=1))

    assert code == 1, stderr  # nothing passes every visible test: unsolved
    assert data["failures"] == {}
    rows = _generations(tmp_path / "log.db")
    assert [o for _m, o, _p in rows] == ["sample", "sample", "repair:1"]
    trace = data["trace"]["add"]
    assert trace["stopped"] == "token budget spent: 70 of max_tokens 70"
    assert trace["repair_tokens"] == 70 and [r["round"] for r in trace["rounds"]] == [1]
    # Not solved, but the partial fix (2/3) beats a - b (1/3) and a + b + 1 (0/3).
    assert data["status"] == "unsolved"
    assert "abs(a) + b" in data["solution"]
    assert [s["pass_rate"] for s in trace["scores"]] == [round(2 / 3, 6), round(1 / 3, 6), 0]


def test_no_repair_when_a_first_round_candidate_passes(tmp_path: Path, problem: Problem) -> None:
    first = _first_prompt(problem)
    _record(tmp_path / "alpha.jsonl", "alpha", first, [MINUS, CORRECT])
    _record(tmp_path / "beta.jsonl", "beta", first, [TIMES, ABS_PLUS])

    code, data, stderr = _solve(tmp_path, problem, _config(tmp_path, {}))

    assert code == 0, stderr
    assert data["failures"] == {}
    rows = _generations(tmp_path / "log.db")
    assert len(rows) == 4 and not [o for _m, o, _p in rows if o.startswith("repair")]
    trace = data["trace"]["add"]
    assert trace["rounds"] == [] and trace["repair_tokens"] == 0
    assert trace["stopped"] == "a first-round candidate passes every visible test: no repair"
    assert "return a + b" in data["solution"]


def test_unknown_repairer_is_one_clear_error(tmp_path: Path, problem: Problem) -> None:
    code, data, stderr = _solve(tmp_path, problem, _config(tmp_path, {"repairer": "ghost"}))
    assert code == 2 and data == {}
    assert stderr.strip().splitlines() == [
        "Error: strategy repair: unknown model 'ghost' in [strategies.repair] "
        "(configured: alpha, beta)"
    ]
