"""The one write path into the log, and the reads the commands need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, or_, text
from sqlmodel import Session, SQLModel, col, select

from codeens.storage.db import default_db_path, make_engine
from codeens.storage.migrations import apply as apply_migrations
from codeens.storage.models import (
    Decision,
    EvolveStep,
    Execution,
    Generation,
    Lineage,
    Problem,
    Run,
)


class Store:
    """A SQLite log file, migrated to the current schema when opened."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_db_path()
        self.engine = make_engine(self.path)
        self._migrate()

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            # BEGIN IMMEDIATE takes the write lock up front, so two processes opening a
            # blank database at once cannot both create the tables.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                apply_migrations(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def write(self, *rows: SQLModel) -> None:
        """Insert or update rows in one transaction: every record goes through here.

        Rows whose primary key is set are merged (a run updated at its end, a problem seen
        before); the others are inserted and get their new id.
        """
        with Session(self.engine) as session:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            added = []
            for row in rows:
                keys = [getattr(row, c.name) for c in row.__table__.primary_key.columns]  # type: ignore[attr-defined]
                if all(k is not None for k in keys):
                    session.merge(row)
                else:
                    session.add(row)
                    added.append(row)
            session.commit()
            for row in added:
                session.refresh(row)

    def executions(
        self,
        run_id: str | None = None,
        limit: int | None = 100,
        *,
        tests_hash: str | None = None,
        target: str | None = None,
        oldest_first: bool = False,
    ) -> Sequence[Execution]:
        """Newest first (or oldest first); ``limit=None`` for all of them; one test suite's
        and one target's if given."""
        with Session(self.engine) as session:
            order = col(Execution.id) if oldest_first else col(Execution.id).desc()
            query = select(Execution).order_by(order).limit(limit)
            if run_id is not None:
                query = query.where(Execution.run_id == run_id)
            if tests_hash is not None:
                query = query.where(Execution.tests_hash == tests_hash)
            if target is not None:
                query = query.where(Execution.target == target)
            return session.exec(query).all()

    def cached_generation(self, request_key: str) -> Generation | None:
        """The first successful generation made for this exact request, if any."""
        with Session(self.engine) as session:
            query = (
                select(Generation)
                .where(Generation.request_key == request_key, Generation.error == "")
                .where(col(Generation.cached_from).is_(None))
                .order_by(col(Generation.id))
                .limit(1)
            )
            return session.exec(query).first()

    def runs(self, limit: int | None = 20, *, children: bool = False) -> Sequence[Run]:
        """Newest first; runs made on behalf of another (an eval's) only with ``children``."""
        with Session(self.engine) as session:
            query = select(Run).order_by(col(Run.created_at).desc()).limit(limit)
            if not children:
                query = query.where(col(Run.parent_id).is_(None))
            return session.exec(query).all()

    def run(self, run_id: str) -> Run | None:
        """A run by id or by a unique id prefix."""
        with Session(self.engine) as session:
            exact = session.get(Run, run_id)
            if exact is not None:
                return exact
            found = session.exec(select(Run).where(col(Run.id).startswith(run_id)).limit(2)).all()
            return found[0] if len(found) == 1 else None

    def generations(self, run_id: str, target: str | None = None) -> Sequence[Generation]:
        """A run's generations in order; one target's if given."""
        with Session(self.engine) as session:
            query = select(Generation).where(Generation.run_id == run_id)
            if target is not None:
                query = query.where(Generation.target == target)
            return session.exec(query.order_by(col(Generation.id))).all()

    def generations_of(self, models: Sequence[str] | None) -> Sequence[Generation]:
        """Every successful generation of these models (all models: None), in order, from
        any run."""
        with Session(self.engine) as session:
            query = select(Generation).where(Generation.error == "")
            if models is not None:
                query = query.where(col(Generation.model).in_(list(models)))
            return session.exec(query.order_by(col(Generation.id))).all()

    def problems(self) -> dict[str, Problem]:
        """Every recorded problem file, by content hash."""
        with Session(self.engine) as session:
            return {p.hash: p for p in session.exec(select(Problem)).all()}

    def model_usage(self, exclude_run: str | None = None) -> dict[str, tuple[float, float, float]]:
        """Per model, the mean input tokens, output tokens and latency of its generated (not
        cached, successful) completions, leaving out one run's if given."""
        query = (
            select(
                Generation.model,
                func.avg(Generation.input_tokens),
                func.avg(Generation.output_tokens),
                func.avg(Generation.latency_s),
            )
            .where(Generation.error == "", col(Generation.cached_from).is_(None))
            .group_by(col(Generation.model))
        )
        if exclude_run is not None:
            query = query.where(
                or_(col(Generation.run_id).is_(None), col(Generation.run_id) != exclude_run)
            )
        with Session(self.engine) as session:
            rows = session.exec(query).all()
        return {m: (float(i or 0), float(o or 0), float(t or 0)) for m, i, o, t in rows}

    def decisions(self, run_id: str) -> Sequence[Decision]:
        with Session(self.engine) as session:
            query = select(Decision).where(Decision.run_id == run_id)
            return session.exec(query.order_by(col(Decision.id))).all()

    def children(self, parent_id: str, id_prefix: str = "") -> Sequence[Run]:
        """The runs started on behalf of another (an eval run's per-problem runs), by id;
        only those whose id starts with ``id_prefix`` if given."""
        with Session(self.engine) as session:
            query = select(Run).where(Run.parent_id == parent_id)
            if id_prefix:
                query = query.where(col(Run.id).startswith(id_prefix))
            return session.exec(query.order_by(col(Run.id))).all()

    def lineage(self, model_dir: str | None = None) -> Sequence[Lineage]:
        """Recorded origins of built checkpoints, newest first; one directory's if given."""
        with Session(self.engine) as session:
            query = select(Lineage).order_by(col(Lineage.id).desc())
            if model_dir is not None:
                query = query.where(Lineage.model_dir == model_dir)
            return session.exec(query).all()

    def evolve_steps(self, run_id: str) -> Sequence[EvolveStep]:
        """The measurements of one evolutionary merge search, in the order they were made."""
        with Session(self.engine) as session:
            query = select(EvolveStep).where(EvolveStep.run_id == run_id)
            return session.exec(query.order_by(col(EvolveStep.id))).all()

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("PRAGMA user_version")).scalar_one())

    def integrity_ok(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok")
