"""Decoding several llama.cpp models as one: token-level and span-level fusion.

Each :class:`Member` holds a model's decoder, its prompt tokens and the tokens it has been
fed since; the fused text is the one thing all members agree on, and each member holds it
in its own tokenization.

* Token level (:func:`fuse_tokens`): every step each member's next-token distribution
  (softmax of its logits at ``temperature``) is weighted and summed. Members that share a
  vocabulary are summed id by id; otherwise each distribution is projected onto the union
  of the members' token strings (:class:`~codeens.models.vocab.UnionVocabulary`, GaC),
  or only the union of each member's ``top_k`` tokens is scored (UniTE), each member
  giving a candidate string the probability of its one token for it (0 when it has none).
  The chosen string is fed to every member as its own token for it, or as its own
  tokenization of it (several ids: "re-tokenised"). A member whose tokens cannot yet
  express the text (it ends inside a UTF-8 character) sits out until they can.
  With a ``threshold`` the first member decides alone whenever its top probability
  reaches it; the others are fed lazily (several tokens in one evaluation) when needed.
* Span level (:func:`fuse_spans`, Cool-Fusion / SpecFuse): every member drafts a span up
  to a boundary (a line by default), every member scores every distinct draft by the mean
  log-probability of its own tokens for it given the shared text, and the draft with the
  best weighted score is appended for all. Tokenizer-agnostic: members re-encode the text.

Scoring a draft and dropping a rejected one roll the member's KV cache back
(``BatchDecoder.logits_after`` and ``score`` evaluate only past the common prefix and
remove the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from codeens.models.llamacpp_sequence import multibyte_wait
from codeens.models.vocab import UnionVocabulary, Vocabulary

Boundary = Literal["line", "word", "token"]


@dataclass
class Member:
    """One model of a fused decode and what it has been fed."""

    name: str
    decoder: Any  # a BatchDecoder: logits_after(tokens), score(tokens, start)
    vocab: Vocabulary
    tokenize: Callable[[bytes], list[int]]  # text -> this model's ids (no BOS, no specials)
    prompt: tuple[int, ...]
    weight: float = 1.0
    out: list[int] = field(default_factory=list)
    pending: bytes = b""  # chosen text not fed yet: it ends inside a UTF-8 character

    @property
    def tokens(self) -> tuple[int, ...]:
        return (*self.prompt, *self.out)

    @property
    def synced(self) -> bool:
        return not self.pending

    @property
    def room(self) -> int:
        """Tokens of this member's context window still free."""
        return int(self.decoder.settings.n_ctx) - len(self.prompt) - len(self.out)

    def logits(self) -> np.ndarray:
        return np.asarray(self.decoder.logits_after(self.tokens))

    def feed(self, text: bytes, token: int | None = None) -> None:
        """Append ``text``: as ``token`` when given and nothing is pending, else as this
        model's tokens for it once the pending text is whole UTF-8."""
        if token is not None and not self.pending:
            self.out.append(token)
            return
        self.pending += text
        try:
            self.pending.decode("utf-8")
        except UnicodeDecodeError:
            return
        self.out.extend(self.tokenize(self.pending))
        self.pending = b""

    def flush(self) -> None:
        """Feed pending bytes even though they are not whole UTF-8 (replacement chars)."""
        if self.pending:
            text = self.pending.decode("utf-8", errors="replace").encode()
            self.out.extend(self.tokenize(text))
            self.pending = b""


class Output:
    """The fused text and when it ends: end of generation, a stop string, max_tokens."""

    def __init__(self, stop: Sequence[str], max_tokens: int) -> None:
        self.text = b""
        self.steps = 0
        self.finish_reason = ""
        self._stop = tuple(s.encode("utf-8") for s in stop if s)
        self.max_tokens = max_tokens
        self._waiting = 0

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def push(self, piece: bytes | None, tokens: int = 1) -> bool:
        """Append ``piece`` (None: end of generation), worth ``tokens``; True when done."""
        if piece is None:
            self.finish_reason = "stop"
            return True
        self.text += piece
        self.steps += tokens
        # Inside a UTF-8 character the checks wait, a token at a time, as a single
        # llama.cpp model's do (llamacpp_sequence), so one member alone ends alike.
        self._waiting = multibyte_wait(self.text, self._waiting)
        if self._waiting > 0:
            self._waiting -= 1
            return False
        found = [s for s in self._stop if s in self.text]
        if found:
            self.text = self.text[: self.text.index(found[0])]
            self.finish_reason = "stop"
        elif self.steps >= self.max_tokens:
            self.finish_reason = "length"
        return self.done


