"""The ``cascade`` strategy and ``codeens cascade calibrate``, end to end.

Models are the ``replay`` backend (recorded outputs, priced like real models); everything
else is real: extraction, the Docker sandbox, the SQLite log and the installed CLI.
Prices: alpha 1, beta 10, gamma 100 per 1M output tokens; every sample has 50 input and
20 output tokens, so a stage of 4 samples costs 8e-5 (alpha), 8e-4 (beta), 8e-3 (gamma)
and 280 tokens.
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
from codeens.strategies.cascade import DEFAULT_THRESHOLD
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker


def fenced(body: str, head: str = "def add(a, b):") -> str:
    return f"```python\n{head}\n    {body}\n```"


CORRECT = fenced("return a + b")
CORRECT_COMMENTED = fenced("# the sum\n    return a + b  # done")
CORRECT_OTHER = fenced("return sum((a, b))")
ABS = fenced("return abs(a + b)")  # passes add(2, 3) and add(0, 0), fails add(-4, 1)
MINUS = fenced("return a - b")
MINUS_TOO = fenced("result = x - y\n    return result", "def add(x, y):")
TIMES = fenced("return a * b")
PROSE = "I cannot help with that."
MUL = fenced("return a * b", "def mul(a, b):")
MUL_OTHER = fenced("result = x * y\n    return result", "def mul(x, y):")
MUL_SOURCE = (
    'def mul(a: int, b: int) -> int:\n    """Return a times b.\n\n    >>> mul(2, 3)\n    6\n'
    '    >>> mul(-4, 1)\n    -4\n    >>> mul(0, 5)\n    0\n    """\n    ...\n'
)
PRICES = {"alpha": 1.0, "beta": 10.0, "gamma": 100.0}
STAGE = {"alpha": 8e-5, "beta": 8e-4, "gamma": 8e-3}


def problem_file(tmp: Path, name: str = "add") -> tuple[Path, str]:
    """The problem file and the chat prompt text the recordings must answer."""
    path = tmp / f"{name}.py"
    if name == "add":
        shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    else:
        path.write_text(MUL_SOURCE)
    problem = load_problem(path)
    stub = problem.stubs[0]
    return path, solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)


def recording(tmp: Path, model: str, prompt: str, outputs: list[str]) -> Path:
    path = tmp / f"{model}.jsonl"
    for seed, text in enumerate(outputs):
        record(path, model, prompt, seed, Completion(text, 50, 20))
    return path


def config(tmp: Path, models: list[str], options: str = "", name: str = "codeens.toml") -> Path:
    """Models listed in the given order (most expensive first, to check the ordering)."""
    lines = ["samples = 4\n[sandbox]\ntimeout = 3.0\nworkers = 2\n"]
    if options:
        lines.append(f"[strategies.cascade]\n{options}\n")
    for name in models:
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\n'
            f'location = "{tmp / f"{name}.jsonl"}"\nprice_output_per_mtok = {PRICES[name]}\n'
        )
    path = tmp / name
    path.write_text("\n".join(lines))
    return path


