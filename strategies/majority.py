"""``majority``: majority vote over behaviours, y = the output that most samples return.

Candidates are grouped by their behaviour on the visible test inputs
(:func:`~codeens.strategies.behaviour.behaviour_key`: same verdict, and the same outcome and
message on every test; failure messages carry the compared values, so equal wrong answers
group together). A group's size counts samples, duplicates included. The largest group wins
whatever its pass rate; ties go to the higher pass rate, then to the group whose best member
has more duplicates, then to shorter code. Inside the winning group: most duplicates, then
shorter code.

Programs that do not import (verdict ``error``) or whose run broke (``infra_error``)
returned no output at all, so they do not vote unless nothing else is left. Without visible
tests there is no output to compare, and each distinct program is its own group: the most
often sampled program wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeens.sandbox.results import Verdict
from codeens.strategies.base import Decision, Strategy
from codeens.strategies.behaviour import behaviour_key
from codeens.strategies.interface import Candidate, Context

NO_OUTPUT = (Verdict.ERROR, Verdict.INFRA_ERROR)


def _member_order(candidate: Candidate) -> tuple[int, int, str]:
    return (-len(candidate.samples), len(candidate.code), candidate.hash)


@dataclass(eq=False)
class _Group:
    members: list[Candidate]

    @property
    def size(self) -> int:
        return sum(max(1, len(m.samples)) for m in self.members)

    @property
    def pass_rate(self) -> float:
        result = self.members[0].result
        return result.pass_rate if result else 0.0

    @property
    def best(self) -> Candidate:
        return min(self.members, key=_member_order)

    def order(self) -> tuple[int, float, int, int, str]:
        best = self.best
        return (-self.size, -self.pass_rate, -len(best.samples), len(best.code), best.hash)

    def row(self) -> dict[str, Any]:
        result = self.members[0].result
        return {
            "candidates": [m.hash[:12] for m in sorted(self.members, key=_member_order)],
            "models": sorted({name for m in self.members for name in m.models}),
            "size": self.size,
            "pass_rate": round(self.pass_rate, 6),
            "verdict": str(result.verdict) if result else "not executed",
        }


def behaviour_groups(candidates: list[Candidate]) -> list[_Group]:
    """Candidates grouped by behaviour, the winning group first."""
    groups: dict[tuple[object, ...], _Group] = {}
    for candidate in candidates:
        groups.setdefault(behaviour_key(candidate), _Group([])).members.append(candidate)
    return sorted(groups.values(), key=_Group.order)


class Majority(Strategy):
    """The most common behaviour on the visible tests wins, regardless of pass rate."""

    name = "majority"
    summary = "majority vote: the behaviour on the visible tests most samples share wins"

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        voters = [c for c in candidates if c.result is None or c.result.verdict not in NO_OUTPUT]
        silent = [c for c in candidates if c not in voters]
        trace: dict[str, Any] = {
            "excluded": [
                {"candidate": c.hash[:12], "verdict": str(c.result.verdict)}
                for c in silent
                if c.result is not None
            ],
        }
        if not voters:
            # Nothing produced output; still return the commonest program rather than none.
            voters = silent
            trace["note"] = "no candidate produced output: every candidate votes"
        if ctx.suite is None:
            trace["note"] = "no visible tests: each distinct program is its own group"
        groups = behaviour_groups(voters)
        trace["groups"] = [g.row() for g in groups]
        if not groups:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        winner = groups[0]
        chosen = winner.best
        runner_up = groups[1].size if len(groups) > 1 else 0
        trace["chosen"] = {"candidate": chosen.hash[:12], "group": 0}
        trace["why"] = (
            f"largest behaviour group: {winner.size} of {sum(g.size for g in groups)} samples"
            + (f" (next: {runner_up})" if len(groups) > 1 else "")
            + (
                "; tie broken by pass rate, then duplicates, then shorter code"
                if runner_up == winner.size
                else ""
            )
        )
        return Decision(chosen, trace)
