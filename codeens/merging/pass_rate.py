"""The built-in fitness ``pass-rate``: a real eval of the merged checkpoint.

One eval run per candidate (a child of the search's run, so everything it sampled and ran
is in the log): the first ``problems`` task ids of a development split in the split's
order, ``samples`` completions each from one ``transformers`` member loaded from the
candidate's directory, every program run against the problem's hidden tests in the
configured sandbox, no strategy. The fitness is the mean per-sample pass rate (pass@1).
The test split is refused: it is what the final evaluation reports.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeens.embedded import CHAT_STOP
from codeens.merging.fitness import Candidate, Fitness, FitnessContext, FitnessError, Score


class PassRate(Fitness):
    """Mean per-sample pass rate on the hidden tests of a development split."""

    name = "pass-rate"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        benchmark: str = Field("mbpp", description="A registered benchmark.")
        split: str = Field("validation", description="A development split, never 'test'.")
        data: str | None = Field(None, description="Local data path, as eval's --data.")
        problems: int = Field(10, ge=1, description="The first N problems of the split.")
        samples: int = Field(1, ge=1, le=200, description="Completions per problem.")
        temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy.")
        max_tokens: int = Field(384, ge=1, le=32768, description="New tokens per completion.")
        stop: tuple[str, ...] = Field(
            CHAT_STOP, description="Stop strings (default: the closing fence of a chat answer)."
        )
        chat: bool = Field(True, description="The sources are instruction models.")
        backend_options: dict[str, Any] = Field(
            default_factory=dict, description="Options of the transformers backend."
        )

        @field_validator("split")
        @classmethod
        def _not_test(cls, split: str) -> str:
            if split == "test":
                raise ValueError("the test split is for the final evaluation: search on another")
            return split

        @field_validator("benchmark")
        @classmethod
        def _known(cls, benchmark: str) -> str:
            from codeens.evals.benchmarks import BENCHMARKS

            BENCHMARKS.check([benchmark])
            return benchmark

    options: Options

    def __init__(self, options: BaseModel, context: FitnessContext) -> None:
        super().__init__(options, context)
        self._task_ids: tuple[str, ...] | None = None

    def task_ids(self) -> tuple[str, ...]:
        """The first ``problems`` task ids of the split, read once."""
        if self._task_ids is None:
            from pathlib import Path

            from codeens.evals.benchmarks import BENCHMARKS

            o = self.options
            data = Path(o.data) if o.data else None
            items = BENCHMARKS.get(o.benchmark)().load(o.split, data)
            self._task_ids = tuple(item.task_id for item in items[: o.problems])
        return self._task_ids

    def score(self, candidate: Candidate) -> Score:
        from codeens.errors import first_line
        from codeens.evals import runner
        from codeens.evals.spec import EvalSpec
        from codeens.evals.summary import summarize
        from codeens.models.base import ModelConfig, SamplingParams
        from codeens.progress import Progress
        from codeens.sandbox.errors import SandboxUnavailable

        o = self.options
        member = ModelConfig(
            name=candidate.label,
            backend="transformers",
            location=str(candidate.model_dir),
            chat=o.chat,
            sampling=SamplingParams(
                temperature=o.temperature, max_tokens=o.max_tokens, stop=o.stop
            ),
            options=o.backend_options,
        )
        config = self.context.config.model_copy(update={"models": (member,)})
        spec = EvalSpec(
            benchmark=o.benchmark,
            split=o.split,
            data=o.data,
            task_ids=self.task_ids(),
            models=(member.name,),
            strategies=(),
            samples=o.samples,
            config=config,
        )
        store = self.context.store
        run = runner.start(spec, store)
        run.parent_id = self.context.run_id
        store.write(run)
        try:
            run = runner.execute(run, store, Progress(enabled=False))
        except SandboxUnavailable as exc:
            raise FitnessError(f"sandbox: {first_line(exc)}") from exc
        # A sandbox that broke scores every program 0: that is no fitness to search on.
        for execution in store.executions(run.id, limit=None):
            if execution.verdict == "infra_error":
                raise FitnessError(f"sandbox: {first_line(Exception(execution.message))}")
        rows = store.generations(run.id)
        if rows and all(row.error for row in rows):
            raise FitnessError(
                f"{candidate.label} generated nothing: {first_line(Exception(rows[0].error))}"
            )
        summary = summarize(store, run, similarity=False)
        run.summary_json = _json(summary)
        store.write(run)
        value = summary["models"][member.name]["pass@1"]
        rate = 0.0 if value is None or math.isnan(value) else float(value)
        return Score(rate, eval_run_id=run.id, detail={"problems": summary["problems_done"]})


def _json(summary: dict[str, Any]) -> str:
    import json

    return json.dumps(summary)
