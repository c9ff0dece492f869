"""``repair``: feed the best failing programs back, with their test results, to be fixed.

1. The usual first round (``ctx.sample_all``). When a candidate already passes every visible
   test, or there are no visible tests to repair against, nothing is repaired.
2. Otherwise, for up to ``rounds`` rounds, the ``repair_top_k`` best candidates not yet fed
   back (vote's order: visible pass rate, then the size of their behaviour group, then
   duplicates, then shorter code) are shown one at a time to the ``repairer`` with their
   results: verdict and pass count, each failing assertion with the values it compared
   (``3 == -3 is false``), the error or "timed out" (the prompt pieces of ``moa``). Each
   repair asks for ``samples`` completions, logged with origin ``repair:<round>``, and runs
   them on the visible tests. A later round therefore fixes the best of what the earlier
   rounds produced, never the same program twice.
3. The loop stops as soon as a repaired program passes every visible test, or when the
   rounds, the candidates worth repairing, the ``max_tokens`` budget (tokens of the repair
   calls), the run's deadline or the repairer itself give out.
4. The answer is chosen among every candidate, first round and repairs alike, as ``vote``
   ranks them without generated tests (:func:`codeens.strategies.vote.rank_by_pass_rate`).

The repairer defaults to ``moa``'s aggregator rule: the most expensive selected model by
token price, then by price per second, then the last listed (with equal prices, the last
configured member).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.models.base import ModelConfig, Prompt
from codeens.strategies.base import Decision, Strategy
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.moa import named_or_strongest, passes_all
from codeens.strategies.moa_prompts import Reference, failures, layer_prompt, status_line
from codeens.strategies.vote import rank_by_pass_rate

INSTRUCTION = (
    "Below is an implementation of `{name}` written earlier, with its results on the tests "
    "above: it does not pass them all. Find the mistakes that make the tests fail, keeping "
    "what already works, and write one corrected, complete implementation of `{name}`."
)


class RepairOptions(BaseModel):
    """``[strategies.repair]`` in codeens.toml."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1, le=10, description="Repair rounds at most.")
    repair_top_k: int = Field(
        2, ge=1, le=16, description="Candidates fed back per round, best first."
    )
    samples: int = Field(2, ge=1, le=50, description="Completions asked per repaired program.")
    repairer: str | None = Field(
        None,
        description="Model name (default: the most expensive selected model, then the last).",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Token budget of the repair calls (input + output)."
    )
    max_chars: int = Field(4000, ge=100, le=50_000, description="Code shown per program.")


def repair_prompt(ctx: Context, candidate: Candidate, max_chars: int) -> Prompt:
    """The problem, then ``candidate`` with its results and the request to fix it."""
    reference = Reference(candidate.code, candidate.result)
    return layer_prompt(ctx.problem, ctx.stub, ctx.tests, [reference], max_chars, INSTRUCTION)


def _summary(candidate: Candidate) -> dict[str, Any]:
    result = candidate.result
    return {
        "candidate": candidate.hash[:12],
        "pass_rate": round(result.pass_rate, 6) if result is not None else 0.0,
        "status": status_line(result),
        "origin": candidate.origin,
        "models": candidate.models,
    }


@dataclass
class _Loop:
    """What the repair loop did: per round, the programs fed back and what came back."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    stopped: str = ""


class Repair(Strategy):
    """Feed the best failing candidates back with their failures until one passes."""

    name = "repair"
    summary = "repair loop: the best failing candidates go back with their failures to be fixed"
    Options = RepairOptions
    options: RepairOptions

    def solve(self, ctx: Context) -> Decision:
        repairer = named_or_strongest(ctx, self.options.repairer, "[strategies.repair]")
        first = ctx.sample_all()
        loop = _Loop()
        if ctx.suite is None:
            loop.stopped = "no visible tests: nothing to repair against"
        elif any(passes_all(c) for c in first):
            loop.stopped = "a first-round candidate passes every visible test: no repair"
        elif not first:
            loop.stopped = "the first round produced no candidate to repair"
        else:
            self._loop(ctx, repairer, loop)
        ranked = rank_by_pass_rate(ctx.candidates(), include_unexecuted=ctx.suite is None)
        trace: dict[str, Any] = {
            "repairer": repairer.name,
            "options": self.options.model_dump(exclude={"repairer"}),
            "first_round": [_summary(c) for c in first],
            "rounds": loop.rounds,
            "repair_tokens": loop.tokens,
            "stopped": loop.stopped,
            "scores": [
                {k: v for k, v in r.items() if k != "record"} | {"origin": r["record"].origin}
                for r in ranked
            ],
        }
        if not ranked:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        chosen: Candidate = ranked[0]["record"]
        trace["why"] = (
            f"top visible pass rate {ranked[0]['pass_rate']} (then behaviour-group size, "
            f"duplicates, shorter code) among {len(ranked)} candidates; chosen from "
            f"{chosen.origin}"
        )
        return Decision(chosen, trace)

    def _loop(self, ctx: Context, repairer: ModelConfig, loop: _Loop) -> None:
        opts = self.options
        fed: set[str] = set()
        for number in range(1, opts.rounds + 1):
            ranked = [r["record"] for r in rank_by_pass_rate(ctx.candidates())]
            targets = [c for c in ranked if c.hash not in fed][: opts.repair_top_k]
            if not targets:
                loop.stopped = "no candidate left that was not fed back already"
                return
            repairs: list[dict[str, Any]] = []
            for target in targets:
                why = self._cannot_go_on(ctx, repairer, loop.tokens)
                if why:
                    loop.stopped = why
                    return
                if not repairs:  # a round shows in the trace once a repair in it starts
                    loop.rounds.append({"round": number, "repairs": repairs})
                fed.add(target.hash)
                repairs.append(self._repair(ctx, repairer, target, number, loop))
                if ctx.failures.get(repairer.name):
                    loop.stopped = f"repairer {repairer.name} failed: {ctx.failures[repairer.name]}"
                    return
                if repairs[-1]["passed"]:
                    loop.stopped = (
                        f"round {number} produced a candidate that passes every visible test"
                    )
                    return
        loop.stopped = f"{opts.rounds} round(s) done; none passes every visible test"

    def _cannot_go_on(self, ctx: Context, repairer: ModelConfig, tokens: int) -> str:
        """Why no further repair may start ('' when one may)."""
        if ctx.failures.get(repairer.name):
            return f"repairer {repairer.name} failed: {ctx.failures[repairer.name]}"
        if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
            return "out of time (the run's deadline passed)"
        budget = self.options.max_tokens
        if budget is not None and tokens >= budget:
            return f"token budget spent: {tokens} of max_tokens {budget}"
        return ""

    def _repair(
        self, ctx: Context, repairer: ModelConfig, target: Candidate, number: int, loop: _Loop
    ) -> dict[str, Any]:
        """One program fed back; its repairs executed; what happened, for the trace."""
        start = len(ctx.drawn)
        prompt = repair_prompt(ctx, target, self.options.max_chars)
        produced = ctx.execute(
            ctx.generate(repairer, self.options.samples, prompt, origin=f"repair:{number}")
        )
        new = ctx.drawn[start:]
        tokens = sum(s.tokens for s in new)
        loop.tokens += tokens
        return {
            "fed": _summary(target) | {"failures": failures(target.result)},
            "samples": len(new),
            "unparsed": sum(s.code is None for s in new),
            "returned": [_summary(c) for c in produced],
            "tokens": tokens,
            "passed": any(passes_all(c) for c in produced),
        }
