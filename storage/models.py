"""Table definitions. Their DDL lives in migrations; a test checks the two agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class Execution(SQLModel, table=True):
    """One candidate run against one test suite in a sandbox."""

    __tablename__ = "executions"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    run_id: str | None = Field(default=None, index=True)
    candidate: str
    candidate_hash: str = Field(index=True)
    tests_hash: str = Field(index=True)
    backend: str
    verdict: str
    tests_total: int
    tests_passed: int
    duration_s: float
    exit_status: int | None = None
    message: str = ""
    tests_json: str = "[]"
    resources_json: str = "{}"
