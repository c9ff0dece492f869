"""The fusing step of ``rank-fuse`` (LLM-Blender's GenFuser), checked by execution.

The fuser model sees the problem and the top-k ranked programs, best first, each with its
results on the visible tests, in ``moa``'s aggregation prompt (evaluate them critically, do
not copy one, write one corrected function). The fused program runs on the visible tests
like any candidate. When it passes at least as many of them as the ranked winner, the
models write extra tests (:mod:`codeens.strategies.gentests`) and both programs run on
them. The fused program replaces the winner only when it passes at least as many visible
tests AND at least as many generated tests, each count on its own: a program that trades a
visible test for a generated one is not at least as good, so the sum is not used. Ties go
to the fused program, which was written with the winner in view.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeens.models.base import ModelConfig
from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import parse_test_suite
from codeens.strategies.gentests import generate_tests
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.moa_prompts import Reference, layer_prompt
from codeens.strategies.rank_fuse_options import RankFuseOptions

ORIGIN = "fused"


@dataclass(frozen=True)
class Fusion:
    """The program to answer with (the fused one or the winner) and the step's trace."""

    chosen: Candidate
    trace: dict[str, Any]


def _passed(result: ExecutionResult | None) -> int:
    return result.tests_passed if result is not None else 0


def fuse(
    ctx: Context,
    model: ModelConfig,
    top: Sequence[Candidate],
    winner: Candidate,
    options: RankFuseOptions,
) -> Fusion:
    """Ask ``model`` to fuse ``top``; keep ``winner`` unless the fused program is as good."""
    references = [Reference(c.code, c.result) for c in top]
    prompt = layer_prompt(ctx.problem, ctx.stub, ctx.tests, references, options.max_chars)
    trace: dict[str, Any] = {"model": model.name, "fused_from": [c.hash[:12] for c in top]}
    produced = ctx.execute(ctx.generate(model, 1, prompt, origin=ORIGIN))
    if not produced:
        failed = ctx.failures.get(model.name)
        late = ctx.deadline is not None and time.monotonic() >= ctx.deadline
        why = f"model failed: {failed}" if failed else "no function could be extracted"
        why = "out of time" if late and not failed else why
        return _keep(winner, trace, why)
    fused = produced[0]
    trace["fused"] = {"candidate": fused.hash[:12], "origin": fused.origin}
    if fused == winner:
        return _keep(winner, trace, "the fuser wrote the winner's program again")
    visible = {"fused": _passed(fused.result), "winner": _passed(winner.result)}
    trace["visible_passed"] = visible
    if visible["fused"] < visible["winner"]:
        why = f"fused passes fewer visible tests ({visible['fused']} < {visible['winner']})"
        return _keep(winner, trace, why)
    generated, note = _on_generated(ctx, fused, winner, options, trace)
    if generated is None:
        return _replace(fused, trace, f"{note}; fused passes at least as many visible tests")
    trace["generated_passed"] = generated
    if generated["fused"] < generated["winner"]:
        why = f"fused passes fewer generated tests ({generated['fused']} < {generated['winner']})"
        return _keep(winner, trace, why)
    return _replace(
        fused,
        trace,
        f"fused passes at least as many visible ({visible['fused']} vs {visible['winner']}) "
        f"and generated tests ({generated['fused']} vs {generated['winner']})",
    )


def _on_generated(
    ctx: Context,
    fused: Candidate,
    winner: Candidate,
    options: RankFuseOptions,
    trace: dict[str, Any],
) -> tuple[dict[str, int] | None, str]:
    """Tests passed by each on model-written tests, or None and why there are none."""
    if options.generated_tests == 0:
        trace["generated_tests"] = {"status": "disabled (generated_tests = 0)"}
        return None, "no generated tests (disabled)"
    generated = generate_tests(ctx, options.generated_tests, options.test_samples)
    info: dict[str, Any] = {"status": "used", "tests": generated.tests} | generated.summary()
    trace["generated_tests"] = info
    if not generated.tests:
        info["status"] = "none usable"
        return None, "no model wrote usable tests"
    try:
        suite = parse_test_suite("\n".join(generated.tests), "generated tests")
        results = ctx.run_suite([winner, fused], suite)
    except SandboxInputError as exc:  # parsed asserts always load; stay safe regardless
        info["status"] = f"unusable ({exc})"
        return None, "the generated tests could not run"
    return {"fused": _passed(results.get(fused)), "winner": _passed(results.get(winner))}, ""


def _keep(winner: Candidate, trace: dict[str, Any], why: str) -> Fusion:
    trace.update(status="kept winner", why=why)
    return Fusion(winner, trace)


def _replace(fused: Candidate, trace: dict[str, Any], why: str) -> Fusion:
    trace.update(status="replaced winner", why=why)
    return Fusion(fused, trace)
