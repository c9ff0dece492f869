"""``route``: kNN routing on a log filled by real runs (replay models, Docker, SQLite).

The history comes from ``codeens solve`` itself: three problems about adding numbers, on
which model "good" is always right and "bad" always wrong, and one about palindromes where
it is the other way round. A new adding problem must go to "good", and only "good" is asked.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.models.base import Completion, ModelConfig
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from codeens.storage import Store
from codeens.strategies.route import RouteOptions, plan_route
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

# name: (source, good's answer, bad's answer)
PROBLEMS = {
    "add": (
        'def add(a, b):\n    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n'
        '    >>> add(-1, 1)\n    0\n    """\n',
        "a + b",
        "a - b + 1",
    ),
    "add_three": (
        'def add_three(a, b, c):\n    """Return the sum of the numbers a, b and c.\n\n'
        '    >>> add_three(1, 2, 3)\n    6\n    """\n',
        "a + b + c",
        "a * b * c + 1",
    ),
    "sum_pair": (
        'def sum_pair(x, y):\n    """Add the two numbers x and y together.\n\n'
        '    >>> sum_pair(4, 5)\n    9\n    """\n',
        "x + y",
        "x * y",
    ),
    "is_palindrome": (
        'def is_palindrome(s):\n    """Return True when the string s reads the same backwards.\n\n'
        "    >>> is_palindrome('abba')\n    True\n    >>> is_palindrome('abc')\n    False\n"
        '    """\n',
        "True",
        "s == s[::-1]",
    ),
}
NEW = (
    'def plus(m, n):\n    """Return the sum of the two numbers m and n.\n\n'
    '    >>> plus(20, 22)\n    42\n    """\n',
    "m + n",
    "m - n",
)


def _write_problem(folder: Path, name: str, spec: tuple[str, str, str], recordings: Path) -> Path:
    """The problem file, and each model's two recorded answers to its prompt."""
    source, good, bad = spec
    path = folder / f"{name}.py"
    path.write_text(source)
    loaded = load_problem(path)
    stub = loaded.stubs[0]
    prompt = solve_prompt(loaded, stub, loaded.tests_for(stub.name)).text_for(True)
    params = stub.signature.split("(", 1)[1].split(")", 1)[0]
    for model, body in (("good", good), ("bad", bad)):
        for seed in range(2):
            code = f"```python\ndef {name}({params}):\n    return {body}\n```"
            tokens = 30 if model == "good" else 10
            record(recordings / f"{model}.jsonl", model, prompt, seed, Completion(code, 50, tokens))
    return path


def _config(path: Path, recordings: Path, good_price: float = 1.0, route: str = "k = 3") -> Path:
    lines = ["samples = 2\n\n[sandbox]\ntimeout = 5.0\nworkers = 2\n"]
    for name, price in (("good", good_price), ("bad", 1.0)):
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\n'
            f'location = "{recordings / (name + ".jsonl")}"\nprice_output_per_mtok = {price}\n'
        )
    lines.append(f"[strategies.route]\n{route}\n")
    path.write_text("\n".join(lines))
    return path


