"""Where the database lives and how connections are configured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import create_engine

ENV_VAR = "CODEENS_DB"
BUSY_TIMEOUT_MS = 30_000


def default_db_path() -> Path:
    """``$CODEENS_DB`` if set, else ``codeens.db`` in the user's data directory."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("codeens", appauthor=False)) / "codeens.db"


def _configure(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside a writer; the busy timeout makes concurrent writers wait
    # for the lock instead of failing, so parallel runs never lose rows.
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def make_engine(path: Path) -> Engine:
    """An engine for the database at ``path``, creating its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        poolclass=NullPool,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
    )
    event.listen(engine, "connect", _configure)
    return engine