def solve(
    tmp: Path, problem: Path, cfg: Path, db: str = "log.db", strategy: str = "cascade"
) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(
        "solve", str(problem), "--strategy", strategy, "--config", str(cfg),
        "--db", str(tmp / db), "--json", cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def generated_models(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT model FROM generations ORDER BY 1")]


def test_accepts_at_the_cheap_stage_when_it_agrees_and_passes(
    tmp_path: Path, sandbox_image: str
) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "alpha", prompt, [CORRECT, CORRECT_COMMENTED, CORRECT_OTHER, MINUS])
    recording(tmp_path, "beta", prompt, [CORRECT] * 4)
    options = "threshold = 0.5"
    code, data, _ = solve(tmp_path, problem, config(tmp_path, ["beta", "alpha"], options))
    assert code == 0 and data["status"] == "solved"
    trace = data["trace"]["add"]
    assert trace["order"] == ["alpha", "beta"]  # by price, not by config order
    assert trace["escalated"] is False and trace["accepted_stage"] == 1
    (stage,) = trace["stages"]
    assert stage == {
        "stage": 1, "model": "alpha", "k": 4, "samples": 4, "parsed": 4, "distinct": 3,
        "agreement": 0.75, "threshold": 0.5, "best_pass_rate": 1.0, "passed": True,
        "candidate": data["chosen"]["add"]["candidate"], "decision": "accept",
        "cost": STAGE["alpha"], "tokens": 280, "cumulative_cost": STAGE["alpha"],
        "cumulative_tokens": 280,
    }  # fmt: skip
    # The two spellings of a + b are one candidate with two samples: it wins its group.
    assert "return a + b" in data["solution"]
    assert generated_models(tmp_path / "log.db") == ["alpha"]  # beta was never asked
    with sqlite3.connect(tmp_path / "log.db") as conn:
        logged = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert logged[0] == "cascade" and json.loads(logged[1]) == trace


@pytest.mark.parametrize(
    ("case", "alpha", "options", "decisions", "agreement"),
    [
        ("disagrees", [MINUS, CORRECT, TIMES, PROSE], "", ["escalate", "accept"], 0.25),
        ("fails", [MINUS, MINUS_TOO] * 2, "", ["escalate", "accept"], 1.0),
        ("missing", None, "", ["escalate", "accept"], 0.0),
        ("per-stage", [MINUS, CORRECT, TIMES, PROSE], "thresholds = [0.25]", ["accept"], 0.25),
    ],
)
def test_escalates_when_the_cheap_model_disagrees_fails_or_is_missing(
    tmp_path: Path,
    sandbox_image: str,
    case: str,
    alpha: list[str] | None,
    options: str,
    decisions: list[str],
    agreement: float,
) -> None:
    problem, prompt = problem_file(tmp_path)
    if alpha is not None:
        recording(tmp_path, "alpha", prompt, alpha)
    recording(tmp_path, "beta", prompt, [CORRECT_OTHER] * 4)
    code, data, _ = solve(tmp_path, problem, config(tmp_path, ["alpha", "beta"], options))
    assert code == 0 and data["status"] == "solved", data
    trace = data["trace"]["add"]
    assert [s["decision"] for s in trace["stages"]] == decisions
    assert trace["stages"][0]["agreement"] == agreement
    assert trace["escalated"] is (len(decisions) == 2)
    if case == "missing":
        assert "replay file not found" in trace["stages"][0]["note"]
        assert trace["stages"][0]["samples"] == 0 and "alpha" in data["failures"]
    if len(decisions) == 2:
        last = trace["stages"][1]
        assert (last["model"], last["agreement"], last["passed"]) == ("beta", 1.0, True)
        assert "sum((a, b))" in data["solution"]
        expected_cost = (0 if case == "missing" else STAGE["alpha"]) + STAGE["beta"]
        assert trace["cost"] == pytest.approx(expected_cost)
        assert trace["stages"][1]["cumulative_cost"] == pytest.approx(expected_cost)
    else:
        assert trace["thresholds"] == [0.25, DEFAULT_THRESHOLD]
        assert "return a + b" in data["solution"]


def test_exhausted_cascade_returns_the_best_candidate_so_far(
    tmp_path: Path, sandbox_image: str
) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "alpha", prompt, [MINUS, ABS, MINUS_TOO, PROSE])
    recording(tmp_path, "beta", prompt, [TIMES] * 4)
    code, data, _ = solve(tmp_path, problem, config(tmp_path, ["alpha", "beta"]))
    assert code == 1 and data["status"] == "unsolved"
    trace = data["trace"]["add"]
    assert [s["decision"] for s in trace["stages"]] == ["escalate", "exhausted"]
    assert trace["accepted_stage"] is None
    # abs(a + b) passes 2 of 3 tests, more than anything else either model wrote.
    assert "abs(a + b)" in data["solution"] and data["chosen"]["add"]["pass_rate"] == 2 / 3


