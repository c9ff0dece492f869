"""The one write path into the log, and the reads the commands need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session, SQLModel, col, select

from codeens.storage import migrations
from codeens.storage.db import default_db_path, make_engine
from codeens.storage.models import Execution


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
                migrations.apply(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def write(self, *rows: SQLModel) -> None:
        """Insert rows in one transaction: every record goes through here."""
        with Session(self.engine) as session:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            for row in rows:
                session.add(row)
            session.commit()
            for row in rows:
                session.refresh(row)

    def executions(self, run_id: str | None = None, limit: int = 100) -> Sequence[Execution]:
        with Session(self.engine) as session:
            query = select(Execution).order_by(col(Execution.id).desc()).limit(limit)
            if run_id is not None:
                query = query.where(Execution.run_id == run_id)
            return session.exec(query).all()

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("PRAGMA user_version")).scalar_one())

    def integrity_ok(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok")
