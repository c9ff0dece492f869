"""``rank-fuse``: rank candidates pairwise, then fuse the best few (LLM-Blender).

1. Every model samples as usual and every candidate runs on the visible tests.
2. At most ``max_candidates`` of them, best visible pass rate first (then behaviour-group
   size, duplicates, shorter code, as ``vote`` orders them), are ranked by pairwise
   comparison (:mod:`codeens.strategies.pairrank`): the ``comparators``
   (:mod:`codeens.strategies.comparators`, a registry open to plugins) are applied in order
   until one decides each pair, and the pairs are aggregated by wins over all pairs
   (``full``) or by one bubble pass (``bubble``). The cap bounds the judge's calls.
3. The top ``fuse_top_k`` go to the ``fuser`` model, which writes one program from them
   (:mod:`codeens.strategies.fusion`, logged with origin ``fused``). It replaces the ranked
   winner only when it passes at least as many visible tests and, counted separately, at
   least as many model-written tests (not their sum). ``fuse = false`` skips this step.

The trace lists every comparison (the pair, what each consulted comparator said, the one
that decided, the winner), the wins per candidate, the ranking, the judge's spending, and
the fused program with its counts against the winner and why it was or was not taken.

The fuser defaults to the rule ``moa`` uses for its aggregator: the most expensive selected
model by token price, then by price per second, then the last one listed; the price stands
for strength.
"""

from __future__ import annotations

from typing import Any

from codeens.strategies.base import Decision, Strategy
from codeens.strategies.fusion import fuse
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.moa import named_or_strongest
from codeens.strategies.pairrank import AGGREGATES, Ranking, chain
from codeens.strategies.rank_fuse_options import RankFuseOptions
from codeens.strategies.vote import rank_by_pass_rate


class RankFuse(Strategy):
    """Pairwise ranking of the candidates, then a fused program when it is as good."""

    name = "rank-fuse"
    summary = "LLM-Blender: pairwise ranking (execution, judge, logprob), then fuse the top k"
    Options = RankFuseOptions
    options: RankFuseOptions

    def solve(self, ctx: Context) -> Decision:
        options = self.options
        fuser = (
            named_or_strongest(ctx, options.fuser, "[strategies.rank-fuse] fuser")
            if options.fuse
            else None
        )
        prior = [
            r["record"]
            for r in rank_by_pass_rate(ctx.sample_all(), include_unexecuted=ctx.suite is None)
        ]
        considered = prior[: options.max_candidates]
        compare = chain(ctx, options.comparators, options)
        ranking = AGGREGATES[options.aggregate](considered, compare)
        trace: dict[str, Any] = {
            "aggregate": options.aggregate,
            "comparators": list(dict.fromkeys(options.comparators)),
            "considered": [c.hash[:12] for c in considered],
            "left_out": len(prior) - len(considered),
        } | _ranking_trace(ranking)
        if not ranking.order:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        winner = ranking.order[0]
        ranked_why = _why(ranking, options.aggregate)
        if fuser is None:
            trace["fusion"] = {"status": "skipped: disabled (fuse = false)"}
            trace["chosen"] = winner.hash[:12]
            trace["why"] = ranked_why
            return Decision(winner, trace)
        top = list(ranking.order[: options.fuse_top_k])
        fusion = fuse(ctx, fuser, top, winner, options)
        trace["fusion"] = fusion.trace
        trace["chosen"] = fusion.chosen.hash[:12]
        trace["why"] = f"{ranked_why}; fusion: {fusion.trace['status']} ({fusion.trace['why']})"
        return Decision(fusion.chosen, trace)


def _ranking_trace(ranking: Ranking) -> dict[str, Any]:
    spent: dict[str, dict[str, float]] = {}
    for comparison in ranking.comparisons:
        for name, pref in comparison.consulted:
            if pref.generations:
                total = spent.setdefault(name, {"generations": 0, "tokens": 0, "cost": 0.0})
                total["generations"] += pref.generations
                total["tokens"] += pref.tokens
                total["cost"] += pref.cost
    return {
        "comparisons": [c.row() for c in ranking.comparisons],
        "wins": {c.hash[:12]: ranking.wins[c] for c in ranking.order},
        "ranking": [_row(c) for c in ranking.order],
        "winner": ranking.order[0].hash[:12] if ranking.order else None,
        "spent": spent,
    }


def _row(candidate: Candidate) -> dict[str, Any]:
    result = candidate.result
    return {
        "candidate": candidate.hash[:12],
        "models": candidate.models,
        "visible_passed": result.tests_passed if result is not None else None,
        "visible_total": result.tests_total if result is not None else None,
    }


def _why(ranking: Ranking, aggregate: str) -> str:
    winner = ranking.order[0]
    if not ranking.comparisons:
        return f"{winner.hash[:12]} is the only candidate considered: nothing to compare"
    deciders: dict[str, int] = {}
    for comparison in ranking.comparisons:
        key = comparison.decided_by or "undecided"
        deciders[key] = deciders.get(key, 0) + 1
    by = ", ".join(f"{name} {count}" for name, count in deciders.items())
    how = "most wins over all pairs" if aggregate == "full" else "one bubble pass"
    return (
        f"{winner.hash[:12]} ranked first by {how} ({ranking.wins[winner]} win(s); "
        f"{len(ranking.comparisons)} comparisons decided by: {by})"
    )
