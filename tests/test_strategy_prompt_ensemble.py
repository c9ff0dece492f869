"""`prompt-ensemble`: one model asked under several prompt variants, then `vote` chooses.

Recorded completions (`replay`, one recording per variant's prompt), the real CLI,
extraction, Docker sandbox and SQLite log.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.extract import extract_function
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.strategies.prompt_variants import variant_prompt
from conftest import REPO, run_cli

MINUS = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"
MINUS_BODY = "    return a - b\n"  # the same program, continued by a base model
PLAN = (
    "Plan:\n1. Take a and b.\n2. Return their sum, written `def add` style.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n"
)
TESTS_FIRST = (
    "```python\nassert add(1, 2) == 3\nassert add(-1, 1) == 0\n```\n\n"
    "```python\ndef add(a, b):\n    return b + a\n```\n"
)
DIFFERENT = "```python\ndef add(a, b):\n    return sum((a, b))\n```"


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    return path


def _models(tmp: Path, problem: Path) -> str:
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    tests = loaded.tests_for(stub.name)
    shown = extract_function(MINUS, stub)
    assert shown is not None
    alpha, beta = tmp / "alpha.jsonl", tmp / "beta.jsonl"
    answers = {"direct": MINUS, "plan": PLAN, "tests-first": TESTS_FIRST, "differently": DIFFERENT}
    for variant, text in answers.items():
        prompt = variant_prompt(variant, loaded, stub, tests, shown)  # type: ignore[arg-type]
        record(alpha, "alpha", prompt.text_for(True), 0, Completion(text, 40, 20))
    direct = variant_prompt("direct", loaded, stub, tests)
    record(beta, "beta", direct.text_for(False), 0, Completion(MINUS_BODY, 30, 10))
    return (
        f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{alpha}"\n\n'
        f'[[models]]\nname = "beta"\nbackend = "replay"\nlocation = "{beta}"\nchat = false\n'
    )


def _solve(tmp: Path, problem: Path, options: str, db: Path) -> tuple[int, Any]:
    config = tmp / "codeens.toml"
    config.write_text(
        "samples = 4\n[strategies.vote]\ngenerated_tests = 0\n"
        f"[strategies.prompt-ensemble]\n{options}\n[sandbox]\ntimeout = 5.0\n\n"
        + _models(tmp, problem)
    )
    proc = run_cli(
        "solve", str(problem), "--strategy", "prompt-ensemble", "--config", str(config),
        "--db", str(db), "--json", cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_variants_find_what_the_direct_prompt_misses_and_are_measured(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    db = tmp_path / "log.db"
    code, data = _solve(tmp_path, problem, "", db)
    assert code == 0 and "a - b" not in data["solution"]
    trace = data["trace"]["add"]
    assert trace["samples_per_variant"] == 1 and trace["select"] == "vote"
    table = trace["variants"]
    measured = {
        v: (t["samples"], len(t["candidates"]), len(t["passing"])) for v, t in table.items()
    }
    assert measured == {
        "direct": (2, 1, 0), "plan": (1, 1, 1), "tests-first": (1, 1, 1), "differently": (1, 1, 1),
    }  # fmt: skip
    assert table["direct"]["models"] == {"alpha": 1, "beta": 1}
    # A base model only continues the stub: its prompt is the same under every variant.
    assert set(table["plan"]["skipped"]) == {"beta"}
    # `differently` was shown the program sampled most often: the wrong one.
    assert table["differently"]["shown"] == table["direct"]["candidates"][0]
    assert trace["chosen_from"] and "direct" not in trace["chosen_from"]
    assert trace["selection"]["generated_tests"]["status"] == "skipped"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT model, origin, raw_output, code FROM generations").fetchall()
        stored = json.loads(conn.execute("SELECT trace_json FROM decisions").fetchone()[0])
    assert stored == trace
    origins = sorted((m, o) for m, o, _raw, _code in rows)
    assert origins == [
        ("alpha", "prompt:differently"), ("alpha", "prompt:direct"), ("alpha", "prompt:plan"),
        ("alpha", "prompt:tests-first"), ("beta", "prompt:direct"),
    ]  # fmt: skip
    by_origin = {o: (raw, c) for _m, o, raw, c in rows if _m == "alpha"}
    # The plan and the test cases stay in the raw output; only the function is the code.
    assert "Plan:" in by_origin["prompt:plan"][0] and "Plan" not in by_origin["prompt:plan"][1]
    assert "assert" in by_origin["prompt:tests-first"][0]
    assert by_origin["prompt:tests-first"][1] == "def add(a, b):\n    return b + a\n"

    # The direct prompt alone never leaves the wrong program.
    code, direct = _solve(
        tmp_path, problem, 'variants = ["direct"]\nsamples = 1', tmp_path / "d.db"
    )
    assert code == 1 and "a - b" in direct["solution"]
    assert list(direct["trace"]["add"]["variants"]) == ["direct"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('select = "cascade"', "cascade does its own sampling"),
        ('select = "votte"', "votte"),
        ('variants = ["plan", "plan"]', "each variant once"),
        ('variants = ["vague"]', "variants"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, options: str, message: str) -> None:
    config = tmp_path / "codeens.toml"
    config.write_text(
        f"[strategies.prompt-ensemble]\n{options}\n\n"
        '[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "x.jsonl"\n'
    )
    proc = run_cli(
        "solve", str(REPO / "examples" / "problems" / "add.py"), "--strategy",
        "prompt-ensemble", "--config", str(config), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