@dataclass(frozen=True)
class Fused:
    """What a fused decode produced."""

    text: str
    steps: int
    finish_reason: str
    mean_logprob: float | None
    decisions: int  # tokens (spans) chosen, the end of generation included
    fused_steps: int  # of those, where more than one member decided
    members_out: tuple[tuple[int, ...], ...]  # each member's tokens after its prompt


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max()
    e = np.exp(z)
    return e / e.sum()  # type: ignore[no-any-return]


def sampling_distribution(probs: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """What a draw at ``temperature`` and ``top_p`` picks from: ``probs`` sharpened and cut
    to its nucleus (one-hot on the argmax at temperature 0)."""
    if temperature == 0.0:
        out = np.zeros_like(probs)
        out[int(np.argmax(probs))] = 1.0
        return out
    with np.errstate(divide="ignore"):
        p = softmax(np.log(probs) / temperature)  # entries of probability 0 stay 0
    # Only tokens above 1e-12 are sorted (all of them hold at most 1.5e-7 of the mass in a
    # 151k vocabulary): a sort of the whole vocabulary per draw would cost more than
    # the models' own steps.
    candidates = np.flatnonzero(p > 1e-12)
    order = candidates[np.argsort(-p[candidates], kind="stable")]
    cut = int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1
    out = np.zeros_like(p)
    out[order[:cut]] = p[order[:cut]]
    return out / out.sum()  # type: ignore[no-any-return]


def choose(probs: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Greedy at temperature 0; else a draw from ``probs`` sharpened by ``temperature``
    and cut to its top-p nucleus."""
    if temperature == 0.0:
        return int(np.argmax(probs))
    return _draw(sampling_distribution(probs, temperature, top_p), rng)


def _draw(dist: np.ndarray, rng: np.random.Generator) -> int:
    support = np.flatnonzero(dist)
    return int(support[rng.choice(len(support), p=dist[support] / dist[support].sum())])


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
        if not _has_room(members, 4):
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
    return _result(output, members, logprobs, fused_steps)


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
    while not output.done and _has_room(members, length + 4):
        draft: list[int] = []
        rows: list[np.ndarray] = []
        for _ in range(length):
            logits = primary.decoder.logits_after((*primary.tokens, *draft))
            probs = softmax(np.asarray(logits), options.temperature)
            rows.append(probs)
            q = sampling_distribution(probs, temperature, top_p)
            draft.append(int(np.argmax(q)) if temperature == 0.0 else _draw(q, rng))
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
    return _result(output, members, logprobs, fused_steps)


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
    return int(np.argmax(residual)) if temperature == 0.0 else _draw(residual, rng)


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
        if not _has_room(members, options.span_tokens + 8):
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
    fused = _result(output, members, [], fused_steps)
    return Fused(
        fused.text,
        fused.steps,
        fused.finish_reason,
        mean,
        len(scores),
        fused_steps,
        fused.members_out,
    )


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
        if not _whole(text) and len(tokens) < options.span_tokens + 4:
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


def _has_room(members: Sequence[Member], needed: int) -> bool:
    """Whether every member's window has ``needed`` tokens free (else the text ends)."""
    return all(m.room >= needed for m in members)


def _whole(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _result(
    output: Output, members: Sequence[Member], logprobs: list[float], fused_steps: int
) -> Fused:
    finite = [x for x in logprobs if np.isfinite(x)]
    return Fused(
        text=output.text.decode("utf-8", errors="ignore"),
        steps=output.steps,
        finish_reason=output.finish_reason or "length",
        mean_logprob=float(np.mean(finite)) if finite else None,
        decisions=len(logprobs),
        fused_steps=fused_steps,
        members_out=tuple(tuple(m.out) for m in members),
    )