def _solve(problem: Path, config: Path, db: Path, strategy: str) -> tuple[dict[str, Any], str]:
    proc = run_cli(
        "solve", str(problem), "--config", str(config), "--db", str(db), "--json",
        "--strategy", strategy, cwd=problem.parent,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> dict[str, Path]:
    """A log with one real vote run per past problem, and the new problem's files."""
    root = tmp_path_factory.mktemp("route")
    recordings = root / "recordings"
    paths = {name: _write_problem(root, name, spec, recordings) for name, spec in PROBLEMS.items()}
    new = _write_problem(root, "plus", NEW, recordings)
    config = _config(root / "codeens.toml", recordings)
    db = root / "history.db"
    for name, path in paths.items():
        data, _ = _solve(path, config, db, "vote")
        winner = "bad" if name == "is_palindrome" else "good"
        assert data["status"] == "solved" and data["chosen"][name]["models"] == [winner]
    return {"root": root, "recordings": recordings, "config": config, "db": db, "new": new}


def _copy(db: Path, to: Path) -> Path:
    with sqlite3.connect(db) as source, sqlite3.connect(to) as target:
        source.backup(target)
    return to


def test_a_similar_problem_goes_to_the_model_that_was_right(
    history: dict[str, Path], tmp_path: Path
) -> None:
    runs = []
    for copy in ("one.db", "two.db"):  # same log, same recordings: same decision
        db = _copy(history["db"], tmp_path / copy)
        data, stderr = _solve(history["new"], history["config"], db, "route")
        assert "route:" not in stderr
        runs.append(data)
    data = runs[0]
    assert data["status"] == "solved" and "return m + n" in data["solution"]
    assert {c["model"] for c in data["candidates"]} == {"good"}
    trace = data["trace"]["plus"]
    assert trace["routed_to"] == ["good"] and trace["asked"] == ["good"]
    assert trace["fallback"] is None and trace["k"] == 3
    assert sorted(Path(n["problem_path"]).stem for n in trace["neighbours"]) == [
        "add", "add_three", "sum_pair",
    ]  # fmt: skip
    estimates = {e["model"]: e for e in trace["models"]}
    assert estimates["good"]["p"] == 1.0 and estimates["bad"]["p"] == 0.0
    assert runs[1]["trace"] == runs[0]["trace"] and runs[1]["solution"] == data["solution"]
    with sqlite3.connect(tmp_path / "one.db") as conn:
        row = conn.execute("SELECT trace_json FROM decisions WHERE strategy = 'route'").fetchone()
    assert json.loads(row[0]) == trace


def test_willingness_to_pay_trades_success_against_price(history: dict[str, Path]) -> None:
    # "good" costs 1 per output token: 30 per sample; "bad" 10 per million tokens.
    models = [
        ModelConfig(name="good", backend="replay", price_output_per_mtok=1e6),
        ModelConfig(name="bad", backend="replay", price_output_per_mtok=1.0),
    ]
    store = Store(history["db"])
    source = history["new"].read_text()
    plans = {
        lam: plan_route(store, models, source, "plus", RouteOptions(k=3, willingness_to_pay=lam))
        for lam in (1.0, 100.0)
    }
    assert plans[1.0].chosen == ["bad"] and plans[100.0].chosen == ["good"]
    good = plans[1.0].estimates[0]
    assert good.cost == pytest.approx(30.0) and good.score == pytest.approx(1.0 - 30.0)
    assert plans[100.0].estimates[0].score == pytest.approx(70.0)
    # Equal prices: success decides, whatever lambda.
    equal = [m.model_copy(update={"price_output_per_mtok": 1.0}) for m in models]
    assert plan_route(store, equal, source, "plus", RouteOptions(k=3)).chosen == ["good"]
    again = plan_route(store, models, source, "plus", RouteOptions(k=3, willingness_to_pay=1.0))
    assert again == plans[1.0]


def test_explain_shows_neighbours_estimates_and_choice(history: dict[str, Path]) -> None:
    args = ["route", "explain", str(history["new"]), "--db", str(history["db"])]
    config = _config(history["root"] / "priced.toml", history["recordings"], good_price=1e6)
    cheap = run_cli(*args, "--config", str(config), "--k", "3", cwd=history["root"])
    assert cheap.returncode == 0, cheap.stderr
    lines = cheap.stdout.splitlines()
    assert lines[0] == "plus: 3 nearest past problem(s), k=3"
    assert sorted(Path(line.split()[1]).stem for line in lines[1:4]) == [
        "add", "add_three", "sum_pair",
    ]  # fmt: skip
    assert all(0.0 < float(line.split()[0]) <= 1.0 for line in lines[1:4])
    rows = {line.split()[0]: line.split() for line in lines[5:7]}
    assert rows["good"][1:4] == ["1.000", "30", "-29"]
    assert rows["bad"][1] == "0.000"
    assert lines[-1] == "  -> bad (max 1 * P - cost)"
    rich = run_cli(
        *args, "--config", str(config), "--k", "3", "--lambda", "100", cwd=history["root"]
    )
    assert rich.stdout.splitlines()[-1] == "  -> good (max 100 * P - cost)"
    assert rich.stdout.splitlines()[:5] == lines[:5]


def test_no_history_falls_back_and_says_so(history: dict[str, Path], tmp_path: Path) -> None:
    cheapest = _config(
        tmp_path / "c.toml",
        history["recordings"],
        good_price=0.5,
        route='k = 3\nfallback = "cheapest"',
    )
    data, stderr = _solve(history["new"], cheapest, tmp_path / "empty.db", "route")
    notes = [line for line in stderr.splitlines() if line.startswith("route:")]
    assert notes == [
        "route: no history (0 past problem(s) with history, k=3); using the cheapest model, good"
    ]
    trace = data["trace"]["plus"]
    assert trace["routed_to"] == ["good"] and trace["fallback"].startswith("0 past problem")
    assert {c["model"] for c in data["candidates"]} == {"good"}

    # The default asks every model, so that each gains the history routing needs.
    config = _config(tmp_path / "all.toml", history["recordings"], good_price=0.5)
    data, stderr = _solve(history["new"], config, tmp_path / "empty-all.db", "route")
    assert "using all models (good, bad)" in stderr
    assert {c["model"] for c in data["candidates"]} == {"good", "bad"}
    assert data["status"] == "solved"

    proc = run_cli(
        "route", "explain", str(history["new"]), "--config", str(config),
        "--db", str(tmp_path / "blank.db"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.splitlines() == [
        f"plus: no history in {tmp_path / 'blank.db'} (0 past problem(s) with history, k=3); "
        "route would use all models (good, bad)"
    ]


def test_explain_rejects_bad_input_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("route", "explain", str(tmp_path / "missing.py"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no such file" in proc.stderr
    problem = tmp_path / "p.py"
    problem.write_text("def f():\n    ...\n")
    (tmp_path / "codeens.toml").write_text("[strategies.route]\nk = 0\n")
    proc = run_cli("route", "explain", str(problem), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: config [strategies.route] k:")


@pytest.mark.timeout(900)  # the real models on 2 shared cores: minutes
def test_embedded_models_smoke(tmp_path: Path, sandbox_image: str) -> None:
    problem = tmp_path / "add.py"
    problem.write_text((REPO / "examples" / "problems" / "add.py").read_text())
    db = tmp_path / "smoke.db"
    proc = run_cli(
        "solve", str(problem), "--strategy", "route", "--json", "--samples", "2",
        "--models", "qwen-coder-0.5b,smollm2", "--db", str(db), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "route: no history" in proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert trace["routed_to"] == ["smollm2", "qwen-coder-0.5b"]  # all, cheapest first
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert stored[0] == "route" and json.loads(stored[1]) == trace
