"""``lineage-vote``: majority vote over behaviours where a family votes once.

Models that share ancestry make correlated mistakes, so their agreement is weak evidence:
three quantisations of one model, a merge and its sources, or one model asked three times
are one voice, not three. Candidates are grouped by behaviour on the visible tests exactly
as in ``majority`` (:func:`~codeens.strategies.majority.behaviour_groups`); a group's weight
is the number of distinct lineage roots (:mod:`codeens.strategies.lineage`) among the
models behind its samples. A merge of A and B counts {A, B}, so a group backed by that
merge and by A has the roots {A, B}: weight 2, not 3.

The heaviest group wins. Ties go to the higher visible pass rate (as in ``majority``), then
to more samples, then to the group whose best member has more duplicates, then to shorter
code. Samples come after the pass rate on purpose: with equal lineages, extra samples of
one family are the correlated votes this strategy discounts. Programs that returned no
output (did not import, broken run) vote only when nothing else is left, as in ``majority``.
"""

from __future__ import annotations

from typing import Any

from codeens.strategies.base import Decision, Strategy
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.lineage import Lineages
from codeens.strategies.majority import NO_OUTPUT, behaviour_groups


def _roots(members: list[Candidate], lineages: Lineages) -> frozenset[str]:
    return frozenset(
        root for m in members for s in m.samples for root in lineages.of(s.model)
    ) or frozenset(f"candidate {m.hash[:12]}" for m in members)


class LineageVote(Strategy):
    """The behaviour backed by the most distinct model families wins."""

    name = "lineage-vote"
    summary = "majority vote where models sharing ancestry (lineage) count as one voter"

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        lineages = Lineages(ctx.models, ctx.history)
        voters = [c for c in candidates if c.result is None or c.result.verdict not in NO_OUTPUT]
        trace: dict[str, Any] = {
            "lineages": {name: sorted(roots) for name, roots in lineages.roots.items()},
            "excluded": [
                {"candidate": c.hash[:12], "verdict": str(c.result.verdict)}
                for c in candidates
                if c not in voters and c.result is not None
            ],
        }
        if not voters:
            voters = candidates
            trace["note"] = "no candidate produced output: every candidate votes"
        groups = behaviour_groups(voters)
        weighted = [(g, _roots(g.members, lineages)) for g in groups]
        # Among equal lineages, pass rate before samples; order() ends in the samples,
        # duplicates, length and hash tie-breaks of majority.
        weighted.sort(key=lambda gr: (-len(gr[1]), -gr[0].pass_rate, gr[0].order()))
        trace["groups"] = [g.row() | {"lineages": sorted(r), "weight": len(r)} for g, r in weighted]
        if not weighted:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        (winner, roots), rest = weighted[0], weighted[1:]
        chosen = winner.best
        trace["chosen"] = {"candidate": chosen.hash[:12], "group": 0}
        runner_up = len(rest[0][1]) if rest else 0
        trace["why"] = (
            f"behaviour backed by the most distinct lineages: {len(roots)} "
            f"({', '.join(sorted(roots))}), {winner.size} sample(s)"
            + (f"; next: {runner_up} lineage(s)" if rest else "")
            + ("; tie broken by pass rate, then samples" if runner_up == len(roots) else "")
        )
        return Decision(chosen, trace)
