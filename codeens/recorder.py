"""The one writer of generation, execution and decision rows.

The pipeline hands finished values to a :class:`Recorder`; it turns each into its log row
and writes it once. Nothing else calls :meth:`Store.write` for these three tables, so what
a row holds is decided here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from codeens.sandbox.results import ExecutionResult
from codeens.storage import Decision as DecisionRow
from codeens.storage import Execution, Generation, Store
from codeens.strategies.interface import Decision, Sample


def generation_row(sample: Sample, run_id: str | None, target: str) -> Generation:
    g = sample.generated
    return Generation(
        run_id=run_id,
        target=target,
        model=g.model,
        backend=g.backend,
        request_key=g.request_key,
        prompt=g.prompt,
        params_json=g.params_json,
        seed=g.seed,
        raw_output=g.text,
        code=sample.code,
        code_hash=sample.code_hash,
        input_tokens=g.input_tokens,
        output_tokens=g.output_tokens,
        mean_logprob=g.mean_logprob,
        latency_s=g.latency_s,
        cost=g.cost,
        cached_from=g.cached_from,
        origin=sample.origin,
        extra_json=g.extra_json,
    )


def execution_row(
    result: ExecutionResult,
    run_id: str | None,
    *,
    target: str = "",
    code_hash: str = "",
    cached_from: int | None = None,
) -> Execution:
    return Execution(
        target=target,
        code_hash=code_hash,
        run_id=run_id,
        candidate=result.candidate,
        candidate_hash=result.candidate_hash,
        tests_hash=result.tests_hash,
        backend=result.backend,
        verdict=str(result.verdict),
        tests_total=result.tests_total,
        tests_passed=result.tests_passed,
        duration_s=result.duration,
        exit_status=result.exit_status,
        message=result.message,
        tests_json=json.dumps([asdict(t) for t in result.tests]),
        resources_json=json.dumps(result.resources),
        cached_from=cached_from,
    )


class Recorder:
    """Writes one run's rows: each value once, as soon as it is final."""

    def __init__(self, store: Store, run_id: str | None) -> None:
        self.store = store
        self.run_id = run_id

    def samples(self, samples: Sequence[Sample], target: str) -> list[int]:
        """Log the samples; their row ids."""
        rows = [generation_row(s, self.run_id, target) for s in samples]
        if rows:
            self.store.write(*rows)
        return [row.id for row in rows if row.id is not None]

    def execution(
        self,
        result: ExecutionResult,
        *,
        target: str = "",
        code_hash: str = "",
        cached_from: int | None = None,
    ) -> int:
        """Log one execution (a cache hit names the execution it reuses); its row id."""
        row = execution_row(
            result, self.run_id, target=target, code_hash=code_hash, cached_from=cached_from
        )
        self.store.write(row)
        assert row.id is not None
        return row.id

    def executions(self, results: Sequence[tuple[str, ExecutionResult]]) -> None:
        """Log many executions, each with its target, in one transaction."""
        rows = [execution_row(result, self.run_id, target=target) for target, result in results]
        if rows:
            self.store.write(*rows)

    def decision(self, target: str, strategy: str, status: str, decision: Decision) -> None:
        self.store.write(
            DecisionRow(
                run_id=self.run_id or "",
                target=target,
                strategy=strategy,
                status=status,
                chosen_hash=decision.chosen.hash if decision.chosen else None,
                trace_json=json.dumps(decision.trace, default=str),
            )
        )
