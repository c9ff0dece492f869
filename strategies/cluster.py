"""``cluster``: AlphaCode-style filtering and clustering by behaviour on generated inputs.

1. Filter: only candidates that pass every visible test survive (when none does, those
   with the top visible pass rate; without visible tests, all of them).
2. Cluster: the survivors run on the visible tests' calls and on calls the models propose
   (:mod:`codeens.strategies.outputs`); programs that return the same value on every
   compared input form one cluster. A program that raised or timed out on a compared input
   agrees with nobody: it is a cluster of its own, ranked after every cluster whose
   programs returned on every input.
3. Rank: a cluster weighs ``sum over models of sqrt(samples of that model in it)``. One
   model sampling the same mistake ``k`` times adds only ``sqrt(k)``, while each further
   model that lands in the cluster adds at least 1: agreement across models counts more
   than one model's repetitions (four samples of one model weigh as much as one sample
   from each of two models). With a single model this is the plain cluster size. Ties go
   to more samples, then to the cluster's best program.
4. Answer: the top cluster's best program: higher mean token log-probability of its
   samples (none counts lowest), then more duplicates, then shorter code.

The trace lists the ``top_k`` clusters with their candidates, models, sizes, weight, a
representative program and the inputs on which they return something else than the
chosen cluster, so that ``codeens solve --json`` shows the alternatives.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from codeens.strategies.base import Decision, Strategy
from codeens.strategies.inputs import InputOptions, Inputs
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.outputs import (
    Observed,
    Signature,
    complete,
    observe,
    preference,
    top_pass_rate,
)

MAX_DIFFERENCES = 3
"""Inputs shown per alternative cluster where its outputs differ from the chosen one's."""


@dataclass(frozen=True)
class _Cluster:
    members: tuple[Candidate, ...]
    signature: Signature

    @property
    def per_model(self) -> Counter[str]:
        return Counter(s.model.name for m in self.members for s in m.samples)

    @property
    def samples(self) -> int:
        return sum(max(1, len(m.samples)) for m in self.members)

    @property
    def weight(self) -> float:
        return sum(math.sqrt(n) for n in self.per_model.values())

    @property
    def best(self) -> Candidate:
        return min(self.members, key=preference)

    def order(self) -> tuple[bool, float, int, tuple[float, int, int, str]]:
        return (
            not complete(self.signature),
            -round(self.weight, 9),
            -self.samples,
            preference(self.best),
        )


def clusters_of(observed: Observed, candidates: list[Candidate]) -> list[_Cluster]:
    """Candidates grouped by their outputs on the compared inputs, the best cluster first."""
    groups: dict[object, list[Candidate]] = {}
    for candidate in candidates:
        signature = observed.signature(candidate)
        key: object = signature if complete(signature) else ("alone", candidate.hash)
        groups.setdefault(key, []).append(candidate)
    found = [_Cluster(tuple(m), observed.signature(m[0])) for m in groups.values()]
    return sorted(found, key=_Cluster.order)


def _differences(cluster: _Cluster, top: _Cluster, observed: Observed) -> list[dict[str, Any]]:
    calls = [observed.inputs.calls[i] for i in observed.used]
    return [
        {"call": call, "output": mine, "chosen_output": theirs}
        for call, mine, theirs in zip(calls, cluster.signature, top.signature, strict=True)
        if mine != theirs or mine is None
    ][:MAX_DIFFERENCES]


def _row(rank: int, cluster: _Cluster, top: _Cluster, observed: Observed) -> dict[str, Any]:
    best = cluster.best
    return {
        "rank": rank,
        "candidates": [m.hash[:12] for m in sorted(cluster.members, key=preference)],
        "models": dict(sorted(cluster.per_model.items())),
        "samples": cluster.samples,
        "weight": round(cluster.weight, 6),
        "complete": complete(cluster.signature),
        "pass_rate": round(best.result.pass_rate, 6) if best.result else None,
        "representative": best.hash[:12],
        "code": best.code,
        "differs_from_chosen": _differences(cluster, top, observed) if rank else [],
    }


def _rule(top: float | None) -> str:
    if top is None:
        return "no visible tests: every candidate"
    if top == 1.0:
        return "passes every visible test"
    return "none passes every visible test: the top visible pass rate"


class Cluster(Strategy):
    """Filter on the visible tests, cluster by outputs, answer from the weightiest cluster."""

    name = "cluster"
    summary = "AlphaCode-style: filter on visible tests, cluster by outputs, weigh across models"

    class Options(InputOptions):
        top_k: int = Field(3, ge=1, le=50, description="Clusters shown in the trace.")

    options: Options

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        survivors, top = top_pass_rate(candidates)
        trace: dict[str, Any] = {
            "filter": {
                "pass_rate": round(top, 6) if top is not None else None,
                "survivors": len(survivors),
                "of": len(candidates),
                "rule": _rule(top),
            }
        }
        if not survivors:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        if len(survivors) == 1:
            observed = Observed(Inputs((), ()), {survivors[0]: ()})
            trace["inputs"] = {"status": "not needed: one candidate survives the filter"}
        else:
            observed = observe(ctx, survivors, self.options.inputs, self.options.input_samples)
            trace["inputs"] = {"calls": observed.rows()} | observed.inputs.summary()
        ranked = clusters_of(observed, survivors)
        top_cluster = ranked[0]
        chosen = top_cluster.best
        shown = ranked[: self.options.top_k]
        trace["clusters"] = [_row(i, c, top_cluster, observed) for i, c in enumerate(shown)]
        trace["clusters_total"] = len(ranked)
        trace["chosen"] = {"candidate": chosen.hash[:12], "cluster": 0}
        trace["why"] = self._why(ranked, observed)
        return Decision(chosen, trace)

    @staticmethod
    def _why(ranked: list[_Cluster], observed: Observed) -> str:
        top = ranked[0]
        why = (
            f"weightiest of {len(ranked)} clusters on {len(observed.used)} compared inputs: "
            f"{top.samples} samples from {len(top.per_model)} model(s), weight {top.weight:.3f}"
        )
        if len(ranked) > 1:
            why += f" (next: {ranked[1].weight:.3f})"
        if len(top.members) > 1:
            why += "; its best program by mean log-probability, then duplicates, then length"
        return why
