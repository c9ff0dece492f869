"""Append-only schema migrations, applied in order and recorded by name.

Never edit or reorder a migration that has shipped: add a new one. ``PRAGMA user_version``
mirrors the number applied, so any SQLite tool can read the schema version.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_executions(conn: Connection) -> None:
    conn.execute(
        text(
            """
            CREATE TABLE executions (
                id INTEGER PRIMARY KEY,
                created_at DATETIME NOT NULL,
                run_id VARCHAR,
                candidate VARCHAR NOT NULL,
                candidate_hash VARCHAR NOT NULL,
                tests_hash VARCHAR NOT NULL,
                backend VARCHAR NOT NULL,
                verdict VARCHAR NOT NULL,
                tests_total INTEGER NOT NULL,
                tests_passed INTEGER NOT NULL,
                duration_s FLOAT NOT NULL,
                exit_status INTEGER,
                message VARCHAR NOT NULL,
                tests_json VARCHAR NOT NULL,
                resources_json VARCHAR NOT NULL
            )
            """
        )
    )
    conn.execute(text("CREATE INDEX ix_executions_run_id ON executions (run_id)"))
    conn.execute(text("CREATE INDEX ix_executions_candidate_hash ON executions (candidate_hash)"))
    conn.execute(text("CREATE INDEX ix_executions_tests_hash ON executions (tests_hash)"))


def apply(conn: Connection) -> list[str]:
    """Apply every pending migration inside the caller's (immediate) transaction."""
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS _codeens_migrations "
            "(name VARCHAR PRIMARY KEY, applied_at DATETIME DEFAULT CURRENT_TIMESTAMP)"
        )
    )
    done = {row[0] for row in conn.execute(text("SELECT name FROM _codeens_migrations"))}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        fn(conn)
        conn.execute(text("INSERT INTO _codeens_migrations (name) VALUES (:n)"), {"n": name})
        applied.append(name)
    conn.execute(text(f"PRAGMA user_version = {len(MIGRATIONS)}"))
    return applied


def schema_version() -> int:
    return len(MIGRATIONS)
