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


@migration
def m002_runs_generations_decisions(conn: Connection) -> None:
    conn.execute(
        text(
            """
            CREATE TABLE runs (
                id VARCHAR PRIMARY KEY,
                created_at DATETIME NOT NULL,
                kind VARCHAR NOT NULL,
                problem_hash VARCHAR,
                problem_path VARCHAR NOT NULL,
                strategy VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                models_json VARCHAR NOT NULL,
                config_json VARCHAR NOT NULL,
                wall_s FLOAT NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cost FLOAT NOT NULL,
                solution VARCHAR,
                summary_json VARCHAR NOT NULL
            )
            """
        )
    )
    conn.execute(text("CREATE INDEX ix_runs_problem_hash ON runs (problem_hash)"))
    conn.execute(
        text(
            """
            CREATE TABLE problems (
                hash VARCHAR PRIMARY KEY,
                created_at DATETIME NOT NULL,
                path VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                visible_tests VARCHAR NOT NULL
            )
            """
        )
    )
    conn.execute(
        text(
            """
            CREATE TABLE generations (
                id INTEGER PRIMARY KEY,
                created_at DATETIME NOT NULL,
                run_id VARCHAR,
                target VARCHAR NOT NULL,
                model VARCHAR NOT NULL,
                backend VARCHAR NOT NULL,
                request_key VARCHAR NOT NULL,
                prompt VARCHAR NOT NULL,
                params_json VARCHAR NOT NULL,
                seed INTEGER NOT NULL,
                raw_output VARCHAR NOT NULL,
                code VARCHAR,
                code_hash VARCHAR,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                mean_logprob FLOAT,
                latency_s FLOAT NOT NULL,
                cost FLOAT NOT NULL,
                cached_from INTEGER,
                error VARCHAR NOT NULL
            )
            """
        )
    )
    for column in ("run_id", "model", "request_key", "code_hash"):
        conn.execute(text(f"CREATE INDEX ix_generations_{column} ON generations ({column})"))
    conn.execute(
        text(
            """
            CREATE TABLE decisions (
                id INTEGER PRIMARY KEY,
                created_at DATETIME NOT NULL,
                run_id VARCHAR NOT NULL,
                target VARCHAR NOT NULL,
                strategy VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                chosen_hash VARCHAR,
                trace_json VARCHAR NOT NULL
            )
            """
        )
    )
    conn.execute(text("CREATE INDEX ix_decisions_run_id ON decisions (run_id)"))


@migration
def m003_run_parent_and_lineage(conn: Connection) -> None:
    # An eval run owns one child run per (problem, strategy); merged and MoE checkpoints
    # record where their weights came from so strategies can tell related models apart.
    conn.execute(text("ALTER TABLE runs ADD COLUMN parent_id VARCHAR"))
    conn.execute(text("CREATE INDEX ix_runs_parent_id ON runs (parent_id)"))
    conn.execute(
        text(
            """
            CREATE TABLE lineage (
                id INTEGER PRIMARY KEY,
                created_at DATETIME NOT NULL,
                model_dir VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                method VARCHAR NOT NULL,
                sources_json VARCHAR NOT NULL,
                parameters_json VARCHAR NOT NULL,
                recipe VARCHAR NOT NULL
            )
            """
        )
    )
    conn.execute(text("CREATE INDEX ix_lineage_model_dir ON lineage (model_dir)"))


@migration
def m004_execution_target_and_code(conn: Connection) -> None:
    # Readers used to split the candidate label "target#hash"; the two parts are columns
    # now. Older rows get them from their label, once, here.
    conn.execute(text("ALTER TABLE executions ADD COLUMN target VARCHAR NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE executions ADD COLUMN code_hash VARCHAR NOT NULL DEFAULT ''"))
    conn.execute(
        text(
            "UPDATE executions SET target = substr(candidate, 1, instr(candidate, '#') - 1), "
            "code_hash = substr(candidate, instr(candidate, '#') + 1) "
            "WHERE instr(candidate, '#') > 0"
        )
    )
    conn.execute(text("CREATE INDEX ix_executions_target ON executions (target)"))


@migration
def m005_execution_cached_from(conn: Connection) -> None:
    # A result reused from the execution cache (same program, suite, limits and backend)
    # is logged with the id of the execution that produced it, as generations are.
    conn.execute(text("ALTER TABLE executions ADD COLUMN cached_from INTEGER"))


@migration
def m006_generation_origin(conn: Connection) -> None:
    # Which request of a strategy a candidate came from (a prompt variant, a MoA layer),
    # so the value of each can be measured from the log. Older rows did not say: ''.
    conn.execute(text("ALTER TABLE generations ADD COLUMN origin VARCHAR NOT NULL DEFAULT ''"))


@migration
def m007_generation_extra(conn: Connection) -> None:
    # What a backend reports beside the text (its seed, a greedy copy, a fused model's
    # weights and share of fused steps), as JSON. Older rows did not say: ''.
    conn.execute(text("ALTER TABLE generations ADD COLUMN extra_json VARCHAR NOT NULL DEFAULT ''"))


@migration
def m008_evolve_steps(conn: Connection) -> None:
    # `codeens merge evolve` logs every genome it measured, with the merge parameters it
    # stood for and its fitness, under the search's run.
    conn.execute(
        text(
            """
            CREATE TABLE evolve_steps (
                id INTEGER PRIMARY KEY,
                created_at DATETIME NOT NULL,
                run_id VARCHAR NOT NULL,
                step INTEGER NOT NULL,
                role VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                genome_json VARCHAR NOT NULL,
                parameters_json VARCHAR NOT NULL,
                fitness FLOAT,
                seconds FLOAT NOT NULL,
                eval_run_id VARCHAR
            )
            """
        )
    )
    conn.execute(text("CREATE INDEX ix_evolve_steps_run_id ON evolve_steps (run_id)"))
