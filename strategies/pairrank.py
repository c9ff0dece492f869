"""Ranking by pairwise comparison (LLM-Blender's PairRanker), two ways of aggregating.

The candidates arrive in a prior order (best visible pass rate first). A comparison asks
the comparators in order until one decides; an undecided pair gives no win to either.

* ``full``: every pair is compared once (n(n-1)/2 comparisons); candidates are ranked by
  their number of wins (LLM-Blender's MaxWins), ties kept in the prior order.
* ``bubble``: one bubble-sort pass from the end of the prior order to its front (n - 1
  comparisons); the later of two neighbours moves up when it wins, so the candidate that
  beats everything it meets ends first. Only the first place is the comparators' verdict;
  the rest of the order is the prior order, partly sorted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from codeens.strategies.comparators import COMPARATORS, Preference, Settings
from codeens.strategies.interface import Candidate, Context

Aggregate = Literal["full", "bubble"]


@dataclass(frozen=True)
class Comparison:
    """One pair (a earlier in the prior order), what each comparator consulted said, and
    which one decided (None: none did)."""

    a: Candidate
    b: Candidate
    winner: Candidate | None
    decided_by: str | None
    consulted: tuple[tuple[str, Preference], ...]

    def row(self) -> dict[str, Any]:
        return {
            "pair": [self.a.hash[:12], self.b.hash[:12]],
            "decided_by": self.decided_by,
            "winner": self.winner.hash[:12] if self.winner is not None else None,
            "notes": {name: pref.note for name, pref in self.consulted},
        }


Compare = Callable[[Candidate, Candidate], Comparison]


def chain(ctx: Context, names: Sequence[str], options: Settings) -> Compare:
    """A comparison that applies the named comparators in order until one decides."""
    comparators = [(name, COMPARATORS.get(name)) for name in dict.fromkeys(names)]

    def compare(a: Candidate, b: Candidate) -> Comparison:
        consulted: list[tuple[str, Preference]] = []
        for name, comparator in comparators:
            preference = comparator(ctx, a, b, options)
            consulted.append((name, preference))
            if preference.better is not None:
                winner = a if preference.better == "a" else b
                return Comparison(a, b, winner, name, tuple(consulted))
        return Comparison(a, b, None, None, tuple(consulted))

    return compare


@dataclass(frozen=True)
class Ranking:
    """The candidates best first, the comparisons made, and the wins of each."""

    order: tuple[Candidate, ...]
    comparisons: tuple[Comparison, ...]
    wins: Counter[Candidate]


def _wins(comparisons: Sequence[Comparison]) -> Counter[Candidate]:
    return Counter(c.winner for c in comparisons if c.winner is not None)


def rank_full(prior: Sequence[Candidate], compare: Compare) -> Ranking:
    """Every pair once; most wins first, ties in the prior order."""
    comparisons = [compare(a, b) for i, a in enumerate(prior) for b in prior[i + 1 :]]
    wins = _wins(comparisons)
    position = {c: i for i, c in enumerate(prior)}
    order = sorted(prior, key=lambda c: (-wins[c], position[c]))
    return Ranking(tuple(order), tuple(comparisons), wins)


def rank_bubble(prior: Sequence[Candidate], compare: Compare) -> Ranking:
    """One pass from the back: the later neighbour moves up when it wins."""
    order = list(prior)
    comparisons = []
    for i in range(len(order) - 1, 0, -1):
        comparison = compare(order[i - 1], order[i])
        comparisons.append(comparison)
        if comparison.winner == order[i]:
            order[i - 1], order[i] = order[i], order[i - 1]
    return Ranking(tuple(order), tuple(comparisons), _wins(comparisons))


AGGREGATES: dict[str, Callable[[Sequence[Candidate], Compare], Ranking]] = {
    "full": rank_full,
    "bubble": rank_bubble,
}
