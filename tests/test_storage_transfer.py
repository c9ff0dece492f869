"""Moving one problem's rows to a worker's log and back (what `codeens eval --ray` does),
on real SQLite files: the round trip keeps every row, renumbers the new ones and keeps
their `cached_from` pointing at the rows they were copied from."""

from __future__ import annotations

from pathlib import Path

from codeens.storage import Decision, Execution, Generation, Lineage, Run, Store
from codeens.storage.transfer import RowBatch, append, changes, load, snapshot


def _gen(run_id: str, target: str, key: str, cached_from: int | None = None) -> Generation:
    return Generation(
        run_id=run_id, target=target, model="m", backend="replay", request_key=key,
        prompt="p", params_json="{}", seed=0, raw_output=f"out {key}", code_hash=key,
        cached_from=cached_from,
    )  # fmt: skip


def _exec(run_id: str, target: str, code: str, cached_from: int | None = None) -> Execution:
    return Execution(
        run_id=run_id, candidate=code, candidate_hash=code, tests_hash="t", backend="process",
        verdict="passed", tests_total=1, tests_passed=1, duration_s=0.1, target=target,
        code_hash=code, cached_from=cached_from,
    )  # fmt: skip


def test_a_workers_rows_come_back_renumbered_and_still_pointing_right(tmp_path: Path) -> None:
    real = Store(tmp_path / "real.db")
    real.write(Run(id="ev", kind="eval"), Lineage(model_dir="/m", kind="merge", method="ties"))
    # Already done for this problem before (a resumed run): one sample, one child run.
    real.write(_gen("ev", "T/1", "a"), Run(id="ev-0001-vote", parent_id="ev", status="running"))
    real.write(_gen("ev", "T/2", "other problem"))
    seed = snapshot(real, "ev", "T/1", "ev-0001-")
    assert [g["request_key"] for g in seed.generations] == ["a"]
    assert [r["id"] for r in seed.runs] == ["ev-0001-vote"] and len(seed.lineage) == 1

    worker = Store(tmp_path / "worker.db")
    load(worker, seed)
    old = seed.generations[0]["id"]
    assert [g.id for g in worker.generations("ev", "T/1")] == [old]
    # The worker's work: a cache hit on the seeded row, a new row and a hit on that one,
    # an execution and a cached repeat of it, a decision, and the child run finished.
    worker.write(_gen("ev-0001-vote", "T/1", "a", cached_from=old))
    worker.write(_gen("ev-0001-vote", "T/1", "b"))
    new_b = worker.generations("ev-0001-vote")[-1].id
    worker.write(_gen("ev-0001-vote", "T/1", "b", cached_from=new_b))
    worker.write(_exec("ev-0001-vote", "T/1", "b"))
    first_exec = worker.executions("ev-0001-vote")[0].id
    worker.write(_exec("ev", "T/1", "b", cached_from=first_exec))
    worker.write(Decision(run_id="ev-0001-vote", target="T/1", strategy="vote", status="solved"))
    worker.write(Run(id="ev-0001-vote", parent_id="ev", status="solved"))
    back = changes(worker, seed)
    assert len(back.generations) == 3 and len(back.executions) == 2
    assert len(back.decisions) == 1 and back.lineage == ()

    # Meanwhile the real log moved on (another problem's rows took the next ids).
    real.write(_gen("ev", "T/3", "c"), _gen("ev", "T/3", "d"), _exec("ev", "T/3", "c"))
    append(real, back)
    rows = real.generations("ev-0001-vote")
    by_id = {g.id: g for g in [*real.generations("ev"), *rows]}
    assert [g.request_key for g in rows] == ["a", "b", "b"]
    assert rows[0].cached_from == old  # a seeded row keeps its id
    assert rows[2].cached_from == rows[1].id != new_b  # a new row's new id
    for row in rows:
        if row.cached_from is not None:
            assert by_id[row.cached_from].request_key == row.request_key
    repeat = real.executions("ev", target="T/1")[0]
    [original] = real.executions("ev-0001-vote")
    assert repeat.cached_from == original.id != first_exec
    assert real.run("ev-0001-vote").status == "solved"  # type: ignore[union-attr]
    assert [d.status for d in real.decisions("ev-0001-vote")] == ["solved"]
    assert len(real.lineage()) == 1


def test_an_empty_batch_changes_nothing(tmp_path: Path) -> None:
    real = Store(tmp_path / "real.db")
    real.write(_gen("ev", "T/1", "a"))
    append(real, RowBatch())
    assert len(real.generations("ev")) == 1 and len(RowBatch()) == 0
