"""The ``score-ensemble`` strategy, end to end on recorded generations.

Models are the ``replay`` backend with recorded log-probabilities and recorded judge
answers; extraction, the Docker sandbox, the SQLite log and the installed CLI are real.
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
from codeens.prompts import solve_prompt
from codeens.strategies.scorers import JUDGE_QUESTION, judge_prompt
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker


def fenced(body: str) -> str:
    return f"```python\ndef add(a, b):\n    {body}\n```"


CORRECT = fenced("return a + b")
CORRECT_OTHER = fenced("return sum((a, b))")
ABS = fenced("return abs(a + b)")  # passes 2 of the 3 visible tests
TIMES = fenced("return a * b")  # passes 1 of 3
MINUS = fenced("return a - b")  # passes 1 of 3, with other values than a * b


class Workspace:
    """The add.py problem, one replay model ``alpha`` and a config for it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.problem_path = tmp / "add.py"
        shutil.copy(REPO / "examples" / "problems" / "add.py", self.problem_path)
        self.problem = load_problem(self.problem_path)
        self.stub = self.problem.stubs[0]
        tests = self.problem.tests_for(self.stub.name)
        self.prompt = solve_prompt(self.problem, self.stub, tests).text_for(True)
        self.recording = tmp / "alpha.jsonl"

    def samples(self, outputs: list[tuple[str, float | None]]) -> None:
        for seed, (text, logprob) in enumerate(outputs):
            record(self.recording, "alpha", self.prompt, seed, Completion(text, 50, 20, logprob))

    def judge_answers(self, reply: str, answers: list[str]) -> None:
        code = extract_function(reply, self.stub)
        assert code is not None
        prompt = judge_prompt(self.stub.prompt_text, code).text_for(True)
        for seed, answer in enumerate(answers):
            record(self.recording, "alpha", prompt, seed, Completion(answer, 80, 2))

    def solve(self, options: str, samples: int, db: str = "log.db") -> tuple[int, dict[str, Any]]:
        config = self.tmp / "codeens.toml"
        config.write_text(
            f"samples = {samples}\n[sandbox]\ntimeout = 3.0\nworkers = 2\n"
            f"[strategies.score-ensemble]\n{options}\n"
            f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{self.recording}"\n'
            "price_output_per_mtok = 1.0\n"
        )
        proc = run_cli(
            "solve", str(self.problem_path), "--strategy", "score-ensemble", "--config",
            str(config), "--db", str(self.tmp / db), "--json", cwd=self.tmp,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return proc.returncode, data


# By hand: pass rates 1, 2/3, 1/3, 1/3 normalise to 1, 0.5, 0, 0; mean log-probs -1.8, -1.0,
# -0.2, -2.0 normalise over [-2.0, -0.2] to 1/9, 5/9, 1, 0.
#   mean:           a+b 5/9 = .556   abs 19/36 = .528   a*b .5   a-b 0     -> a+b
#   min:            a+b 1/9          abs .5             a*b 0    a-b 0     -> abs
#   mean - 1 x std: a+b 5/9 - 4/9    abs 19/36 - 1/36   a*b 0    a-b 0     -> abs
SCORED = [(CORRECT, -1.8), (ABS, -1.0), (TIMES, -0.2), (MINUS, -2.0)]
BY_HAND = {
    "return a + b": {"pass_rate": 1.0, "logprob": 1 / 9},
    "abs(a + b)": {"pass_rate": 0.5, "logprob": 5 / 9},
    "a * b": {"pass_rate": 0.0, "logprob": 1.0},
    "a - b": {"pass_rate": 0.0, "logprob": 0.0},
}


@pytest.mark.parametrize(
    ("options", "winner", "combined"),
    [
        ('combine = "mean"', "return a + b", 5 / 9),
        ('combine = "min"', "abs(a + b)", 0.5),
        ('combine = "uncertainty"', "abs(a + b)", 0.5),
        ('combine = "uncertainty"\nbeta = 0.0', "return a + b", 5 / 9),
    ],
)
def test_each_combine_rule_on_a_case_where_mean_and_min_disagree(
    tmp_path: Path, sandbox_image: str, options: str, winner: str, combined: float
) -> None:
    ws = Workspace(tmp_path)
    ws.samples(SCORED)
    code, data = ws.solve(f'scorers = ["pass_rate", "logprob"]\n{options}', samples=4)
    assert code == (0 if winner == "return a + b" else 1)
    assert winner in data["solution"]
    trace = data["trace"]["add"]
    assert (
        trace["chosen"] == data["chosen"]["add"]["candidate"] == trace["candidates"][0]["candidate"]
    )
    assert trace["candidates"][0]["combined"] == pytest.approx(combined, abs=1e-6)
    assert set(trace["scorers"]) == {"pass_rate", "logprob"}
    assert all(s["used"] for s in trace["scorers"].values())
    by_code = {c["candidate"]: c for c in trace["candidates"]}
    with sqlite3.connect(tmp_path / "log.db") as conn:
        rows = conn.execute("SELECT code, code_hash, mean_logprob FROM generations").fetchall()
    for code_text, code_hash, logprob in rows:
        entry = by_code[code_hash[:12]]
        expected = next(v for k, v in BY_HAND.items() if k in code_text)
        assert entry["normalised"] == pytest.approx(expected, abs=1e-6)
        assert entry["scores"]["logprob"] == pytest.approx(logprob)
    with sqlite3.connect(tmp_path / "log.db") as conn:
        logged = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert logged[0] == "score-ensemble" and json.loads(logged[1]) == trace


def test_the_judge_scores_p_yes_from_recorded_answers(tmp_path: Path, sandbox_image: str) -> None:
    ws = Workspace(tmp_path)
    ws.samples([(ABS, None), (CORRECT, None)])
    ws.judge_answers(ABS, ["No.", "Maybe", "I'd say yes"])  # 1 of the 2 that answer
    ws.judge_answers(CORRECT, ["Yes.", "no, it is wrong", "yes"])  # 2 of 3
    code, data = ws.solve('scorers = ["judge", "logprob"]\njudge_samples = 3', samples=2)
    trace = data["trace"]["add"]
    scores = {c["candidate"]: c["scores"] for c in trace["candidates"]}
    assert sorted(s["judge"] for s in scores.values()) == [0.5, 0.666667]
    assert code == 0 and "return a + b" in data["solution"]
    assert trace["scorers"]["judge"] == {"used": True, "note": "asked alpha x3"}
    # No backend here reports log-probabilities: that scorer is skipped, and says so.
    assert trace["scorers"]["logprob"]["used"] is False
    assert "no log-probabilities" in trace["scorers"]["logprob"]["note"]
    assert trace["judge"] == {"generations": 6, "tokens": 6 * 82, "cost": pytest.approx(12e-6)}
    with sqlite3.connect(tmp_path / "log.db") as conn:
        asked = conn.execute(
            "SELECT count(*) FROM generations WHERE prompt LIKE ?", (f"%{JUDGE_QUESTION}%",)
        ).fetchone()[0]
    assert asked == 6

    code, data = ws.solve('scorers = ["pass_rate", "judge"]\njudge = false', 2, db="off.db")
    trace = data["trace"]["add"]
    assert trace["scorers"]["judge"] == {"used": False, "note": "skipped: disabled (judge = false)"}
    assert "judge" not in trace and code == 0
    with sqlite3.connect(tmp_path / "off.db") as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (2,)


def test_agreement_and_determinism(tmp_path: Path, sandbox_image: str) -> None:
    ws = Workspace(tmp_path)
    ws.samples([(TIMES, -0.5), (CORRECT, -0.9), (ABS, -0.1), (CORRECT_OTHER, -0.3)])
    options = 'scorers = ["pass_rate", "agreement", "logprob"]\ncombine = "min"'
    first_code, first = ws.solve(options, samples=4, db="one.db")
    second_code, second = ws.solve(options, samples=4, db="two.db")
    assert first_code == second_code == 0
    assert first["trace"] == second["trace"] and first["solution"] == second["solution"]
    candidates = first["trace"]["add"]["candidates"]
    # a + b and sum((a, b)) behave alike: each agrees with 1 of the 3 other samples.
    agreement = sorted(c["scores"]["agreement"] for c in candidates)
    assert agreement == [0.0, 0.0, 0.333333, 0.333333]
    # min: a + b has (1, 1, 0) and sum((a, b)) (1, 1, 0.75): the second wins.
    assert "sum((a, b))" in first["solution"]
    assert candidates[0]["combined"] == pytest.approx(0.75)


@pytest.mark.timeout(1800)  # two real models and a code encoder on a shared CPU
def test_embedded_models_run_the_score_ensemble(tmp_path: Path, sandbox_image: str) -> None:
    """Smoke test with the real default models: the trace is produced and logged."""
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    proc = run_cli(
        "solve", str(problem), "--strategy", "score-ensemble", "--json", "--samples", "2",
        "--models", "qwen-coder-0.5b", "--db", str(tmp_path / "log.db"), cwd=tmp_path,
        timeout=1700,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert set(trace["scorers"]) == {"pass_rate", "agreement", "codebertscore", "logprob", "judge"}
    assert all(isinstance(s["used"], bool) for s in trace["scorers"].values())
    assert trace["candidates"] and trace["chosen"] == trace["candidates"][0]["candidate"]
    with sqlite3.connect(tmp_path / "log.db") as conn:
        logged = conn.execute("SELECT trace_json FROM decisions").fetchone()[0]
    assert json.loads(logged) == trace


def test_scorers_come_from_the_registry() -> None:
    from codeens.strategies.score_ensemble import SCORERS, Scored, ScoreEnsemble

    def shortest(ctx: Any, candidates: Any, options: Any) -> Scored:
        return Scored([-float(len(c.code)) for c in candidates])

    assert set(SCORERS.names()) >= {"pass_rate", "agreement", "codebertscore", "logprob", "judge"}
    with pytest.raises(ValueError, match="did you mean 'pass_rate'"):
        ScoreEnsemble.Options(scorers=["pass_rat"])
    with SCORERS.registered("shortest", shortest):
        assert ScoreEnsemble.Options(scorers=["shortest"]).scorers == ["shortest"]
    assert "shortest" not in SCORERS.names()
    with pytest.raises(ValueError, match="unknown scorer 'shortest'"):
        ScoreEnsemble.Options(scorers=["shortest"])
