"""Pairwise comparators for ``rank-fuse``, and their registry.

A comparator looks at two candidates ``a`` and ``b`` and says which is better, or that it
cannot tell. ``rank-fuse`` applies its ``comparators`` in order until one decides. The
built-ins are registered in pyproject.toml under the entry-point group
``codeens.comparators``, exactly as a plugin's would be:

* ``execution``: more visible tests passed wins; equal counts (or no visible tests) do not
  decide;
* ``judge``: every chat model is asked which program is correct, in both orders
  (:mod:`codeens.strategies.pair_judge`); more votes wins, equal votes do not decide;
* ``logprob``: the higher mean token log-probability over the candidate's samples wins,
  where the backends report one for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from codeens.registry import Registry
from codeens.strategies import scorers
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.pair_judge import judge_pair


class Settings(Protocol):
    """What the built-in comparators read of ``[strategies.rank-fuse]``; every comparator,
    a plugin's too, is handed the whole validated options object."""

    @property
    def judge_samples(self) -> int: ...


@dataclass(frozen=True)
class Preference:
    """One comparator's answer: the better of (a, b), or None; a note saying on what
    grounds; and what the comparison spent on model calls."""

    better: Literal["a", "b"] | None
    note: str = ""
    generations: int = 0
    tokens: int = 0
    cost: float = 0.0


Comparator = Callable[[Context, Candidate, Candidate, Settings], Preference]
"""A pairwise comparator: registered under the entry-point group ``codeens.comparators``."""

COMPARATORS: Registry[Comparator] = Registry("codeens.comparators", "comparator")


def _larger(a: float, b: float) -> Literal["a", "b"] | None:
    if a == b:
        return None
    return "a" if a > b else "b"


def compare_execution(ctx: Context, a: Candidate, b: Candidate, options: Settings) -> Preference:
    """More visible tests passed wins."""
    if a.result is None and b.result is None:
        return Preference(None, "no visible tests")
    passed_a = a.result.tests_passed if a.result is not None else 0
    passed_b = b.result.tests_passed if b.result is not None else 0
    return Preference(_larger(passed_a, passed_b), f"{passed_a} vs {passed_b} visible tests passed")


def compare_judge(ctx: Context, a: Candidate, b: Candidate, options: Settings) -> Preference:
    """The program more judge answers call correct, asked in both orders."""
    votes = judge_pair(ctx, a, b, options.judge_samples)
    if not votes.models:
        why = "; ".join(votes.errors) or "no chat model to ask"
        return Preference(None, f"no judgement: {why}", votes.generations, votes.tokens, votes.cost)
    note = f"votes {votes.a} vs {votes.b} from {', '.join(votes.models)} in both orders"
    if votes.unreadable:
        note += f"; {votes.unreadable} answer(s) named neither A nor B"
    if votes.errors:
        note += f"; failed: {'; '.join(votes.errors)}"
    better = _larger(votes.a, votes.b)
    return Preference(better, note, votes.generations, votes.tokens, votes.cost)


def compare_logprob(ctx: Context, a: Candidate, b: Candidate, options: Settings) -> Preference:
    """The higher mean token log-probability over the candidate's samples."""
    mean_a, mean_b = scorers.mean_logprob([a, b])
    if mean_a is None or mean_b is None:
        return Preference(None, "no log-probability for both")
    return Preference(_larger(mean_a, mean_b), f"mean log-prob {mean_a:.4f} vs {mean_b:.4f}")
