"""`codeens eval` end to end on recorded generations, the real sandbox and a real log.

The models are `replay` models (a real Model subclass) whose recordings answer the exact
prompts the eval sends: ``good`` writes the canonical solution, ``bad`` a program that
passes the visible test only when it can (it returns the visible answer), otherwise a
wrong one. Everything else is the real pipeline.
"""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from codeens.evals import runner
from codeens.evals.spec import EvalSpec
from codeens.evals.summary import summarize
from codeens.progress import Progress
from codeens.storage import Store
from codeens.strategies.base import STRATEGIES, Decision, Strategy
from conftest import CODEENS, run_cli
from eval_fixtures import HUMANEVAL_IDS, MBPP_DATA, MBPP_IDS, SAMPLES, items, run_eval, setup_replay

pytestmark = pytest.mark.docker


def test_eval_scores_on_hidden_tests_and_reuses_generations(
    tmp_path: Path, sandbox_image: str
) -> None:
    config = setup_replay(tmp_path, "mbpp", MBPP_IDS)
    db = tmp_path / "eval.db"
    done = run_eval(
        tmp_path,
        config,
        db,
        "mbpp",
        "--data",
        str(MBPP_DATA),
        "--problems",
        ",".join(MBPP_IDS),
        "--samples",
        str(SAMPLES),
        "--strategies",
        "majority,cascade",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["problems_done"] == 3
    good, bad = summary["models"]["good"], summary["models"]["bad"]
    assert good["pass@1"] == 1.0 and good[f"pass@{SAMPLES}"] == 1.0
    # The bad programs pass the visible assert but are scored on the hidden ones.
    assert bad["pass@1"] == 0.0
    assert good["codebleu"] == pytest.approx(1.0) and bad["codebleu"] < 0.9
    assert good["codebertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    for name in ("majority", "cascade"):
        row = summary["strategies"][name]
        assert row["oracle"] == 1.0 and 0.0 <= row["pass@1"] <= 1.0
        assert row["selection_efficiency"] == pytest.approx(row["pass@1"])
    # cascade (cheapest first: good costs 1, bad 2 per Mtok) accepts the good model's
    # agreeing, passing samples at once; nothing is escalated.
    assert summary["strategies"]["cascade"]["pass@1"] == 1.0
    assert summary["strategies"]["cascade"]["escalated"] == 0.0
    with sqlite3.connect(db) as conn:
        originals = conn.execute(
            "SELECT request_key, count(*) FROM generations WHERE cached_from IS NULL "
            "GROUP BY request_key"
        ).fetchall()
        hidden = conn.execute(
            "SELECT candidate, count(*) FROM executions WHERE run_id = ? GROUP BY candidate",
            (summary["run_id"],),
        ).fetchall()
        visible = conn.execute(
            "SELECT code_hash, tests_hash, sum(cached_from IS NULL), count(*) FROM executions "
            "WHERE run_id LIKE ? GROUP BY code_hash, tests_hash",
            (summary["run_id"] + "-%",),
        ).fetchall()
    # One generation per (model, problem, sample), every strategy served from the log.
    assert len(originals) == 2 * 3 * SAMPLES and {n for _, n in originals} == {1}
    # The sandbox ran each program once per suite; the other strategy's uses were reused.
    assert visible and {ran for _, _, ran, _ in visible} == {1}
    assert sum(n for *_, n in visible) > len(visible)
    assert len(hidden) == 6 and {n for _, n in hidden} == {1}, "each program once"
    # `codeens logs` lists the eval run; its per-problem runs only with --all.
    listed = run_cli("logs", "--db", str(db), cwd=tmp_path).stdout.splitlines()
    assert [line.split()[0] for line in listed] == [summary["run_id"]]
    everything = run_cli("logs", "--db", str(db), "--all", "-n", "100", cwd=tmp_path).stdout
    assert len(everything.splitlines()) == 1 + 3 * 2


class Spy(Strategy):
    """A strategy that records everything it can reach, then votes like `majority`."""

    name = "spy"
    summary = "test strategy: records what a strategy sees"
    seen: ClassVar[list[str]] = []

    def solve(self, ctx: Any) -> Decision:
        candidates = ctx.sample_all()
        Spy.seen += [ctx.problem.source, ctx.tests, ctx.prompt().text_for(True)]
        Spy.seen += [ctx.prompt().text_for(False), repr(vars(ctx))]
        Spy.seen += [c.program for c in candidates]
        if ctx.suite is not None:
            Spy.seen += [ctx.suite.setup, *[case.source for case in ctx.suite.cases]]
        best = max(candidates, key=lambda c: c.result.pass_rate if c.result else -1.0)
        return Decision(best, {"seen": len(Spy.seen)})


@pytest.fixture
def spy() -> Iterator[type[Spy]]:
    """``Spy`` registered as ``spy`` for one test only."""
    Spy.seen = []
    with STRATEGIES.registered("spy", Spy):
        yield Spy


@pytest.mark.parametrize(("benchmark", "ids"), [("humaneval", HUMANEVAL_IDS), ("mbpp", MBPP_IDS)])
def test_no_strategy_ever_sees_a_hidden_test(
    tmp_path: Path, sandbox_image: str, spy: type[Spy], benchmark: str, ids: list[str]
) -> None:
    config_path = setup_replay(tmp_path, benchmark, ids)
    from codeens.config import load_config

    config, _ = load_config(config_path)
    spec = EvalSpec(
        benchmark=benchmark,
        split="test",
        data=str(MBPP_DATA) if benchmark == "mbpp" else None,
        task_ids=tuple(ids),
        models=("good", "bad"),
        strategies=("spy",),
        samples=SAMPLES,
        config=config,
    )
    store = Store(tmp_path / "eval.db")
    run = runner.execute(runner.start(spec, store), store, Progress(enabled=False))
    assert run.status == "done" and Spy.seen
    seen = "\n".join(Spy.seen)
    prompts = "\n".join(g.prompt for g in store.generations(run.id))
    leaked = []
    for item in items(benchmark, ids):
        visible = runner.as_problem(item, benchmark).tests_for(item.entry_point)
        visible_asserts = _assert_texts(visible) | _assert_texts(item.source)
        for test in _assert_texts(item.hidden_tests) - visible_asserts:
            if test in seen or test in prompts:
                leaked.append(test)
    assert not leaked, f"hidden tests reached a strategy: {leaked[:3]}"
    # ...while the scorer did use them: a hidden run per program.
    summary = summarize(store, run, similarity=False)
    assert summary["models"]["good"]["pass@1"] == 1.0
    assert summary["strategies"]["spy"]["pass@1"] == 1.0


def _assert_texts(source: str) -> set[str]:
    """Each assert's comparison as unparsed text (also inside check functions)."""
    tree = ast.parse(source)
    return {ast.unparse(n.test) for n in ast.walk(tree) if isinstance(n, ast.Assert)}


def _counts(db: Path) -> tuple[int, int]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            children = conn.execute(
                "SELECT count(*) FROM runs WHERE kind = 'eval-item' AND status != 'running'"
            ).fetchone()[0]
            executions = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
            return children, executions
    except sqlite3.OperationalError:  # not created yet
        return 0, 0


@pytest.mark.timeout(900)
def test_resume_after_kill_9_redoes_nothing_finished(tmp_path: Path, sandbox_image: str) -> None:
    ids = HUMANEVAL_IDS
    config = setup_replay(tmp_path, "humaneval", ids)
    strategies = "majority,cascade"
    args = ["humaneval", "--problems", ",".join(ids), "--samples", str(SAMPLES)]
    args += ["--strategies", strategies]
    killed_db = tmp_path / "killed.db"
    total_children = len(ids) * 2
    stop_after = random.Random(os.getpid()).randint(1, total_children - 1)
    process = subprocess.Popen(
        [
            str(CODEENS),
            "eval",
            *args,
            "--config",
            str(config),
            "--db",
            str(killed_db),
            "--quiet",
            "--json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while _counts(killed_db)[0] < stop_after and process.poll() is None:
        assert time.monotonic() < deadline, "the eval never got going"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    with sqlite3.connect(killed_db) as conn:
        run_id = conn.execute("SELECT id FROM runs WHERE kind = 'eval'").fetchone()[0]
        before_gen = conn.execute(
            "SELECT id, request_key FROM generations WHERE cached_from IS NULL"
        ).fetchall()
        before_exec = conn.execute(
            "SELECT id, run_id, candidate, tests_hash FROM executions"
        ).fetchall()
        finished = conn.execute(
            "SELECT id FROM runs WHERE kind = 'eval-item' AND status != 'running'"
        ).fetchall()
    assert finished, "some work had finished before the kill"

    resumed = run_eval(tmp_path, config, killed_db, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "done" and summary["problems_done"] == len(ids)

    with sqlite3.connect(killed_db) as conn:
        after_gen = conn.execute(
            "SELECT request_key, count(*) FROM generations WHERE cached_from IS NULL "
            "GROUP BY request_key"
        ).fetchall()
        dup_exec = conn.execute(
            "SELECT candidate, tests_hash, count(*) FROM executions WHERE run_id = ? "
            "GROUP BY candidate, tests_hash HAVING count(*) > 1",
            (run_id,),
        ).fetchall()
        kept_exec = (
            conn.execute(
                f"SELECT count(*) FROM executions WHERE id IN ({','.join('?' * len(before_exec))})",
                [row[0] for row in before_exec],
            ).fetchone()[0]
            if before_exec
            else 0
        )
        redone = conn.execute(
            "SELECT count(*) FROM runs WHERE kind = 'eval-item' AND id LIKE ? || '%-r%'",
            (run_id,),
        ).fetchone()[0]
        for (child,) in finished:
            decisions = conn.execute(
                "SELECT count(*) FROM decisions WHERE run_id = ?", (child,)
            ).fetchone()[0]
            assert decisions == 1, f"finished child {child} was decided again"
    assert {n for _, n in after_gen} == {1}, "a finished generation was made again"
    assert {key for _, key in before_gen} <= {key for key, _ in after_gen}
    assert not dup_exec, "a hidden run was repeated"
    assert kept_exec == len(before_exec), "nothing recorded before the kill is lost"
    assert redone <= 1, "at most the one child in flight is redone"

    fresh_db = tmp_path / "fresh.db"
    fresh = run_eval(tmp_path, config, fresh_db, *args)
    assert fresh.returncode == 0, fresh.stderr
    expected = json.loads(fresh.stdout)
    for key in ("models", "strategies"):
        for name, row in expected[key].items():
            assert summary[key][name]["pass@1"] == row["pass@1"], (key, name)
    assert summary["per_task"] == expected["per_task"]


def test_resume_of_a_finished_run_is_refused(tmp_path: Path, sandbox_image: str) -> None:
    config = setup_replay(tmp_path, "humaneval", ["HumanEval/0"])
    db = tmp_path / "eval.db"
    first = run_eval(
        tmp_path,
        config,
        db,
        "humaneval",
        "--limit",
        "1",
        "--samples",
        "1",
        "--strategies",
        "majority",
    )
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    again = run_eval(tmp_path, config, db, "--resume", run_id)
    assert again.returncode == 2 and "already finished" in again.stderr
