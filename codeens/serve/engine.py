"""The ensemble behind the server: what requests share, opened once, and how one request
becomes an :class:`Answer` (stubs: the solve pipeline; otherwise plain chat)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from codeens.config import Config
from codeens.generation import Generator
from codeens.sandbox.backends.base import Sandbox
from codeens.serve.answer import Answer
from codeens.serve.chat import answer_chat
from codeens.serve.job import Job, Shared
from codeens.serve.problem_input import find_problem
from codeens.serve.runs import unanswered_run
from codeens.serve.stubs import answer_stubs
from codeens.storage import Store


class Engine:
    """Owns the server's generator (loaded models) and folder; the sandbox and the store
    are the caller's, who closes them after :meth:`close`."""

    def __init__(self, config: Config, store: Store, sandbox: Sandbox) -> None:
        self.config = config
        self.shared = Shared(
            store=store,
            generator=Generator(store, "serve"),
            sandbox=sandbox,
            workdir=Path(tempfile.mkdtemp(prefix="codeens-serve-")),
        )

    def answer(self, job: Job) -> Answer:
        """The answer to an accepted request; ApiError when it cannot have one."""
        if job.budget_s is not None and job.budget_s <= 0:
            return self.late(job, "the deadline passed while the request waited")
        problem = find_problem(job.request.last_user_text, self.shared.workdir / "request.py")
        if problem is None:
            return answer_chat(self.shared, job)
        return answer_stubs(self.shared, job, problem)

    def late(self, job: Job, reason: str, log: bool = True) -> Answer:
        """The answer of a request out of time; with ``log`` its run row says so."""
        if log:
            unanswered_run(self.shared.store, job.run_id, job.route.name, "timeout", reason)
        return timeout_answer(job.run_id, job.route.strategy or "member", job.request.n, reason)

    def close(self) -> None:
        self.shared.generator.close()
        shutil.rmtree(self.shared.workdir, ignore_errors=True)


def timeout_answer(run_id: str, strategy: str, n: int, reason: str) -> Answer:
    text = f"codeens: no answer within the deadline ({reason})."
    return Answer(
        run_id=run_id,
        mode="timeout",
        status="timeout",
        strategy=strategy,
        members=(),
        contents=(text,) * n,
        timed_out=True,
    )
