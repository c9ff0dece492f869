"""Decoding several llama.cpp models as one: the shared parts.

Each :class:`Member` holds a model's decoder, its prompt tokens and the tokens it has been
fed since; the fused text (:class:`Output`) is the one thing all members agree on, and
each member holds it in its own tokenization. The two ways of choosing what comes next
are :mod:`codeens.models.fusion_tokens` (token by token) and
:mod:`codeens.models.fusion_spans` (span by span); both end in a :class:`Fused`.

Members roll back for free: ``BatchDecoder.logits_after`` and ``score`` evaluate only
past the common prefix of what a member's cache holds and what is asked, and remove the
rest (``llama_memory_seq_rm``), so dropping a rejected draft costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codeens.models.llamacpp_sequence import multibyte_wait
from codeens.models.vocab import Vocabulary


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
        if not whole_utf8(self.pending):
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

    def push(self, piece: bytes | None) -> bool:
        """Append one token's ``piece`` (None: end of generation); True when done."""
        if piece is None:
            self.finish_reason = "stop"
            return True
        self.text += piece
        self.steps += 1
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
    return draw(sampling_distribution(probs, temperature, top_p), rng)


def draw(dist: np.ndarray, rng: np.random.Generator) -> int:
    support = np.flatnonzero(dist)
    return int(support[rng.choice(len(support), p=dist[support] / dist[support].sum())])


def has_room(members: Sequence[Member], needed: int) -> bool:
    """Whether every member's window has ``needed`` tokens free (else the text ends)."""
    return all(m.room >= needed for m in members)


def whole_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def result_of(
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
