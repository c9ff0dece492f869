"""Grouping candidates that behave identically on the tests they ran."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from codeens.strategies.interface import Candidate


def behaviour_key(candidate: Candidate) -> tuple[object, ...]:
    """Same verdict and the same outcome and message on every test: same behaviour.

    Failure messages carry the values compared ("6 == 5 is false"), so two candidates that
    return the same wrong answers fall in one group, and two that differ do not.
    """
    result = candidate.result
    if result is None:
        return ("unexecuted", candidate.hash)
    return (
        str(result.verdict),
        tuple((t.name, t.outcome, t.message) for t in result.tests),
    )


def group_sizes(candidates: Iterable[Candidate]) -> dict[tuple[object, ...], int]:
    """Samples per behaviour group; duplicates of one program count as agreement."""
    sizes: dict[tuple[object, ...], int] = defaultdict(int)
    for candidate in candidates:
        sizes[behaviour_key(candidate)] += max(1, len(candidate.samples))
    return dict(sizes)
