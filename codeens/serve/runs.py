"""The serve runs that :func:`codeens.solve.solve` does not write: plain chat, requests
turned away by a full queue, and requests whose deadline passed while they waited.

Every run has ``kind = "serve"``; its ``summary_json`` names the requested model and how
the request was answered (``mode``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from codeens.config import Config
from codeens.storage import Run, Store


def start_run(
    store: Store, run_id: str, requested: str, strategy: str, members: Sequence[str], config: Config
) -> Run:
    """A chat run's row, written as ``running`` (completed by :func:`finish_run`)."""
    run = Run(
        id=run_id,
        kind="serve",
        strategy=strategy,
        models_json=json.dumps(list(members)),
        config_json=config.model_dump_json(),
        summary_json=json.dumps({"mode": "chat", "model": requested}),
    )
    store.write(run)
    return run


def finish_run(store: Store, run: Run, **outcome: object) -> None:
    """The run's one update, with its outcome (status, tokens, cost, wall time...)."""
    store.write(Run(**(run.model_dump() | outcome)))


def unanswered_run(
    store: Store, run_id: str, requested: str, status: str, reason: str, wall_s: float = 0.0
) -> None:
    """A request that got no answer: ``rejected`` (the queue was full, 429) or ``timeout``
    (its deadline passed before it left the queue)."""
    store.write(
        Run(
            id=run_id,
            kind="serve",
            status=status,
            wall_s=wall_s,
            summary_json=json.dumps({"mode": status, "model": requested, "reason": reason}),
        )
    )