@pytest.mark.parametrize(
    ("models", "options", "stopped_at"),
    [
        (["gamma", "beta", "alpha"], "max_cost = 0.0005", 2),  # exceeded by beta's stage
        (["alpha", "beta"], "max_cost = 0.00008", 1),  # used up exactly by alpha's stage
        (["alpha", "beta"], "max_tokens = 100", 1),
    ],
)
def test_budget_stops_the_cascade(
    tmp_path: Path, sandbox_image: str, models: list[str], options: str, stopped_at: int
) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "alpha", prompt, [MINUS, CORRECT, TIMES, PROSE])
    recording(tmp_path, "beta", prompt, [TIMES, CORRECT_OTHER, MINUS, PROSE])
    recording(tmp_path, "gamma", prompt, [CORRECT_OTHER] * 4)
    code, data, _ = solve(tmp_path, problem, config(tmp_path, models, options))
    trace = data["trace"]["add"]
    decisions = [s["decision"] for s in trace["stages"]]
    assert decisions == ["escalate"] * (stopped_at - 1) + ["budget-stop"]
    assert generated_models(tmp_path / "log.db") == sorted(["alpha", "beta", "gamma"][:stopped_at])
    # The best so far passes: alpha's a + b (first of the tied one-sample passing programs).
    assert code == 0 and "return a + b" in data["solution"]
    assert trace["cost"] == pytest.approx(sum(STAGE[m] for m in ["alpha", "beta"][:stopped_at]))


def test_one_model_cannot_cascade(tmp_path: Path) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "alpha", prompt, [CORRECT] * 4)
    code, data, stderr = solve(tmp_path, problem, config(tmp_path, ["alpha"]))
    assert code == 2 and data == {}
    assert stderr.strip().splitlines() == [
        "Error: strategy cascade: cascade needs at least two models; 1 configured "
        "(add [[models]] entries or use --models a,b)"
    ]


def test_same_seed_and_recordings_give_the_same_decision(
    tmp_path: Path, sandbox_image: str
) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "alpha", prompt, [MINUS, CORRECT, TIMES, PROSE])
    recording(tmp_path, "beta", prompt, [CORRECT_OTHER, CORRECT, CORRECT_OTHER, ABS])
    cfg = config(tmp_path, ["alpha", "beta"])
    runs = [solve(tmp_path, problem, cfg, db=f"run{i}.db") for i in range(2)]
    (code, first, _), (code2, second, _) = runs
    assert code == code2 == 0
    assert first["trace"] == second["trace"] and first["solution"] == second["solution"]
    assert first["trace"]["add"]["stages"][1]["agreement"] == 0.75


