"""Recorded models for the execution-agreement strategies (`mbr-exec`, `cluster`).

Every program below passes the visible tests of examples/problems/add.py (first arguments
2, -4 and 0) except TIMES; they differ on the inputs the models propose. Each model's
candidates, their mean log-probabilities and its reply to the input prompt are recorded
for the `replay` backend; everything else is real: the CLI, extraction, the Docker sandbox
and the SQLite log.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from codeens.extract import extract_function, normalize
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from codeens.strategies.inputs import prompt_for_inputs
from conftest import REPO, run_cli


def _fenced(body: str, signature: str = "def add(a, b):") -> str:
    return f"```python\n{signature}\n{body}```"


CORRECT = _fenced("    return a + b\n", "def add(a: int, b: int) -> int:")
SWAPPED = _fenced("    return b + a\n")
SUMMED = _fenced("    return sum((a, b))\n")
# Right while a < 10; then each wrong in its own way.
BIG = _fenced("    return a + b if a < 10 else a - b\n")
BIG_TIMES = _fenced("    return a + b if a < 10 else a * b\n")
RAISES = _fenced("    if a >= 10:\n        raise ValueError('too big')\n    return a + b\n")
TIMES = _fenced("    return a * b\n")  # fails two visible tests

# Inputs: one proposed by both models, one outside the domain (every program raises on
# it), an assert (its call is kept, not its expected value), a call that reads an unknown
# name (dropped) and a call of something else.
ALPHA_INPUTS = (
    "Here are some calls:\n```python\nadd(10, 5)\nadd(1, 1)\nadd('a', 1)\n"
    "assert add(3, 3) == 7\nadd(x, 1)\nsub(1, 2)\n```\n"
)
BETA_INPUTS = "```python\nadd(20, 1)\nadd(10,5)\n```"


def copy_problem(tmp: Path) -> Path:
    path = tmp / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    return path


def model(
    tmp: Path,
    problem: Path,
    name: str,
    candidates: list[tuple[str, float]],
    inputs: str | None,
    asked: int = 10,
) -> str:
    """Record a chat model's candidates (seeds 0..) with their mean log-probabilities and
    its reply to the prompt for ``asked`` inputs (the strategies' default: 10); its config."""
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    tests = loaded.tests_for(stub.name)
    path = tmp / f"{name}.jsonl"
    solve = solve_prompt(loaded, stub, tests).text_for(True)
    for seed, (text, logprob) in enumerate(candidates):
        record(path, name, solve, seed, Completion(text, 40, 20, mean_logprob=logprob))
    if inputs is not None:
        prompt = prompt_for_inputs(loaded, stub, tests, asked).text_for(True)
        record(path, name, prompt, 0, Completion(inputs, 60, 30))
    return f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{path}"\n'


def solve(
    tmp: Path, problem: Path, strategy: str, models: list[str], samples: int, extra: str = ""
) -> tuple[int, dict[str, Any]]:
    """``codeens solve --strategy`` on the recorded models; the decision is in the log."""
    config = tmp / "codeens.toml"
    config.write_text(
        f"samples = {samples}\n{extra}\n[sandbox]\ntimeout = 5.0\nworkers = 2\n\n"
        + "\n".join(models)
    )
    db = tmp / f"log-{len(list(tmp.glob('log-*.db')))}.db"
    proc = run_cli(
        "solve", str(problem), "--strategy", strategy, "--config", str(config), "--db",
        str(db), "--json", cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert row[0] == strategy and json.loads(row[1]) == data["trace"]["add"]
    return proc.returncode, data


def chosen_body(data: dict[str, Any]) -> str:
    """The chosen program's body as it landed in the solution (after the docstring)."""
    return data["solution"].rsplit('"""', 1)[1]


def short_hash(problem: Path, fenced: str) -> str:
    """The candidate hash (12 characters) the pipeline gives the program in ``fenced``."""
    code = extract_function(fenced, load_problem(problem).stubs[0])
    assert code is not None
    return hashlib.sha256(normalize(code).encode()).hexdigest()[:12]
