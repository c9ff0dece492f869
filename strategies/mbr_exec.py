"""``mbr-exec``: minimum Bayes risk decoding with execution (Shi et al. 2022, MBR-exec).

Every candidate runs on a set of inputs (:mod:`codeens.strategies.outputs`: the calls in
the visible tests plus calls the models propose, no expected values needed). Two samples
*agree* when their programs return the same value on every compared input; the chosen
program maximises the number of other samples it agrees with,
``argmax_i sum_{j != i} 1[exec_i(x) == exec_j(x) for all x]``. The sum runs over samples, as
in the paper: a program sampled three times is three samples, so each of them agrees with
its two duplicates, and a program with duplicates gains their agreement. A sample that
raised or timed out on an input returned nothing there and agrees with nobody, not even
its own duplicates. Ties go to the higher mean token log-probability of the program's
samples (none counts lowest), then to more duplicates, then to shorter code.

By default only the candidates with the top visible pass rate take part
(``visible_filter``): the visible tests are the user's own ground truth, whereas agreement
is only evidence, and a popular program that fails a visible test is a shared mistake
rather than a consensus worth following. Without it, MBR-exec runs over every candidate as
in the paper, where the tests' calls are only inputs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from codeens.strategies.base import Decision, Strategy
from codeens.strategies.inputs import InputOptions
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.outputs import (
    Observed,
    Signature,
    complete,
    mean_logprob,
    observe,
    preference,
    top_pass_rate,
)


def agreement(observed: Observed, candidates: list[Candidate]) -> dict[Candidate, int]:
    """Other samples whose programs return what this one returns on every compared input."""
    samples: dict[Signature, int] = {}
    for candidate in candidates:
        signature = observed.signature(candidate)
        if complete(signature):
            samples[signature] = samples.get(signature, 0) + max(1, len(candidate.samples))
    return {
        c: samples[observed.signature(c)] - 1 if complete(observed.signature(c)) else 0
        for c in candidates
    }


def _row(c: Candidate, score: int, observed: Observed, peers: list[Candidate]) -> dict[str, Any]:
    signature = observed.signature(c)
    logprob = mean_logprob(c)
    return {
        "candidate": c.hash[:12],
        "models": c.models,
        "samples": len(c.samples),
        "pass_rate": round(c.result.pass_rate, 6) if c.result else None,
        "agreement": score,
        "agrees_with": [
            p.hash[:12]
            for p in peers
            if p != c and complete(signature) and observed.signature(p) == signature
        ],
        "no_output": signature.count(None),
        "mean_logprob": round(logprob, 6) if logprob is not None else None,
    }


class MbrExec(Strategy):
    """The program whose outputs most other samples share (MBR with execution)."""

    name = "mbr-exec"
    summary = "MBR-exec: the program whose outputs on test and model-proposed inputs most share"

    class Options(InputOptions):
        visible_filter: bool = Field(
            True, description="Only candidates with the top visible pass rate take part."
        )

    options: Options

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        pool, top = top_pass_rate(candidates) if self.options.visible_filter else (candidates, None)
        trace: dict[str, Any] = {
            "pool": {
                "visible_filter": self.options.visible_filter,
                "pass_rate": round(top, 6) if top is not None else None,
                "candidates": len(pool),
                "of": len(candidates),
            }
        }
        if not pool:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        if len(pool) == 1:
            trace["inputs"] = {"status": "not needed: one candidate in the pool"}
            trace["chosen"] = {"candidate": pool[0].hash[:12]}
            trace["why"] = "the only candidate with the top visible pass rate"
            return Decision(pool[0], trace)
        observed = observe(ctx, pool, self.options.inputs, self.options.input_samples)
        trace["inputs"] = {"calls": observed.rows()} | observed.inputs.summary()
        scores = agreement(observed, pool)
        ranked = sorted(pool, key=lambda c: (-scores[c], preference(c)))
        trace["candidates"] = [_row(c, scores[c], observed, ranked) for c in ranked]
        chosen = ranked[0]
        trace["chosen"] = {"candidate": chosen.hash[:12], "agreement": scores[chosen]}
        trace["why"] = self._why(chosen, ranked, scores, observed)
        return Decision(chosen, trace)

    @staticmethod
    def _why(
        chosen: Candidate, ranked: list[Candidate], scores: dict[Candidate, int], seen: Observed
    ) -> str:
        others = sum(max(1, len(c.samples)) for c in ranked) - 1
        why = (
            f"agrees with {scores[chosen]} of {others} other samples on all "
            f"{len(seen.used)} compared inputs"
        )
        if not seen.used:
            why += " (no input to compare on: every program agrees)"
        tied = [c for c in ranked if scores[c] == scores[chosen]]
        if len(tied) > 1:
            why += (
                f"; {len(tied)} candidates tied, broken by mean log-probability, "
                "then duplicates, then shorter code"
            )
        return why
