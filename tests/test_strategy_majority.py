"""`majority`: the behaviour most samples share wins, whatever its pass rate.

Recorded completions (`replay`), the real CLI, Docker sandbox and SQLite log.
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
from conftest import REPO, run_cli

CORRECT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
CORRECT_OTHER = "```python\ndef add(a, b):\n    return sum((a, b))\n```"
MINUS = "```python\ndef add(a, b):\n    return a - b\n```"
MINUS_TOO = "```python\ndef add(x, y):\n    result = x - y\n    return result\n```"
TIMES = "```python\ndef add(a, b):\n    return a * b\n```"
NO_IMPORT = (
    "```python\nimport nosuchmodule\n\n\ndef add(a, b):\n    return nosuchmodule.add(a, b)\n```"
)


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    return path


def _solve(tmp: Path, problem: Path, outputs: list[str]) -> tuple[int, dict[str, Any]]:
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    prompt = solve_prompt(loaded, stub, loaded.tests_for(stub.name)).text_for(True)
    recording = tmp / "alpha.jsonl"
    for seed, text in enumerate(outputs):
        record(recording, "alpha", prompt, seed, Completion(text, 40, 20))
    config = tmp / "codeens.toml"
    config.write_text(
        f'samples = {len(outputs)}\nstrategy = "majority"\n\n[sandbox]\ntimeout = 5.0\n\n'
        f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{recording}"\n'
    )
    db = tmp / "log.db"
    proc = run_cli(
        "solve", str(problem), "--config", str(config), "--db", str(db), "--json", cwd=tmp
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert row[0] == "majority" and json.loads(row[1]) == data["trace"]["add"]
    return proc.returncode, data


def test_the_most_common_behaviour_wins_over_a_higher_pass_rate(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # Two differently written subtractions and a duplicate: three samples that return a - b.
    code, data = _solve(tmp_path, problem, [MINUS, MINUS_TOO, MINUS, CORRECT])
    assert code == 1 and data["status"] == "unsolved"
    trace = data["trace"]["add"]
    groups = [(g["size"], g["pass_rate"], len(g["candidates"])) for g in trace["groups"]]
    assert groups == [(3, 0.333333, 2), (1, 1.0, 1)]
    assert "a - b" in data["solution"]
    # Inside the group: the program sampled twice.
    assert trace["groups"][0]["candidates"][0] == trace["chosen"]["candidate"]
    assert trace["why"] == "largest behaviour group: 3 of 4 samples (next: 1)"


def test_ties_go_to_the_pass_rate_and_silent_programs_do_not_vote(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    outputs = [MINUS, MINUS_TOO, CORRECT, CORRECT_OTHER, TIMES] + [NO_IMPORT] * 3
    code, data = _solve(tmp_path, problem, outputs)
    assert code == 0 and data["status"] == "solved"
    trace = data["trace"]["add"]
    # The program that does not import was sampled most often, but returned nothing.
    assert [e["verdict"] for e in trace["excluded"]] == ["error"]
    groups = [(g["size"], g["pass_rate"]) for g in trace["groups"]]
    assert groups == [(2, 1.0), (2, 0.333333), (1, 0.333333)]
    assert "tie broken by pass rate" in trace["why"]


# The embedded Qwen 0.5B on a shared CPU: a minute, more under load.
@pytest.mark.timeout(1800)
def test_embedded_models_smoke(tmp_path: Path, problem: Path, sandbox_image: str) -> None:
    db = tmp_path / "smoke.db"
    proc = run_cli(
        "solve", str(problem), "--strategy", "majority", "--json", "--samples", "2",
        "--models", "qwen-coder-0.5b", "--db", str(db), cwd=tmp_path, timeout=1700,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert {"groups", "why"} <= set(trace)
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert row[0] == "majority" and json.loads(row[1]) == trace
