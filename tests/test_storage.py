"""The SQLite log: migrations, connection settings and concurrent writers, on real files."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from codeens.storage import (
    Decision,
    EvolveStep,
    Execution,
    Generation,
    Lineage,
    Problem,
    Run,
    Store,
    default_db_path,
)
from codeens.storage import migrations as migrations_module
from codeens.storage.db import BUSY_TIMEOUT_MS, ENV_VAR, make_engine
from codeens.storage.migrations import MIGRATIONS


def _sqlite(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain stdlib connection, independent of the code under test."""
    return contextlib.closing(sqlite3.connect(path))


TABLES = [Execution, Run, Problem, Generation, Decision, Lineage, EvolveStep]


def _row(n: int, run_id: str = "r") -> Execution:
    return Execution(
        run_id=run_id,
        candidate=f"cand-{n}.py",
        candidate_hash=f"c{n}",
        tests_hash="t",
        backend="process",
        verdict="passed",
        tests_total=1,
        tests_passed=1,
        duration_s=0.01 * n,
    )


@pytest.mark.parametrize("model", TABLES, ids=lambda m: m.__tablename__)
def test_blank_database_is_migrated_to_the_model(tmp_path: Path, model: Any) -> None:
    db = tmp_path / "nested" / "log.db"
    store = Store(db)
    assert db.is_file(), "the folder and file are created on open"
    assert store.schema_version() == len(MIGRATIONS)
    assert store.integrity_ok()
    table = model.__table__

    with _sqlite(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        info = conn.execute(f"PRAGMA table_info({table.name})").fetchall()
        index_cols = set()
        for index in conn.execute(f"PRAGMA index_list({table.name})").fetchall():
            if index[3] == "pk":  # the implicit index of a non-integer primary key
                continue
            for col in conn.execute(f"PRAGMA index_info({index[1]})").fetchall():
                index_cols.add(col[2])

    # (name, nullable, primary key, declared type); an INTEGER PRIMARY KEY is the rowid
    # and can never hold NULL whatever table_info's notnull flag says.
    in_db = {
        name: (not notnull and not pk, bool(pk), decl.upper())
        for _cid, name, decl, notnull, _default, pk in info
    }
    dialect = sqlite_dialect.dialect()
    in_model = {
        col.name: (
            bool(col.nullable) and not col.primary_key,
            bool(col.primary_key),
            col.type.compile(dialect=dialect).upper(),
        )
        for col in table.columns
    }
    assert list(in_db) == [c.name for c in table.columns]
    assert in_db == in_model
    model_indexed = {col.name for index in table.indexes for col in index.columns}
    assert index_cols == model_indexed


def test_rows_round_trip_through_the_model(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    store.write(_row(1, "a"), _row(2, "b"), _row(3, "a"))
    every = store.executions()
    assert [r.candidate for r in every] == ["cand-3.py", "cand-2.py", "cand-1.py"]
    assert all(r.id is not None and r.created_at is not None for r in every)
    only_a = store.executions(run_id="a")
    assert sorted(r.candidate for r in only_a) == ["cand-1.py", "cand-3.py"]
    assert len(store.executions(limit=2)) == 2


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    Store(db).write(_row(1))
    with _sqlite(db) as conn:
        first = conn.execute("SELECT name, applied_at FROM _codeens_migrations").fetchall()
    assert [name for name, _ in first] == [name for name, _fn in MIGRATIONS]

    Store(db)
    again = Store(db)
    assert again.schema_version() == len(MIGRATIONS)
    with _sqlite(db) as conn:
        second = conn.execute("SELECT name, applied_at FROM _codeens_migrations").fetchall()
        count = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
    assert second == first
    assert count == 1, "reopening must keep the rows"

    # Applying the migrations to an up-to-date database does nothing at all.
    with again.engine.connect() as conn:
        assert migrations_module.apply(conn) == []
        conn.rollback()


def test_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    store = Store(db)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one().lower() == "wal"
        busy = conn.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert busy == BUSY_TIMEOUT_MS
    assert busy >= 1000, "writers must wait for the lock, not fail at once"
    # WAL is a property of the file: a connection that set nothing sees it too.
    with _sqlite(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_default_db_path_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_db: Path
) -> None:
    assert default_db_path() == isolated_db
    target = tmp_path / "elsewhere" / "mine.db"
    monkeypatch.setenv(ENV_VAR, str(target))
    assert default_db_path() == target
    Store().write(_row(7))
    assert target.is_file()
    with _sqlite(target) as conn:
        assert conn.execute("SELECT candidate FROM executions").fetchall() == [("cand-7.py",)]

    monkeypatch.delenv(ENV_VAR)
    fallback = default_db_path()
    assert fallback != target
    assert fallback.name == "codeens.db"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from codeens.storage import Execution, Store

    db, worker, count, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no start signal")
        time.sleep(0.005)
    store = Store(db)  # every writer also races to migrate the blank file
    for i in range(count):
        store.write(
            Execution(
                run_id=f"w{worker}",
                candidate=f"w{worker}-{i}",
                candidate_hash=f"h{worker}-{i}",
                tests_hash="t",
                backend="process",
                verdict="passed",
                tests_total=1,
                tests_passed=1,
                duration_s=0.0,
            )
        )
    print("done", worker)
    """
)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    workers, per_worker = 4, 150
    db = tmp_path / "shared.db"
    go = tmp_path / "go"
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), str(w), str(per_worker), str(go)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    time.sleep(0.5)  # let every interpreter import and wait at the start line
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.startswith("done"), (out, err)

    store = Store(db)
    assert store.integrity_ok()
    assert store.schema_version() == len(MIGRATIONS)
    with _sqlite(db) as conn:
        ordered = conn.execute("SELECT run_id, candidate FROM executions ORDER BY id").fetchall()
        applied = conn.execute("SELECT count(*) FROM _codeens_migrations").fetchone()[0]
    names = [candidate for _run, candidate in ordered]
    assert len(names) == workers * per_worker
    assert set(names) == {f"w{w}-{i}" for w in range(workers) for i in range(per_worker)}
    assert applied == len(MIGRATIONS), "the racing openers migrated exactly once"
    # The writers really ran at the same time: their rows interleave in commit order.
    switches = sum(1 for a, b in itertools.pairwise(ordered) if a[0] != b[0])
    assert switches > workers, f"writers did not overlap ({switches} switches)"


def _log_before(db: Path, migration: str) -> Engine:
    """An engine on a new log that has every migration before ``migration`` applied."""
    upto = [name for name, _fn in MIGRATIONS].index(migration)
    with _sqlite(db) as conn:
        conn.execute(
            "CREATE TABLE _codeens_migrations (name VARCHAR PRIMARY KEY, applied_at DATETIME)"
        )
        conn.commit()
    engine = make_engine(db)
    with engine.begin() as conn:
        for name, fn in MIGRATIONS[:upto]:
            fn(conn)
            conn.execute(text("INSERT INTO _codeens_migrations (name) VALUES (:n)"), {"n": name})
    return engine


def test_an_old_log_gets_target_and_code_hash_from_its_labels(tmp_path: Path) -> None:
    """Rows written before m004 carry "target#hash" labels; the migration splits them."""
    db = tmp_path / "old.db"
    engine = _log_before(db, "m004_execution_target_and_code")
    with engine.begin() as conn:
        for label in ("add#0123456789ab", "HumanEval/0#" + "f" * 64, "cand.py"):
            conn.execute(
                text(
                    "INSERT INTO executions (created_at, run_id, candidate, candidate_hash, "
                    "tests_hash, backend, verdict, tests_total, tests_passed, duration_s, "
                    "message, tests_json, resources_json) VALUES (CURRENT_TIMESTAMP, 'r', :c, "
                    "'h', 't', 'docker', 'passed', 1, 1, 0.1, '', '[]', '{}')"
                ),
                {"c": label},
            )
    engine.dispose()
    store = Store(db)
    assert store.schema_version() == len(MIGRATIONS)
    rows = {e.candidate: (e.target, e.code_hash) for e in store.executions(limit=None)}
    assert [e.cached_from for e in store.executions(limit=None)] == [None, None, None]
    assert rows == {
        "add#0123456789ab": ("add", "0123456789ab"),
        "HumanEval/0#" + "f" * 64: ("HumanEval/0", "f" * 64),
        "cand.py": ("", ""),
    }
    assert [e.candidate for e in store.executions(target="add", limit=None)] == ["add#0123456789ab"]


def test_an_old_log_keeps_its_generations_with_no_origin(tmp_path: Path) -> None:
    """Generations logged before m006 did not say which request they answered: ''."""
    db = tmp_path / "old.db"
    engine = _log_before(db, "m006_generation_origin")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO generations (created_at, run_id, target, model, backend, "
                "request_key, prompt, params_json, seed, raw_output, input_tokens, "
                "output_tokens, latency_s, cost, error) VALUES (CURRENT_TIMESTAMP, 'r', 'add', "
                "'m', 'replay', 'k', 'p', '{}', 0, 'text', 1, 1, 0.0, 0.0, '')"
            )
        )
    engine.dispose()
    store = Store(db)
    store.write(
        Generation(
            run_id="r", target="add", model="m", backend="replay", request_key="k2",
            prompt="p", params_json="{}", seed=1, raw_output="t", origin="prompt:plan",
        )
    )  # fmt: skip
    assert [g.origin for g in store.generations("r")] == ["", "prompt:plan"]