def calibrate(tmp: Path, cfg: Path, *extra: str) -> dict[str, Any]:
    proc = run_cli(
        "cascade", "calibrate", "--db", str(tmp / "log.db"), "--config", str(cfg), "--json",
        *extra, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_calibrate_chooses_the_cheapest_threshold_reaching_the_target(
    tmp_path: Path, sandbox_image: str
) -> None:
    add, add_prompt = problem_file(tmp_path, "add")
    mul, mul_prompt = problem_file(tmp_path, "mul")
    recording(tmp_path, "alpha", add_prompt, [ABS, CORRECT, TIMES, PROSE])
    recording(tmp_path, "beta", add_prompt, [CORRECT] * 4)
    recording(tmp_path, "alpha", mul_prompt, [MUL, MUL, MUL, MUL_OTHER])
    recording(tmp_path, "beta", mul_prompt, [MUL] * 4)
    cfg = config(tmp_path, ["beta", "alpha"])
    # History: vote on both problems (add twice: the second run is served from the log at
    # no cost, which must not change anything), then a cascade run on mul.
    for problem, strategy in [(add, "vote"), (add, "vote"), (mul, "vote"), (mul, "cascade")]:
        assert solve(tmp_path, problem, cfg, strategy=strategy)[0] == 0

    # By hand, leave-one-test-out (3 folds per problem; problems weigh the same).
    # add, alpha: abs(a+b) passes tests 1 and 3, a+b all, a*b test 3, prose does not parse.
    #   hold out test 2: abs and a+b agree on tests 1, 3 (2/4); the group's first sample is
    #     abs, which fails test 2: accepted at alpha when t <= 0.5 (wrong), else beta (right).
    #   hold out test 1 or 3: only a+b passes the rest (1/4): accepted at alpha when
    #     t <= 0.25, else beta; right either way.
    # mul: alpha's four samples all pass and agree (4/4): accepted at alpha, right.
    a, b = STAGE["alpha"], STAGE["beta"]
    expected = {
        0.1: (5 / 6, a, 0.0), 0.2: (5 / 6, a, 0.0),
        0.3: (5 / 6, (a + 2 * b / 3 + a) / 2, 1 / 3),
        0.4: (5 / 6, (a + 2 * b / 3 + a) / 2, 1 / 3),
        0.5: (5 / 6, (a + 2 * b / 3 + a) / 2, 1 / 3),
    } | {t: (1.0, (a + b + a) / 2, 0.5) for t in (0.6, 0.7, 0.8, 0.9, 1.0)}  # fmt: skip
    data = calibrate(tmp_path, cfg)
    assert data["units"] == 2 and data["evaluations"] == 6 and data["models"] == ["alpha", "beta"]
    got = {
        r["thresholds"][0]: (r["pass_rate"], r["mean_cost"], r["escalated"]) for r in data["rows"]
    }
    assert got.keys() == expected.keys()
    for threshold, row in expected.items():
        assert got[threshold] == pytest.approx(row), threshold
    assert data["choice"]["thresholds"] == [0.6, 0.6] and data["reaches_target"]
    assert data["toml"] == "[strategies.cascade]\nthreshold = 0.6"
    # A lower target is met by the cheapest threshold; plain visible-test pass cannot tell
    # thresholds apart (every accepted answer passes), so it too picks the cheapest.
    assert calibrate(tmp_path, cfg, "--target", "0.8")["choice"]["thresholds"] == [0.1, 0.1]
    plain = calibrate(tmp_path, cfg, "--no-holdout")
    assert plain["choice"]["thresholds"] == [0.1, 0.1] and plain["evaluations"] == 2
    assert {r["pass_rate"] for r in plain["rows"]} == {1.0}

    proc = run_cli(
        "cascade", "calibrate", "--db", str(tmp_path / "log.db"), "--config", str(cfg),
        "--grid", "0.5..0.6", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2:] == ["[strategies.cascade]", "threshold = 0.6"]
    assert any(line.split()[:2] == ["0.50", "0.833"] for line in lines)
    assert "choice: threshold 0.6: simulated pass rate 1.000 >= target 0.9" in proc.stdout


def test_calibrate_without_history_says_so_in_one_line(tmp_path: Path) -> None:
    problem, prompt = problem_file(tmp_path)
    recording(tmp_path, "gamma", prompt, [CORRECT])
    other = config(tmp_path, ["gamma"], name="other.toml")
    proc = run_cli(
        "solve", str(problem), "--config", str(other), "--db", str(tmp_path / "log.db"),
        "--samples", "1", "--backend", "process", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and generated_models(tmp_path / "log.db") == ["gamma"]
    cfg = config(tmp_path, ["alpha", "beta"])
    # No log file at all, and a log with runs of other models only.
    for db in ["missing.db", "log.db"]:
        proc = run_cli(
            "cascade", "calibrate", "--db", str(tmp_path / db), "--config", str(cfg),
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == ""
        assert len(proc.stdout.splitlines()) == 1 and proc.stdout.startswith("no history:")
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.timeout(1800)  # two real models on a shared CPU
def test_embedded_models_run_the_cascade(tmp_path: Path, sandbox_image: str) -> None:
    """Smoke test with real embedded models, named out of config order: the cascade
    orders them cheapest first; the trace is produced and logged."""
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    proc = run_cli(
        "solve", str(problem), "--strategy", "cascade", "--json", "--samples", "2",
        "--models", "qwen-coder-0.5b,smollm2", "--db", str(tmp_path / "log.db"),
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert trace["order"] == ["smollm2", "qwen-coder-0.5b"] and trace["k"] == 2
    assert trace["stages"][0]["model"] == "smollm2" and trace["stages"][0]["samples"] == 2
    assert trace["stages"][-1]["decision"] in ("accept", "exhausted")
    with sqlite3.connect(tmp_path / "log.db") as conn:
        logged = conn.execute("SELECT trace_json FROM decisions").fetchone()[0]
    assert json.loads(logged) == trace
