"""One sample of a batched request: its sampler chain, its text, and when it stops.

The batched decoder (:mod:`codeens.models.llamacpp_batch`) runs several of these side by
side. Each mirrors, token for token, what llama-cpp-python 0.3.36 does for one
``create_completion`` call, so that a batch of one gives the library's answer:

* the sampler chain ``Llama._init_sampler`` builds for temperature + top_p with top_k 0 and
  min_p 0 (penalties that are all neutral, top-k 0 and typical-p 1 and min-p 0, which are
  no-ops, then top-p, temperature and the seeded draw; greedy at temperature 0), so the
  same seed draws the same tokens from the same logits;
* the stop rules of ``Llama._create_completion``: an end-of-generation token ends the
  sample (and is not part of it); otherwise the token joins the text, a stop string cuts
  the text where it starts (the first listed stop string found wins), and ``max_tokens``
  ends it with ``"length"``. The library skips both checks while the text ends inside a
  multi-byte UTF-8 character (and so may run a token or three past ``max_tokens``); that
  quirk is kept, bounded by the context window.

``output_tokens`` counts every generated token, including any after a stop string's start,
as the library's usage figures do.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

# How the library spots a UTF-8 lead byte whose continuation bytes are still to come.
_LEAD_BYTES = ((2, 192), (3, 224), (4, 240))


@dataclass(frozen=True)
class Generated:
    """What one sample produced."""

    text: str
    output_tokens: int
    finish_reason: str
    mean_logprob: float | None


def sampler_chain(lib: Any, n_vocab: int, temperature: float, top_p: float, seed: int) -> Any:
    """A new chain equal to the one ``Llama._init_sampler`` builds for these arguments
    (top_k 0, min_p 0, typical_p 1, no penalties). Free it with ``llama_sampler_free``."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    # 64 is Llama's default last_n_tokens_size; with neutral penalties it changes nothing.
    stages = [lib.llama_sampler_init_penalties(n_vocab, 64, 1.0, 0.0, 0.0)]
    if temperature == 0.0:
        stages.append(lib.llama_sampler_init_greedy())
    else:
        stages += [
            lib.llama_sampler_init_top_k(0),
            lib.llama_sampler_init_typical(1.0, 1),
            lib.llama_sampler_init_top_p(top_p, 1),
            lib.llama_sampler_init_min_p(0.0, 1),
            lib.llama_sampler_init_temp(temperature),
            lib.llama_sampler_init_dist(seed),
        ]
    for stage in stages:
        lib.llama_sampler_chain_add(chain, stage)
    return chain


def multibyte_wait(text: bytes, waiting: int) -> int:
    """How many more tokens the library waits before it checks stop strings and
    ``max_tokens`` again, given the text so far (its lead-byte test on the last 3 bytes)."""
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in _LEAD_BYTES:
            if num > k and pattern & char == pattern:
                waiting = num - k
    return waiting


def token_logprob(logits: Any, n_vocab: int, token: int) -> float:
    """log softmax(logits)[token], in float32 as ``Llama.logits_to_logprobs`` computes it."""
    row = np.ctypeslib.as_array(logits, shape=(n_vocab,))
    shifted = row - row.max()
    return float(shifted[token] - np.log(np.exp(shifted).sum()))


class SequenceState:
    """One sample being generated: feed it each drawn token with :meth:`push`."""

    def __init__(
        self,
        lib: Any,
        vocab: Any,
        chain: Any,
        *,
        stop: tuple[bytes, ...],
        max_tokens: int,
        limit: int,
        bos: int,
    ) -> None:
        self.chain = chain
        self.tokens: list[int] = []
        self.finish_reason = ""
        self.logprobs: list[float] = []
        self._lib, self._vocab = lib, vocab
        self._stop, self._max_tokens, self._limit, self._bos = stop, max_tokens, limit, bos
        self._pieces: list[bytes] = []
        self._text = b""
        self._multibyte_fix = 0
        self._buffer = ctypes.create_string_buffer(64)

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def push(self, token: int, logprob: float | None = None) -> bool:
        """Take the next drawn token; True when the sample has ended."""
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._text = self._joined()
            self.finish_reason = "stop"
            return True
        self.tokens.append(token)
        if logprob is not None:
            self.logprobs.append(logprob)
        self._pieces.append(self._piece(token))
        text = self._joined()
        self._multibyte_fix = multibyte_wait(text, self._multibyte_fix)
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
        else:
            found = [s for s in self._stop if s in text]
            if found:
                self._text = text[: text.index(found[0])]
                self.finish_reason = "stop"
                return True
            if len(self.tokens) >= self._max_tokens:
                self._text = text
                self.finish_reason = "length"
                return True
        if len(self.tokens) >= self._limit:  # the context window is full
            self._text = text
            self.finish_reason = "length"
            return True
        return False

    def result(self) -> Generated:
        mean = sum(self.logprobs) / len(self.logprobs) if self.logprobs else None
        return Generated(
            text=self._text.decode("utf-8", errors="ignore"),
            output_tokens=len(self.tokens),
            finish_reason=self.finish_reason,
            mean_logprob=mean,
        )

    def close(self) -> None:
        if self.chain is not None:
            self._lib.llama_sampler_free(self.chain)
            self.chain = None

    def _piece(self, token: int) -> bytes:
        n = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, 64, 0, False)
        if n < 0:  # longer than the buffer: llama.cpp says how long
            self._buffer = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, -n, 0, False)
        return self._buffer.raw[:n]

    def _joined(self) -> bytes:
        # LlamaModel.detokenize drops one leading space after a leading BOS token.
        text = b"".join(self._pieces)
        if self.tokens and self.tokens[0] == self._bos and text[:1] == b" ":
            return text[1:]
        return text
