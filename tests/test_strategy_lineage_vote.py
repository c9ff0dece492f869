"""`lineage-vote`: models that share ancestry are one voter.

The roots are read from a real SQLite log (the `lineage` rows a merge writes); the solves
replay recorded completions (`replay`) through the real CLI, Docker sandbox and log.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.models.base import Completion, ModelConfig
from codeens.models.replay import record
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from codeens.storage import Lineage, Store
from codeens.strategies.lineage import Lineages
from conftest import REPO, run_cli

CORRECT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
CORRECT_OTHER = "```python\ndef add(a, b):\n    return sum((a, b))\n```"
MINUS = "```python\ndef add(a, b):\n    return a - b\n```"


def _merge(store: Store, model_dir: str, *sources: tuple[str, str]) -> None:
    """The row `codeens merge` writes: each source's reference and resolved directory."""
    store.write(
        Lineage(
            model_dir=model_dir,
            kind="merge",
            method="linear",
            sources_json=json.dumps([{"model": m, "path": p, "role": "input"} for m, p in sources]),
        )
    )


def _model(name: str, location: str, lineage: str = "") -> ModelConfig:
    return ModelConfig(name=name, backend="replay", location=location, lineage=lineage)


def test_roots_of_merges_families_and_shared_weights(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _merge(store, "/m/ab", ("org/A", str(a)), ("org/B", str(b)))
    _merge(store, "/m/abc", ("merged", "/m/ab"), ("org/C", "/hub/C"))
    models = [
        _model("a", str(a)),
        _model("a-plan", str(a)),  # the same weights asked another way
        _model("b-q4", "/q/b.gguf", lineage="fam-b"),
        _model("b", str(b), lineage="fam-b"),
        _model("ab", "/m/ab"),
        _model("abc", "/m/abc"),
        _model("d", ""),
    ]
    roots = {name: sorted(r) for name, r in Lineages(models, store).roots.items()}
    assert roots == {
        "a": [str(a)],
        "a-plan": [str(a)],
        "b-q4": ["fam-b"],
        "b": ["fam-b"],
        # A source that is a configured model stands for it (its family, when it has one).
        "ab": [str(a), "fam-b"],
        # A merge of a merge: the roots of its roots; an unknown source is named as recorded.
        "abc": [str(a), "fam-b", "org/C"],
        "d": ["d"],
    }


def test_a_fused_model_is_kin_of_its_members(tmp_path: Path) -> None:
    from codeens.models.composite import expand

    store = Store(tmp_path / "log.db")
    plain = [_model("small", "/q/small.gguf"), _model("big", "/q/big.gguf", lineage="fam-big")]
    fused = ModelConfig(name="fused", backend="fuse", options={"members": ["small", "big"]})
    by_name = {m.name: m for m in plain}
    models = expand([*plain, fused], by_name.get)
    roots = {name: sorted(r) for name, r in Lineages(models, store).roots.items()}
    assert roots["fused"] == ["/q/small.gguf", "fam-big"]
    assert roots["small"] == ["/q/small.gguf"]


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", path)
    return path


def _member(tmp: Path, prompt: str, name: str, outputs: list[str], lineage: str = "") -> str:
    path = tmp / f"{name}.jsonl"
    for seed, text in enumerate(outputs):
        record(path, name, prompt, seed, Completion(text, 40, 20))
    return f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{path}"\n' + (
        f'lineage = "{lineage}"\n' if lineage else ""
    )


def _solve(tmp: Path, problem: Path, members: list[str], strategy: str, db: Path) -> Any:
    config = tmp / "codeens.toml"
    config.write_text("samples = 2\n[sandbox]\ntimeout = 5.0\n\n" + "\n".join(members))
    proc = run_cli(
        "solve", str(problem), "--strategy", strategy, "--config", str(config),
        "--db", str(db), "--json", cwd=tmp,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _prompt(problem: Path) -> str:
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    return solve_prompt(loaded, stub, loaded.tests_for(stub.name)).text_for(True)


def test_three_copies_of_one_wrong_model_do_not_outvote_another_lineage(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    prompt = _prompt(problem)
    copies = [f"alpha-{q}" for q in ("q4", "q8", "f16")]
    members = [
        *(_member(tmp_path, prompt, name, [MINUS] * 2, "alpha") for name in copies),
        _member(tmp_path, prompt, "beta", [CORRECT] * 2),
    ]
    # Plain majority: six samples of one family against two.
    code, data = _solve(tmp_path, problem, members, "majority", tmp_path / "majority.db")
    assert code == 1 and "a - b" in data["solution"]

    code, data = _solve(tmp_path, problem, members, "lineage-vote", tmp_path / "lineage.db")
    assert code == 0 and "a + b" in data["solution"]
    trace = data["trace"]["add"]
    assert trace["lineages"]["alpha-q8"] == ["alpha"]
    groups = [(g["weight"], g["size"], g["pass_rate"]) for g in trace["groups"]]
    assert groups == [(1, 2, 1.0), (1, 6, 0.333333)]
    assert trace["why"].endswith("tie broken by pass rate, then samples")
    with sqlite3.connect(tmp_path / "lineage.db") as conn:
        row = conn.execute("SELECT strategy, trace_json FROM decisions").fetchone()
    assert row[0] == "lineage-vote" and json.loads(row[1]) == trace


def test_distinct_lineages_agreeing_on_the_right_answer_win(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    prompt = _prompt(problem)
    db = tmp_path / "log.db"
    b_path = tmp_path / "b.jsonl"
    # `merged` is a merge of b and a model not configured here: its roots are {b, org/C}.
    _merge(Store(db), str(tmp_path / "merged.jsonl"), ("org/B", str(b_path)), ("org/C", "/c"))
    members = [
        *(_member(tmp_path, prompt, n, [MINUS] * 2, "fam-a") for n in ("a", "a-q4", "a-q8")),
        _member(tmp_path, prompt, "merged", [CORRECT] * 2),
        _member(tmp_path, prompt, "b", [CORRECT_OTHER] * 2),
    ]
    code, data = _solve(tmp_path, problem, members, "lineage-vote", db)
    assert code == 0 and "a - b" not in data["solution"]
    trace = data["trace"]["add"]
    assert trace["lineages"]["merged"] == sorted([str(b_path), "org/C"])
    # Backed by merged and b: the roots {b, org/C}, so b counts once (2, not 3); against
    # six samples of one family. The weight decides: no tie to break.
    groups = [(g["weight"], g["size"], g["lineages"]) for g in trace["groups"]]
    assert groups == [(2, 4, sorted([str(b_path), "org/C"])), (1, 6, ["fam-a"])]
    assert "tie" not in trace["why"]
