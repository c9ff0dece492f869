"""Span-level fusion (Cool-Fusion / SpecFuse): draft, cross-score, append the best.

Every member drafts a span up to a boundary (a line by default), every member scores
every distinct draft by the mean log-probability of its own tokens for it given the
shared text, and the draft with the best weighted score is appended for all.
Tokenizer-agnostic: members re-encode the chosen text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from codeens.models.fusion import (
    Fused,
    Member,
    Output,
    choose,
    has_room,
    result_of,
    softmax,
    whole_utf8,
)

Boundary = Literal["line", "word", "token"]


@dataclass(frozen=True)
class SpanOptions:
    boundary: Boundary = "line"
    span_tokens: int = 16  # most tokens a draft runs to before it ends anyway


@dataclass(frozen=True)
class _Draft:
    text: bytes
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    eog: bool

    @property
    def key(self) -> tuple[bytes, bool]:
        return self.text, self.eog


def fuse_spans(
    members: Sequence[Member],
    options: SpanOptions,
    output: Output,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> Fused:
    """Span-level fusion: draft, cross-score, append the best span for everyone."""
    primary = members[0]
    voters = [m for m in members if m.weight > 0]
    total = sum(m.weight for m in voters)
    scores: list[float] = []
    fused_steps = 0
    while not output.done:
        if not has_room(members, options.span_tokens + 8):
            break
        drafts = [_draft(m, options, temperature, top_p, rng) for m in voters]
        candidates = list({d.key: d for d in reversed(drafts)}.values())[::-1]
        if len(candidates) > 1:
            fused_steps += 1
        best, best_score = candidates[0], float("-inf")
        for candidate in candidates:
            score = sum(
                m.weight / total * _span_score(m, own, candidate)
                for m, own in zip(voters, drafts, strict=True)
            )
            if score > best_score:
                best, best_score = candidate, score
        scores.append(best_score)
        before = len(primary.out)
        own_drafts = dict(zip(map(id, voters), drafts, strict=True))
        for m in members:
            own = own_drafts.get(id(m))
            if own is not None and own.key == best.key:
                m.out.extend(own.tokens)  # its own tokens: nothing to re-evaluate
            else:
                m.feed(best.text)
                m.flush()
        # The primary's tokens of the span count against max_tokens one by one, as
        # they would in a single model's decode; past the end they are dropped.
        for j, token in enumerate(primary.out[before:]):
            if output.push(primary.vocab.pieces[token]):
                del primary.out[before + j + 1 :]
                break
        if not output.done and best.eog:
            output.push(None)
    mean = float(np.mean(scores)) if scores else None
    fused = result_of(output, members, [], fused_steps)
    return dataclasses.replace(fused, mean_logprob=mean, decisions=len(scores))


def _draft(
    m: Member, options: SpanOptions, temperature: float, top_p: float, rng: np.random.Generator
) -> _Draft:
    tokens: list[int] = []
    logprobs: list[float] = []
    text = b""
    stop = {"line": b"\n", "word": None, "token": None}[options.boundary]
    while True:
        logits = m.decoder.logits_after((*m.tokens, *tokens))
        probs = softmax(np.asarray(logits))
        token = choose(probs, temperature, top_p, rng)
        logprobs.append(float(np.log(probs[token])))
        if token in m.vocab.eog:
            return _Draft(text, tuple(tokens), tuple(logprobs), True)
        tokens.append(token)
        piece = m.vocab.pieces[token]
        text += piece
        if len(tokens) >= m.room - 1:
            break  # the window is full
        if not whole_utf8(text) and len(tokens) < options.span_tokens + 4:
            continue  # never end a span inside a character (a UTF-8 one is 4 bytes at most)
        if options.boundary == "token" or len(tokens) >= options.span_tokens:
            break
        if stop is not None and stop in piece:
            break
        if options.boundary == "word" and piece[-1:].isspace() and text.strip():
            break
    return _Draft(text, tuple(tokens), tuple(logprobs), False)


def _span_score(m: Member, own: _Draft, candidate: _Draft) -> float:
    """Member ``m``'s mean log-probability of ``candidate`` after the shared text."""
    if own.key == candidate.key:
        return float(np.mean(own.logprobs))
    tokens = m.tokenize(candidate.text) if candidate.text else []
    if candidate.eog:
        tokens.append(m.vocab.eos)
    if not tokens:
        return float("-inf")
    base = m.tokens
    logprobs = m.decoder.score((*base, *tokens), len(base))
    return float(np.mean(logprobs))
