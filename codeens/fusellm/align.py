"""Aligning two tokenisations of one text, and mapping one vocabulary onto another.

Tokens: dynamic time warping over the two token-string sequences, the cost of a pair being
the edit distance between the two strings (FuseLLM's alignment). Every token of each side
is on the path; a target token "matches" a source token when the path pairs them and their
strings are equal, which is where a source's next-token distribution can stand in for the
target's.

Vocabularies: a source token maps to the target token with the same string, else to the
target token at minimum edit distance (ties: the lowest id). Maps are memoised: a corpus
touches a small part of a large vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dtw_path(source: Sequence[str], target: Sequence[str]) -> list[tuple[int, int]]:
    """The minimum-cost monotone path of (source index, target index) pairs."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    n, m = len(source), len(target)
    if n == 0 or m == 0:
        return []
    cost = cdist(list(source), list(target), scorer=Levenshtein.distance, dtype=np.int32)
    total = np.full((n + 1, m + 1), np.iinfo(np.int64).max // 4, dtype=np.int64)
    total[0, 0] = 0
    for i in range(1, n + 1):
        row, above = total[i], total[i - 1]
        step = cost[i - 1]
        # diagonal and vertical moves are vectorised; the horizontal one is a running scan
        best = np.minimum(above[:-1], above[1:])
        for j in range(1, m + 1):
            row[j] = step[j - 1] + min(best[j - 1], row[j - 1])
    path = []
    i, j = n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        moves = (total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
        k = int(np.argmin(moves))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    path.reverse()
    return path


def matches(source: Sequence[str], target: Sequence[str]) -> dict[int, int]:
    """target index -> source index, for the pairs on the path whose strings are equal."""
    out: dict[int, int] = {}
    for i, j in dtw_path(source, target):
        if j not in out and source[i] == target[j]:
            out[j] = i
    return out


class VocabMap:
    """Source token ids to target token ids by string: exact, else nearest by edit distance."""

    def __init__(self, source: Sequence[str], target: Sequence[str]) -> None:
        self.source = source
        self.target = list(target)
        self.exact: dict[str, int] = {}
        for index, text in enumerate(self.target):
            self.exact.setdefault(text, index)
        self._memo: dict[int, int] = {}
        self.nearest_used = 0

    def __call__(self, source_id: int) -> int:
        found = self._memo.get(source_id)
        if found is None:
            found = self._map(self.source[source_id])
            self._memo[source_id] = found
        return found

    def _map(self, text: str) -> int:
        exact = self.exact.get(text)
        if exact is not None:
            return exact
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import extractOne

        self.nearest_used += 1
        best = extractOne(text, self.target, scorer=Levenshtein.distance)
        return int(best[2]) if best is not None else 0
