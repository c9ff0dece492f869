"""Token-level fusion: the members' next-token distributions, weighted and summed.

Every step each member's next-token distribution (softmax of its logits at
``temperature``) is weighted and summed. Members that share a vocabulary are summed id by
id; otherwise each distribution is projected onto the union of the members' token strings
(:class:`~codeens.models.vocab.UnionVocabulary`, GaC), or only the union of each member's
``top_k`` tokens is scored (UniTE), each member giving a candidate string the probability
of its one token for it (0 when it has none). The chosen string is fed to every member as
its own token for it, or as its own tokenization of it (several ids: "re-tokenised"). A
member whose tokens cannot yet express the text (it ends inside a UTF-8 character) sits
out until they can. With a ``threshold`` the first member decides alone whenever its top
probability reaches it; the others are fed lazily (several tokens in one evaluation).
Over one vocabulary the steps can be drafted (:func:`_speculative`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codeens.models.fusion import (
    Fused,
    Member,
    Output,
    choose,
    draw,
    has_room,
    result_of,
    sampling_distribution,
    softmax,
)
from codeens.models.vocab import UnionVocabulary


@dataclass(frozen=True)
class TokenOptions:
    temperature: float = 1.0  # of each member's softmax before fusing
    threshold: float = 0.0  # fuse only while the first member's top probability is below
    top_k: int = 0  # 0: the full union; k: only the union of each member's top k
    speculative: bool = True  # one vocabulary: draft with the first, verify in batch


def fuse_tokens(
    members: Sequence[Member],
    union: UnionVocabulary | None,
    options: TokenOptions,
    output: Output,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> Fused:
    """Token-level fusion; ``union`` None means the members share one vocabulary."""
    if union is None and options.speculative:
        return _speculative(members, options, output, temperature, top_p, rng)
    primary = members[0]
    logprobs: list[float] = []
    fused_steps = 0
    voting = [i for i, m in enumerate(members) if m.weight > 0]
    while not output.done:
        if not has_room(members, 4):
            break
        if not any(members[i].synced for i in voting):
            for m in members:
                m.flush()
        dists: dict[int, np.ndarray] = {}
        if primary.synced and (primary.weight > 0 or options.threshold > 0):
            dists[0] = softmax(primary.logits(), options.temperature)
        alone = 0 in dists and options.threshold > 0 and dists[0].max() >= options.threshold
        if not alone:
            for i in voting:
                if i not in dists and members[i].synced:
                    dists[i] = softmax(members[i].logits(), options.temperature)
            if len(dists) > 1:
                fused_steps += 1
        total = sum(members[i].weight for i in dists)
        weights = {i: members[i].weight / total if total else 1.0 for i in dists}
        if union is None:
            fused = sum(weights[i] * d for i, d in dists.items())
            assert isinstance(fused, np.ndarray)
            token = choose(fused, temperature, top_p, rng)
            logprobs.append(float(np.log(fused[token])))
            piece = None if token in primary.vocab.eog else primary.vocab.pieces[token]
            if output.push(piece):
                break
            for m in members:
                m.feed(primary.vocab.pieces[token], token)
            continue
        uid, prob = _union_choice(union, dists, weights, options.top_k, temperature, top_p, rng)
        logprobs.append(float(np.log(prob)) if prob > 0 else float("-inf"))
        text = union.text(uid)
        if output.push(text):
            break
        assert text is not None
        for i, m in enumerate(members):
            single = int(union.single[i][uid])
            m.feed(text, single if single >= 0 else None)
    return result_of(output, members, logprobs, fused_steps)


_DRAFT = (2, 16)  # draft lengths: the first member drafts 4 at first, then 2 to 16


def _speculative(
    members: Sequence[Member],
    options: TokenOptions,
    output: Output,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> Fused:
    """Fusion over one vocabulary with drafts: step by step's tokens, or its distribution.

    The first member drafts a few tokens on its own (drawn from its own sampling
    distribution q); every other member then evaluates the draft in one batch (a batch of
    k tokens costs far less than k steps), which gives its distribution at every drafted
    position, hence the fused one, f. Walking the draft, a drafted token x is kept with
    probability min(1, f(x) / q(x)) (speculative sampling: no draw when the ratio is 1);
    the first one refused is replaced by a draw from max(0, f - q), renormalised, and the
    rest of the draft is dropped (the members' caches roll back past it). The kept and
    replaced tokens are distributed exactly as step-by-step draws from f; at temperature 0
    both are one-hot, so the tokens are step by step's. The draft grows while whole
    drafts are kept and shrinks when they are cut early.
    """
    primary = members[0]
    others = [m for m in members[1:] if m.weight > 0]
    voting = ([primary] if primary.weight > 0 else []) + others
    total = sum(m.weight for m in voting)
    logprobs: list[float] = []
    fused_steps = 0
    length = 4
    while not output.done and has_room(members, length + 4):
        draft: list[int] = []
        rows: list[np.ndarray] = []
        for _ in range(length):
            logits = primary.decoder.logits_after((*primary.tokens, *draft))
            probs = softmax(np.asarray(logits), options.temperature)
            rows.append(probs)
            q = sampling_distribution(probs, temperature, top_p)
            draft.append(int(np.argmax(q)) if temperature == 0.0 else draw(q, rng))
            if draft[-1] in primary.vocab.eog:
                break
        needed = [
            j for j, p in enumerate(rows) if not options.threshold or p.max() < options.threshold
        ]
        verified: list[list[np.ndarray]] = []
        if needed and others:
            upto = needed[-1]  # rows past the last position that needs them are not read
            for m in others:
                base = m.tokens
                verified.append(
                    [
                        softmax(np.asarray(z), options.temperature)
                        for z in m.decoder.logits_rows((*base, *draft[:upto]), len(base) - 1)
                    ]
                )
        kept = 0
        for j, probs in enumerate(rows):
            fused = probs
            if j in needed and others:
                mixed = primary.weight * probs + sum(
                    m.weight * rows_of[j] for m, rows_of in zip(others, verified, strict=True)
                )
                fused = np.asarray(mixed) / total
                fused_steps += len(voting) > 1
            token = _verify(draft[j], probs, fused, temperature, top_p, rng)
            logprobs.append(float(np.log(fused[token])))
            eog = token in primary.vocab.eog
            if output.push(None if eog else primary.vocab.pieces[token]):
                break
            for m in members:
                m.out.append(token)
            if token != draft[j]:
                break
            kept += 1
        length = min(_DRAFT[1], length * 2) if kept == len(draft) else max(_DRAFT[0], kept + 1)
    return result_of(output, members, logprobs, fused_steps)


def _verify(
    drafted: int,
    probs: np.ndarray,
    fused: np.ndarray,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> int:
    """The token to emit at a drafted position: the drafted one, kept with probability
    min(1, f/q), else a draw from the residual max(0, f - q)."""
    if fused is probs:
        return drafted  # the first member decided alone here: f is q
    q = sampling_distribution(probs, temperature, top_p)
    f = sampling_distribution(fused, temperature, top_p)
    ratio = f[drafted] / q[drafted]
    if ratio >= 1.0 or (ratio > 0.0 and rng.random() < ratio):
        return drafted
    residual = np.maximum(f - q, 0.0)
    if residual.sum() <= 0.0:
        residual = f
    return int(np.argmax(residual)) if temperature == 0.0 else draw(residual, rng)


def _union_choice(
    union: UnionVocabulary,
    dists: dict[int, np.ndarray],
    weights: dict[int, float],
    top_k: int,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> tuple[int, float]:
    if top_k <= 0:
        fused = sum(weights[i] * union.project(i, d) for i, d in dists.items())
        assert isinstance(fused, np.ndarray)
        uid = choose(fused, temperature, top_p, rng)
        return uid, float(fused[uid])
    candidates: set[int] = set()
    for i, d in dists.items():
        top = np.argpartition(d, -top_k)[-top_k:] if top_k < d.size else np.arange(d.size)
        uids = union.of_token[i][top]
        candidates.update(uids[uids >= 0].tolist())
    uids = np.asarray(sorted(candidates), dtype=np.int64)
    scores = np.zeros(len(uids))
    for i, d in dists.items():
        tokens = union.single[i][uids]
        present = tokens >= 0
        scores[present] += weights[i] * d[tokens[present]]
    normalised = scores / scores.sum()
    pick = choose(normalised, temperature, top_p, rng)
    return int(uids[pick]), float(normalised[pick])
