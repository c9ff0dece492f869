"""Turn the pipeline's plain values into log rows (the storage layer knows no sandbox)."""

from __future__ import annotations

import json
from dataclasses import asdict

from codeens.sandbox.results import ExecutionResult
from codeens.storage.models import Execution


def execution_row(
    result: ExecutionResult, run_id: str | None = None, *, target: str = "", code_hash: str = ""
) -> Execution:
    """The log row for one sandbox execution; ``target`` and ``code_hash`` say which
    function and which extracted code it ran, when the caller knows."""
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
    )
