"""One slice of the log moved between stores: what a Ray worker is given and hands back.

A worker solves one eval problem against a SQLite file of its own, seeded with that
problem's rows from the real log (:func:`snapshot`, :func:`load`): its finished child runs,
generations and executions, so a resumed problem redoes nothing and its model calls come
back from the log. It hands back what it added or changed (:func:`changes`). The driver,
the only writer of the real log, appends that in one transaction (:func:`append`): new
rows get fresh ids there, and a ``cached_from`` that named a row added on the worker is
pointed at that row's new id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from codeens.storage.models import Decision, Execution, Generation, Lineage, Problem, Run
from codeens.storage.store import Store

Row = dict[str, Any]


@dataclass(frozen=True)
class RowBatch:
    """Rows as plain dicts (they cross process and machine boundaries), by table."""

    runs: tuple[Row, ...] = ()
    problems: tuple[Row, ...] = ()
    generations: tuple[Row, ...] = ()
    executions: tuple[Row, ...] = ()
    decisions: tuple[Row, ...] = ()
    lineage: tuple[Row, ...] = ()  # read by strategies, never handed back

    def __len__(self) -> int:
        tables = (self.runs, self.problems, self.generations, self.executions, self.decisions)
        return sum(len(rows) for rows in tables)


def _dicts(rows: Iterable[SQLModel]) -> tuple[Row, ...]:
    return tuple(row.model_dump() for row in rows)


def snapshot(store: Store, run_id: str, target: str, child_prefix: str) -> RowBatch:
    """One eval problem's rows: those logged under the eval run for ``target``, and the
    child runs whose id starts with ``child_prefix`` with everything logged under them.
    The lineage table comes along whole (strategies weigh models by it)."""
    children = store.children(run_id, child_prefix)
    generations = list(store.generations(run_id, target))
    executions = list(store.executions(run_id, None, target=target, oldest_first=True))
    decisions: list[Decision] = []
    for child in children:
        generations.extend(store.generations(child.id))
        executions.extend(store.executions(child.id, None, oldest_first=True))
        decisions.extend(store.decisions(child.id))
    generations.sort(key=lambda g: g.id or 0)
    executions.sort(key=lambda e: e.id or 0)
    return RowBatch(
        runs=_dicts(children),
        generations=_dicts(generations),
        executions=_dicts(executions),
        decisions=_dicts(decisions),
        lineage=_dicts(store.lineage()),
    )


_TABLES: tuple[tuple[str, type[SQLModel]], ...] = (
    ("runs", Run),
    ("problems", Problem),
    ("generations", Generation),
    ("executions", Execution),
    ("decisions", Decision),
    ("lineage", Lineage),
)


def load(store: Store, batch: RowBatch) -> None:
    """Copy ``batch`` into an empty store as it is, ids included."""
    with Session(store.engine) as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        for field, model in _TABLES:
            for row in getattr(batch, field):
                session.add(model(**row))
        session.commit()


def _max_id(rows: Sequence[Row]) -> int:
    return max((int(r["id"]) for r in rows if r.get("id") is not None), default=0)


def changes(store: Store, base: RowBatch) -> RowBatch:
    """What ``store`` holds beyond ``base`` (which was loaded into it): every run and
    problem row (merging an unchanged one changes nothing) and every row added since."""
    with Session(store.engine) as session:

        def added(model: Any, rows: Sequence[Row]) -> tuple[Row, ...]:
            query = select(model).where(col(model.id) > _max_id(rows)).order_by(col(model.id))
            return _dicts(session.exec(query).all())

        return RowBatch(
            runs=_dicts(session.exec(select(Run)).all()),
            problems=_dicts(session.exec(select(Problem)).all()),
            generations=added(Generation, base.generations),
            executions=added(Execution, base.executions),
            decisions=added(Decision, base.decisions),
        )


def append(store: Store, batch: RowBatch) -> None:
    """Write a worker's rows into the real log in one transaction (see the module doc)."""
    with Session(store.engine) as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        for row in batch.runs:
            session.merge(Run(**row))
        for row in batch.problems:
            session.merge(Problem(**row))
        for rows, model in (
            (batch.generations, Generation),
            (batch.executions, Execution),
        ):
            new_id: dict[int, int] = {}
            for row in rows:
                cached = row.get("cached_from")
                if cached is not None:
                    cached = new_id.get(int(cached), int(cached))
                fresh: Any = model(**{**row, "id": None, "cached_from": cached})
                session.add(fresh)
                session.flush()
                new_id[int(row["id"])] = int(fresh.id)
        for row in batch.decisions:
            session.add(Decision(**{**row, "id": None}))
        session.commit()
