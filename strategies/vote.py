"""``vote``: pass-rate voting over every model's samples.

Score each distinct candidate by its pass rate on the visible tests; break ties by the
number of samples (from any model) whose program behaves identically on those tests, then
by how many samples produced this very program, then by shorter code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codeens.strategies.base import Decision, Strategy
from codeens.strategies.behaviour import behaviour_key, group_sizes

if TYPE_CHECKING:
    from codeens.solve import CandidateRecord, SolveContext


def rank_by_pass_rate(candidates: list[CandidateRecord]) -> list[dict[str, Any]]:
    """Every executed candidate with its score components, best first."""
    sizes = group_sizes(candidates)
    rows: list[dict[str, Any]] = []
    for candidate in candidates:
        if candidate.result is None:
            continue
        rows.append(
            {
                "candidate": candidate.hash[:12],
                "models": sorted({s.model.name for s in candidate.samples}),
                "pass_rate": round(candidate.result.pass_rate, 6),
                "group_size": sizes[behaviour_key(candidate)],
                "duplicates": len(candidate.samples),
                "length": len(candidate.code),
                "record": candidate,
            }
        )
    rows.sort(key=_order)
    return rows


def _order(row: dict[str, Any]) -> tuple[float, int, int, int]:
    return (-row["pass_rate"], -row["group_size"], -row["duplicates"], row["length"])


class Vote(Strategy):
    """Pass rate on the visible tests, ties broken by behaviour-group size."""

    name = "vote"
    summary = "pass-rate voting; ties broken by the size of the identical-behaviour group"

    def solve(self, ctx: SolveContext) -> Decision:
        for model in ctx.models:
            ctx.generate(model, ctx.samples)
        candidates = ctx.candidates()
        ctx.execute(candidates)
        ranked = rank_by_pass_rate(candidates)
        trace = {
            "scores": [{k: v for k, v in r.items() if k != "record"} for r in ranked],
        }
        return Decision(ranked[0]["record"] if ranked else None, trace)
