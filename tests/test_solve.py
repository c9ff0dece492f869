"""`codeens solve` end to end on recorded generations, the real sandbox and a real log.

The models are the `replay` backend: a real Model subclass that serves recorded outputs,
so the decision is deterministic while every other part (extraction, de-duplication, the
Docker sandbox, voting, SQLite) is the real one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from codeens.config import load_config
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.progress import Progress
from codeens.prompts import solve_prompt
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
from codeens.solve import solve
from codeens.storage import Store
from codeens.strategies.base import Decision, Strategy
from codeens.strategies.interface import Context
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

CORRECT = "Here you go:\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n"
CORRECT_COMMENTED = (
    "```python\ndef add(a: int, b: int) -> int:\n    # add them\n    return a + b  # done\n```"
)
CORRECT_OTHER = "```python\ndef add(a, b):\n    return sum((a, b))\n```"
WRONG_MINUS = "```python\ndef add(a, b):\n    return a - b\n```"
WRONG_MINUS_TOO = "```python\ndef add(x, y):\n    result = x - y\n    return result\n```"
WRONG_TIMES = "```python\ndef add(a, b):\n    return a * b\n```"
PROSE = "I am sorry, I cannot help with that."
HANGS = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
HIDDEN_TESTS = (
    "assert add(100, 23) == 123\nassert add(-7, -8) == -15\nassert add(10**20, 1) == 10**20 + 1\n"
)


def _write_config(path: Path, models: dict[str, Path], timeout: float = 3.0) -> Path:
    lines = [f"samples = 4\n\n[sandbox]\ntimeout = {timeout}\nworkers = 2\n"]
    for name, recording in models.items():
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{recording}"\n'
            "price_output_per_mtok = 1.0\n"
        )
    path.write_text("\n".join(lines))
    return path


def _record(recording: Path, model: str, prompt_text: str, outputs: list[str]) -> Path:
    for seed, text in enumerate(outputs):
        record(recording, model, prompt_text, seed, Completion(text, 50, 20 + seed))
    return recording


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, str]:
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    prompt = solve_prompt(loaded, stub, loaded.tests_for(stub.name))
    return problem, prompt.text_for(True)


def _solve(tmp: Path, problem: Path, config: Path, *extra: str) -> tuple[int, dict, str]:
    db = tmp / "log.db"
    proc = run_cli(
        "solve", str(problem), "--config", str(config), "--db", str(db), "--json", *extra,
        cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def _passes_hidden_tests(solution: str) -> bool:
    box = ProcessSandbox(Limits(timeout=5))
    result = box.run(Candidate("solution.py", solution), parse_test_suite(HIDDEN_TESTS))
    return result.verdict == "passed"


def test_vote_picks_the_correct_program_and_logs_everything(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, prompt_text = workspace
    alpha = _record(
        tmp_path / "alpha.jsonl", "alpha", prompt_text,
        [WRONG_MINUS, CORRECT, CORRECT_COMMENTED, PROSE],
    )  # fmt: skip
    beta = _record(
        tmp_path / "beta.jsonl", "beta", prompt_text,
        [WRONG_MINUS_TOO, CORRECT_OTHER, WRONG_TIMES, HANGS],
    )  # fmt: skip
    config = _write_config(tmp_path / "codeens.toml", {"alpha": alpha, "beta": beta})

    code, data, _stderr = _solve(tmp_path, problem, config)

    assert code == 0, data
    assert data["status"] == "solved"
    assert _passes_hidden_tests(data["solution"])
    assert "def add" in data["solution"] and "return a + b" in data["solution"]
    # The problem file's other content is kept.
    assert data["solution"].startswith('"""A trivial problem')
    chosen = data["chosen"]["add"]
    assert chosen["pass_rate"] == 1.0 and chosen["models"] == ["alpha"]
    by_model = [(c["model"], c["verdict"]) for c in data["candidates"]]
    assert by_model == [
        ("alpha", "failed"), ("alpha", "passed"), ("alpha", "passed"), ("alpha", "rejected"),
        ("beta", "failed"), ("beta", "passed"), ("beta", "failed"), ("beta", "timeout"),
    ]  # fmt: skip
    commented = data["candidates"][2]
    assert commented["duplicate_of"] == data["candidates"][1]["generation"]
    scores = data["trace"]["add"]["scores"]
    assert scores[0]["group_size"] == 3 and scores[0]["duplicates"] == 2
    # The two differently written subtractions behave alike (both pass only add(0, 0)):
    # one group of two; a * b also passes 1 of 3 but fails with other values, alone.
    partial = [(s["pass_rate"], s["group_size"]) for s in scores if s["pass_rate"] < 1]
    assert sorted(partial) == [(0.0, 1), (0.333333, 1), (0.333333, 2), (0.333333, 2)]
    assert data["tokens"] == {"input": 8 * 50, "output": sum(20 + s for s in range(4)) * 2}

    with sqlite3.connect(tmp_path / "log.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("solved",)]
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (8,)
        distinct = conn.execute(
            "SELECT count(DISTINCT code_hash) FROM generations WHERE code_hash IS NOT NULL"
        ).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (distinct,)
        decision = conn.execute("SELECT status, strategy, trace_json FROM decisions").fetchone()
        assert decision[:2] == ("solved", "vote")
        assert json.loads(decision[2])["scores"][0]["pass_rate"] == 1.0
        assert conn.execute("SELECT count(*) FROM problems").fetchone() == (1,)


def test_identical_requests_come_from_the_log(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, prompt_text = workspace
    alpha = _record(tmp_path / "a.jsonl", "alpha", prompt_text, [CORRECT, WRONG_TIMES] * 2)
    config = _write_config(tmp_path / "codeens.toml", {"alpha": alpha})
    first_code, first, _ = _solve(tmp_path, problem, config)
    alpha.unlink()  # the recording is gone: only the log can serve the second run
    second_code, second, _ = _solve(tmp_path, problem, config)
    assert first_code == second_code == 0
    assert not any(c["cached"] for c in first["candidates"])
    assert all(c["cached"] for c in second["candidates"])
    assert second["solution"] == first["solution"]
    assert second["cost"] == 0.0 and first["cost"] > 0.0


def test_one_failing_model_does_not_stop_the_run(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, prompt_text = workspace
    good = _record(tmp_path / "good.jsonl", "good", prompt_text, [CORRECT] * 4)
    config = _write_config(
        tmp_path / "codeens.toml", {"broken": tmp_path / "missing.jsonl", "good": good}
    )
    code, data, stderr = _solve(tmp_path, problem, config)
    assert code == 0
    assert "broken" in data["failures"]
    assert "warning: model broken failed" in stderr


def test_all_models_failing_is_exit_1_with_a_clear_message(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, _ = workspace
    config = _write_config(tmp_path / "codeens.toml", {"broken": tmp_path / "missing.jsonl"})
    code, data, stderr = _solve(tmp_path, problem, config)
    assert code == 1 and data == {}
    assert stderr.strip().splitlines()[-1].startswith("Error: every model failed: broken:")
    with sqlite3.connect(tmp_path / "log.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("unsolved",)]


def test_unsolved_reports_the_best_candidate(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, prompt_text = workspace
    only_wrong = _record(tmp_path / "w.jsonl", "w", prompt_text, [WRONG_TIMES, WRONG_MINUS] * 2)
    config = _write_config(tmp_path / "codeens.toml", {"w": only_wrong})
    code, data, _ = _solve(tmp_path, problem, config)
    assert code == 1
    assert data["status"] == "unsolved"
    # a * b and a - b each pass only add(0, 0) == 0: one of them is kept as the best.
    assert data["chosen"]["add"]["pass_rate"] == pytest.approx(1 / 3, abs=1e-5)
    assert "return a * b" in data["solution"] or "return a - b" in data["solution"]


def test_human_output_goes_to_stdout_and_summary_to_stderr(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    problem, prompt_text = workspace
    alpha = _record(tmp_path / "a.jsonl", "alpha", prompt_text, [CORRECT] * 4)
    config = _write_config(tmp_path / "codeens.toml", {"alpha": alpha})
    out = tmp_path / "solved.py"
    proc = run_cli("solve", str(problem), "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _passes_hidden_tests(proc.stdout)
    assert "solved: add by alpha (3/3 visible tests" in proc.stderr
    assert "cost" in proc.stderr
    proc = run_cli("solve", str(problem), "--config", str(config), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert _passes_hidden_tests(out.read_text())
    logs = run_cli("logs", cwd=tmp_path)
    assert logs.returncode == 0 and logs.stdout.count("solved") == 2
    run_id = logs.stdout.split()[0]
    shown = run_cli("logs", "show", run_id, cwd=tmp_path)
    assert shown.returncode == 0
    assert "decision add: solved via vote" in shown.stdout
    assert shown.stdout.count("generation ") == 4


@pytest.mark.parametrize(
    ("name", "source", "extra", "word"),
    [
        ("no-stub", "def add(a, b):\n    return a + b\n", [], "no stub"),
        ("syntax", "def add(a, b)\n    ...\n", [], "line"),
        ("latin1", "# caf\xe9\ndef f():\n    ...\n", [], "UTF-8"),
        ("unknown-model", "def f():\n    ...\n", ["--models", "nosuch"], "nosuch"),
        ("unknown-strategy", "def f():\n    ...\n", ["--strategy", "nosuch"], "nosuch"),
        ("missing", None, [], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, name: str, source: str | None, extra: list[str], word: str
) -> None:
    problem = tmp_path / f"{name}.py"
    if source is not None:
        problem.write_bytes(source.encode("latin-1" if name == "latin1" else "utf-8"))
    proc = run_cli("solve", str(problem), *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr
    assert word.lower() in lines[0].lower()


def test_config_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "codeens.toml").write_text('strategy = "vote"\ncolour = "blue"\n')
    problem = tmp_path / "p.py"
    problem.write_text("def f():\n    ...\n")
    proc = run_cli("solve", str(problem), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: config {tmp_path / 'codeens.toml'}: unknown key 'colour'"


def test_models_lists_the_embedded_default(tmp_path: Path) -> None:
    proc = run_cli("models", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    configured = {r["name"]: r for r in rows if r["section"] == "configured"}
    assert set(configured) == {"qwen-coder-0.5b", "qwen-coder-1.5b"}
    assert all(r["backend"] == "llamacpp" and r["available"] for r in configured.values())
    catalog = {r["name"]: r for r in rows if r["section"] == "embedded"}
    assert set(catalog) == {"qwen-coder-0.5b", "qwen-coder-1.5b", "smollm2", "gemma3"}
    qwen = catalog["qwen-coder-1.5b"]
    assert (qwen["parameters"], qwen["quantisation"], qwen["licence"]) == (
        "1.5B",
        "Q4_K_M",
        "Apache-2.0",
    )
    assert qwen["bytes"] == 1_117_320_768 and qwen["sha256"].startswith("cc324af070c2")
    text = run_cli("models", cwd=tmp_path).stdout
    assert "# embedded models" in text and "Apache-2.0" in text


class _Stopped(Strategy):
    """Samples, then is stopped from outside (as Ctrl-C or SIGTERM stop a solve)."""

    name = "stopped"
    summary = "samples, then raises KeyboardInterrupt"

    def solve(self, ctx: Context) -> Decision:
        ctx.sample_all()
        raise KeyboardInterrupt


def test_a_stopped_solve_is_recorded_as_interrupted_with_what_it_logged(
    tmp_path: Path, workspace: tuple[Path, str], sandbox_image: str
) -> None:
    """An eval resumes interrupted solves; a stop must not read as a finished 'failed'."""
    problem, prompt_text = workspace
    alpha = _record(tmp_path / "alpha.jsonl", "alpha", prompt_text, [CORRECT, WRONG_MINUS] * 2)
    config, _ = load_config(_write_config(tmp_path / "codeens.toml", {"alpha": alpha}))
    store = Store(tmp_path / "log.db")
    with pytest.raises(KeyboardInterrupt):
        solve(
            load_problem(problem), config, models=config.models, strategy=_Stopped(),
            samples=4, store=store, progress=Progress(enabled=False),
        )  # fmt: skip
    with sqlite3.connect(tmp_path / "log.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (2,)
