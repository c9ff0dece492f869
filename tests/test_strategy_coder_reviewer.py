"""The ``coder-reviewer`` strategy, end to end through the installed CLI.

Candidates are recorded generations (the ``replay`` backend); the scoring model is the
real SmolLM2-135M in llama.cpp; extraction, the Docker sandbox and the SQLite log are real.

The problem: "Return the number of vowels in the string s." with one visible test,
``count_vowels("aeiou") == 5``, which ``return len(s)`` passes too. Measured with SmolLM2
(coder, then reviewer; sum over tokens / tokens):

    len(s)           coder -19.65 / 7  = -2.81   reviewer -31.70 / 24 = -1.32
    counts vowels    coder -23.86 / 20 = -1.19   reviewer -29.56 / 24 = -1.23

Per-token means pick the vowel counter on both terms. Summed, the coder prefers the
7-token ``len(s)`` (the length bias ``normalize`` exists for) while the reviewer still
prefers the vowel counter, so alpha decides: 1 picks ``len(s)``, 0 the counter.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import SMOLLM2

from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from conftest import run_cli

pytestmark = pytest.mark.docker
pytest_plugins = ["models_fixtures"]

PROBLEM = '''def count_vowels(s: str) -> int:
    """Return the number of vowels in the string s.

    >>> count_vowels("aeiou")
    5
    """
    ...
'''
HEAD = "```python\ndef count_vowels(s: str) -> int:\n"
LENGTH = HEAD + "    return len(s)\n```"  # passes the visible test, counts every letter
VOWELS = HEAD + '    return sum(1 for c in s.lower() if c in "aeiou")\n```'
ZERO = HEAD + "    return 0\n```"  # fails the visible test


class Workspace:
    """The problem, one replay model ``alpha`` and a llama.cpp scorer ``smol``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.problem_path = tmp / "vowels.py"
        self.problem_path.write_text(PROBLEM)
        problem = load_problem(self.problem_path)
        stub = problem.stubs[0]
        tests = problem.tests_for(stub.name)
        self.prompt = solve_prompt(problem, stub, tests).text_for(True)
        self.recording = tmp / "alpha.jsonl"

    def samples(self, texts: list[str]) -> None:
        for seed, text in enumerate(texts):
            record(self.recording, "alpha", self.prompt, seed, Completion(text, 50, 20))

    def solve(
        self, options: str, samples: int, scorer: str = SMOLLM2, db: str = "log.db"
    ) -> tuple[int, dict[str, Any], str]:
        config = self.tmp / "codeens.toml"
        config.write_text(
            f"samples = {samples}\n[sandbox]\ntimeout = 3.0\nworkers = 2\n"
            f"[strategies.coder-reviewer]\n{options}\n"
            f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{self.recording}"\n'
            f'[[models]]\nname = "smol"\nbackend = "llamacpp"\nlocation = "{scorer}"\n'
            "[models.options]\nn_ctx = 1024\n"
        )
        proc = run_cli(
            "solve", str(self.problem_path), "--strategy", "coder-reviewer", "--models",
            "alpha", "--config", str(config), "--db", str(self.tmp / db), "--json",
            cwd=self.tmp,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, data, proc.stderr


@pytest.mark.parametrize(
    ("options", "winner"),
    [
        ("", "aeiou"),  # alpha 0.5, per-token means
        ("normalize = false\nalpha = 1.0", "len(s)"),  # summed coder alone: length bias
        ("normalize = false\nalpha = 0.0", "aeiou"),  # summed reviewer alone
    ],
)
def test_chooses_the_program_the_docstring_describes(
    tmp_path: Path, sandbox_image: str, options: str, winner: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([LENGTH, ZERO, VOWELS])
    code, data, _ = ws.solve(options, samples=3)
    assert code == 0  # either passes the visible test
    assert winner in data["solution"]
    trace = data["trace"]["count_vowels"]
    assert trace["scorer"] == "smol" and trace["best_pass_rate"] == 1.0
    rows = trace["candidates"]
    assert trace["chosen"] == data["chosen"]["count_vowels"]["candidate"] == rows[0]["candidate"]
    scored = [r for r in rows if r["why"] == "scored"]
    assert len(scored) == 2 and rows[:2] == scored
    assert rows[2]["pass_rate"] == 0.0 and rows[2]["why"].startswith("not scored: visible")
    alpha, normalize = trace["alpha"], trace["normalize"]
    for row in scored:
        coder, reviewer = row["coder"], row["reviewer"]
        for term in (coder, reviewer):
            assert term["logprob"] < 0 and term["tokens"] > 0
            expected = term["logprob"] / term["tokens"] if normalize else term["logprob"]
            assert term["term"] == pytest.approx(expected, abs=1e-5)
        combined = alpha * coder["term"] + (1 - alpha) * reviewer["term"]
        assert row["score"] == pytest.approx(combined, abs=1e-5)
    assert scored[0]["score"] > scored[1]["score"]
    # The reviewer continuation is the same docstring for every candidate.
    assert scored[0]["reviewer"]["tokens"] == scored[1]["reviewer"]["tokens"]
    with sqlite3.connect(tmp_path / "log.db") as conn:
        logged = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert logged[0] == "coder-reviewer" and json.loads(logged[1]) == trace


def test_a_scorer_that_cannot_score_falls_back_and_says_so(
    tmp_path: Path, sandbox_image: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([VOWELS, LENGTH, LENGTH])
    code, data, stderr = ws.solve("", samples=3, scorer=str(tmp_path / "missing.gguf"))
    assert code == 0
    trace = data["trace"]["count_vowels"]
    assert "smol cannot score" in trace["fallback"] and "missing.gguf" in trace["fallback"]
    assert "smol cannot score" in stderr
    assert all("score" not in row for row in trace["candidates"])
    # Pass rate and behaviour tie: the program sampled twice wins the fallback order.
    assert "len(s)" in data["solution"]


def test_no_model_that_can_score_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.samples([VOWELS])
    config = tmp_path / "only-replay.toml"
    config.write_text(
        f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{ws.recording}"\n'
    )
    for extra, message in [
        ("", "no model can score text"),
        ('[strategies.coder-reviewer]\nscorer = "alpha"\n', "the replay backend cannot score"),
        ('[strategies.coder-reviewer]\nscorer = "nobody"\n', "unknown model 'nobody'"),
    ]:
        config.write_text(config.read_text().split("[strategies")[0] + extra)
        proc = run_cli(
            "solve", str(ws.problem_path), "--strategy", "coder-reviewer", "--config",
            str(config), "--db", str(tmp_path / "log.db"), cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_score_ensemble_takes_coder_reviewer_as_a_scorer(
    tmp_path: Path, sandbox_image: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([LENGTH, VOWELS])
    config = tmp_path / "codeens.toml"
    config.write_text(
        '[strategies.score-ensemble]\nscorers = ["pass_rate", "coder_reviewer"]\n'
        f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{ws.recording}"\n'
        f'[[models]]\nname = "smol"\nbackend = "llamacpp"\nlocation = "{SMOLLM2}"\n'
    )
    proc = run_cli(
        "solve", str(ws.problem_path), "--strategy", "score-ensemble", "--models", "alpha",
        "--samples", "2", "--config", str(config), "--db", str(tmp_path / "log.db"), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    scorers = data["trace"]["count_vowels"]["scorers"]
    assert scorers["coder_reviewer"] == {"used": True, "note": "scored by smol"}
    assert "aeiou" in data["solution"]
