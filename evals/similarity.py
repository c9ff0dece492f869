"""Similarity of generated code to the canonical solution: CodeBLEU and CodeBERTScore F1.

Both are reference-based and only loosely tied to correctness; reports show them next to
pass rates, never instead of them. Heavy imports happen on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _quiet_codebleu() -> Iterator[None]:
    # codebleu warns through the root logger for every snippet without data flow.
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def codebleu(candidates: list[str], references: list[str]) -> list[float]:
    """Sentence-level CodeBLEU (Python, default equal weights) of each candidate."""
    from codebleu import calc_codebleu

    scores = []
    with _quiet_codebleu():
        for cand, ref in zip(candidates, references, strict=True):
            result = calc_codebleu([ref], [cand], lang="python")
            scores.append(float(result["codebleu"]))
    return scores


def codebertscore_f1(candidates: list[str], references: list[str]) -> list[float]:
    """CodeBERTScore F1 of each candidate against its reference (the offline encoder)."""
    from codeens.strategies.codebertscore import score

    return [s.f1 for s in score(candidates, references)]
