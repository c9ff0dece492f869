"""The eval summary's per-origin breakdown, read from real generation rows in a SQLite log."""

from __future__ import annotations

from pathlib import Path

from codeens.config import Config
from codeens.evals.spec import EvalSpec
from codeens.evals.summary import _strategies_table, _strategy_on_task
from codeens.storage import Generation, Run, Store


def _generation(run_id: str, target: str, origin: str, code_hash: str | None) -> Generation:
    return Generation(
        run_id=run_id, target=target, model="alpha", backend="replay", request_key=origin,
        prompt="p", params_json="{}", seed=0, raw_output="text", code_hash=code_hash,
        code="def f(): ..." if code_hash else None, origin=origin,
    )  # fmt: skip


def test_each_prompt_variant_gets_its_samples_pass_rate_and_oracle(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    passed = {"good": True, "bad": False}
    cells = []
    for task, rows in {
        "t1": [("prompt:direct", "bad"), ("prompt:plan", "good"), ("prompt:plan", "bad")],
        "t2": [("prompt:direct", "bad"), ("prompt:plan", None), ("tests", None)],
    }.items():
        child = Run(id=f"child-{task}", strategy="prompt-ensemble", status="solved")
        store.write(child, *(_generation(child.id, task, o, h) for o, h in rows))
        cells.append({"strategies": {"prompt-ensemble": _strategy_on_task(store, child, passed)}})
    assert cells[0]["strategies"]["prompt-ensemble"]["origins"] == {
        "prompt:direct": [False], "prompt:plan": [True, False],
    }  # fmt: skip
    spec = EvalSpec(
        benchmark="humaneval", split="test", task_ids=("t1", "t2"), models=("alpha",),
        strategies=("prompt-ensemble",), samples=1, config=Config(),
    )  # fmt: skip
    table = _strategies_table(spec, cells)["prompt-ensemble"]["origins"]
    assert table == {
        # A sample with no extracted program is no candidate: t2's plan answer is not counted.
        "prompt:direct": {"samples": 2, "sample_pass_rate": 0.0, "oracle": 0.0},
        "prompt:plan": {"samples": 2, "sample_pass_rate": 0.5, "oracle": 1.0},
    }


def test_one_origin_adds_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    child = Run(id="child", strategy="vote", status="solved")
    store.write(child, _generation("child", "t", "sample", "good"))
    cell = _strategy_on_task(store, child, {"good": True})
    assert cell["origins"] == {"sample": [True]}
    spec = EvalSpec(
        benchmark="humaneval", split="test", task_ids=("t",), models=("alpha",),
        strategies=("vote",), samples=1, config=Config(),
    )  # fmt: skip
    assert "origins" not in _strategies_table(spec, [{"strategies": {"vote": cell}}])["vote"]
