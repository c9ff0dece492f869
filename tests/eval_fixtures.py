"""Replay-model eval fixtures shared by the eval tests.

The models are `replay` models (a real Model subclass) whose recordings answer the exact
prompts an eval sends: ``good`` writes the canonical solution, ``bad`` a program that
returns the first visible assert's expected value (it passes that test, little else).
Everything else in the runs built from these is the real pipeline. Also here: the headless
chromium the report tests open pages with.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from codeens.evals import runner
from codeens.evals.benchmarks import BENCHMARKS, BenchmarkProblem, select
from codeens.evals.mbpp import BUNDLED
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.prompts import solve_prompt
from conftest import REPO, run_cli

# The machine's shared copy when there is one (byte-identical, see test_eval_benchmarks),
# else the copy shipped with codeens.
SHARED_MBPP = REPO.parent / "shared" / "datasets" / "mbpp"
MBPP_DATA = SHARED_MBPP if SHARED_MBPP.is_dir() else BUNDLED
HUMANEVAL_IDS = ["HumanEval/0", "HumanEval/2", "HumanEval/4"]
MBPP_IDS = ["11", "12", "14"]
SAMPLES = 2


def items(benchmark: str, ids: list[str]) -> list[BenchmarkProblem]:
    data = MBPP_DATA if benchmark == "mbpp" else None
    return select(BENCHMARKS.get(benchmark)().load("test", data), ids=ids)


def _visible_answer(item: BenchmarkProblem) -> str:
    """A program returning the first visible assert's expected value: passes it, little else."""
    problem = runner.as_problem(item, "x")
    tests = problem.tests_for(item.entry_point)
    for node in ast.walk(ast.parse(tests)):
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Eq):
            value = ast.unparse(node.comparators[0])
            return f"def {item.entry_point}(*args):\n    return {value}\n"
    return f"def {item.entry_point}(*args):\n    return None\n"


def _canonical(item: BenchmarkProblem) -> str:
    return item.canonical


ANSWERS: dict[str, Callable[[BenchmarkProblem], str]] = {
    "good": _canonical,
    "bad": _visible_answer,
}


def setup_replay(tmp_path: Path, benchmark: str, ids: list[str]) -> Path:
    """Recordings for every prompt of the slice, and a config naming the replay models."""
    recording = tmp_path / "recording.jsonl"
    for item in items(benchmark, ids):
        problem = runner.as_problem(item, benchmark)
        stub = problem.stubs[0]
        prompt = solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)
        for name, answer in ANSWERS.items():
            for seed in range(SAMPLES):
                text = f"```python\n{answer(item)}```\n"
                record(recording, name, prompt, seed, Completion(text, 100, 10 + seed))
    config = tmp_path / "codeens.toml"
    lines = ["[sandbox]\ntimeout = 5.0\nworkers = 2\n"]
    for price, name in enumerate(ANSWERS, start=1):
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{recording}"\n'
            f"price_output_per_mtok = {price}.0\n"
        )
    config.write_text("\n".join(lines))
    return config


def run_eval(
    tmp_path: Path, config: Path, db: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "eval",
        *args,
        "--config",
        str(config),
        "--db",
        str(db),
        "--json",
        "--quiet",
        cwd=tmp_path,
        timeout=600,
    )


BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: `bash scripts/bootstrap.sh test` installs it")
    return found


def browser(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's chromium, headless and offline, with ``args`` (a URL last)."""
    return subprocess.run(
        [chromium(), *BROWSER_FLAGS, "--virtual-time-budget=10000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
