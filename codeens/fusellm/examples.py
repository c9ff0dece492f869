"""Training examples: target tokens with a fused next-token distribution per position.

For each target token, the sources whose aligned token has the same string (see
:mod:`codeens.fusellm.align`) offer their top-k distribution for that position, mapped into
the target's vocabulary and renormalised over the kept entries. Fusion then follows
FuseLLM, per text:

- ``minCE``: the distribution of the source with the lowest cross-entropy on this text
  (among the sources that match the position);
- ``avgCE``: the sources that match, weighted by the inverse of their cross-entropy.

Where no source matches, the fused distribution is the gold token itself, so the fusion
term equals the language-model term there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codeens.fusellm.align import VocabMap, matches
from codeens.fusellm.sources import SourceTable, Tokenised


@dataclass(frozen=True)
class Example:
    """One text: the ids fed to the target and, per position, the fused distribution
    (``fused_ids``/``fused_probs``, rows padded with probability 0) of the token there."""

    ids: tuple[int, ...]
    first_label: int  # positions before it are not predicted (BOS)
    fused_ids: np.ndarray  # (len(ids), K) int64
    fused_probs: np.ndarray  # (len(ids), K) float32
    matched: tuple[int, ...]  # per source: positions where its aligned token matched


def cut_texts(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut to at most ``max_tokens`` target tokens (special ones included), at a
    token boundary, so that every model is scored on the same characters."""
    # the special tokens the tokenizer adds (a BOS, an EOS) are the same for every text
    specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
    keep = max(1, max_tokens - specials)
    out = []
    for text in texts:
        own = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(own["input_ids"]) > keep:
            text = text[: own["offset_mapping"][keep - 1][1]]
        out.append(text)
    return out


def build(
    tokenised: Sequence[Tokenised],
    target_vocab: Sequence[str],
    tables: Sequence[SourceTable],
    maps: Sequence[VocabMap],
    fusion: str,
) -> list[Example]:
    return [
        example(index, tok, target_vocab, tables, maps, fusion)
        for index, tok in enumerate(tokenised)
    ]


def example(
    index: int,
    tok: Tokenised,
    target_vocab: Sequence[str],
    tables: Sequence[SourceTable],
    maps: Sequence[VocabMap],
    fusion: str,
) -> Example:
    text_ids = tok.text_ids
    strings = [target_vocab[t] for t in text_ids]
    aligned = [matches(table.strings(index), strings) for table in tables]
    ce = [float(table.ce[index]) for table in tables]
    width = max(1, sum(t.topk_ids[index].shape[1] for t in tables))
    rows = len(tok.ids)
    fused_ids = np.zeros((rows, width), dtype=np.int64)
    fused_probs = np.zeros((rows, width), dtype=np.float32)
    matched = [0] * len(tables)
    first_label = max(1, tok.leading)
    for position in range(first_label, rows):
        j = position - tok.leading
        offers = []
        for s, table in enumerate(tables):
            i = aligned[s].get(j)
            if i is not None and table.topk_ids[index][i, 0] >= 0 and np.isfinite(ce[s]):
                offers.append(s)
        for s in offers:
            matched[s] += 1
        weights = _weights(offers, ce, fusion)
        if not weights:
            fused_ids[position, 0] = tok.ids[position]
            fused_probs[position, 0] = 1.0
            continue
        rows_at = {s: aligned[s][j] for s in weights}
        dist = _mix(weights, index, rows_at, tables, maps)
        for column, (target_id, prob) in enumerate(dist.items()):
            fused_ids[position, column] = int(target_id)
            fused_probs[position, column] = prob
    return Example(tuple(tok.ids), first_label, fused_ids, fused_probs, tuple(matched))


def _weights(offers: list[int], ce: list[float], fusion: str) -> dict[int, float]:
    """Source index -> weight at one position (empty: no source offers a distribution)."""
    if not offers:
        return {}
    if fusion == "minCE":
        return {min(offers, key=lambda s: ce[s]): 1.0}
    inverse = {s: 1.0 / max(ce[s], 1e-6) for s in offers}
    total = sum(inverse.values())
    return {s: w / total for s, w in inverse.items()}


def _mix(
    weights: dict[int, float],
    index: int,
    rows: dict[int, int],
    tables: Sequence[SourceTable],
    maps: Sequence[VocabMap],
) -> dict[int, float]:
    """Target id -> probability: the weighted sources' renormalised top-k, mapped."""
    dist: dict[int, float] = {}
    for s, weight in weights.items():
        i = rows[s]
        ids = tables[s].topk_ids[index][i]
        probs = np.exp(tables[s].topk_logprobs[index][i].astype(np.float64))
        keep = ids >= 0
        probs = probs[keep] / probs[keep].sum()
        for source_id, prob in zip(ids[keep], probs, strict=True):
            target_id = maps[s](int(source_id))
            dist[target_id] = dist.get(target_id, 0.0) + weight * float(prob)
    return dist
