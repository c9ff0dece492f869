"""Several samples of one prompt decoded together in one llama.cpp context.

Sampling ``n`` answers one after another evaluates the prompt ``n`` times and runs ``n``
single-token decodes per generated position. Here the prompt is evaluated once, its KV
cells are shared with ``n`` sequences (``llama_memory_seq_cp`` on a unified KV cache only
adds sequence ids to the cells: no copy), and each step decodes one token of every
unfinished sequence in a single ``llama_decode``: the weights are read once per step
instead of once per sample. One sequence is bound by that memory traffic on a CPU; with
several, the matrix products become bound by arithmetic, so n sequences cost more than one
step but far less than n (measured in benchmarks/sampling.py).

Each sequence draws with its own sampler chain (seed ``seed + i`` for sample ``i``) and
stops on its own (:class:`~codeens.models.llamacpp_sequence.SequenceState`); finished
sequences leave the batch. More samples than ``n_seq_max`` run in chunks of ``n_seq_max``.

Prefix reuse: after a request only sequence 0's prompt stays in the cache. The next
request removes the cells after the longest common prefix and evaluates only the rest (at
least its last token, whose logits the first draw needs). A second chunk of the same
request therefore costs one token of prompt.

KV memory and layout: :mod:`codeens.models.llamacpp_context`.

Not thread-safe: the backend calls it under the loaded model's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from codeens.models.base import ModelUnavailable, SamplingParams
from codeens.models.llamacpp_context import (
    DecoderSettings,
    Layout,
    new_context,
    plan,
    sequences_together,
)
from codeens.models.llamacpp_prompt import Rendered, context_error
from codeens.models.llamacpp_sequence import (
    Generated,
    SequenceState,
    sampler_chain,
    token_logprob,
)

# llama.cpp treats 0xFFFFFFFF as "pick a random seed"; seeds are reduced below it.
SEED_RANGE = 0xFFFFFFFF
# Tokens a sample may run past max_tokens while its text ends inside a UTF-8 character
# (see llamacpp_sequence): the KV cache keeps room for them.
_UTF8_SLACK = 4
# Rows of logits one decode may return while scoring: llama.cpp keeps an output buffer of
# the largest count asked for (n_vocab floats a row: 0.6 MB for a 151k vocabulary) as long
# as the context lives, so scoring in chunks of 32 keeps it near what sampling needs.
_OUTPUT_ROWS = 32
_Drawn = tuple[int, float | None]  # a sampled token and its logprob when asked for


class BatchDecoder:
    """A llama.cpp context of its own over a loaded ``Llama``'s weights."""

    def __init__(self, llama: Any, settings: DecoderSettings) -> None:
        import llama_cpp

        self._lib: Any = llama_cpp
        self._llama = llama
        self.settings = settings
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._n_vocab = int(llama.n_vocab())
        self._ctx: Any = None
        self._memory: Any = None
        self._layout: Layout | None = None
        self._batch: Any = llama_cpp.llama_batch_init(
            max(settings.n_batch, settings.n_seq_max), 0, 1
        )
        self._cached: tuple[int, ...] = ()  # the prompt whose KV cells sequence 0 holds
        self._pool: ThreadPoolExecutor | None = None
        self.evaluated = 0  # prompt tokens decoded so far: what prefix reuse saves shows here

    @property
    def layout(self) -> Layout | None:
        """The current context's KV layout (None before the first request)."""
        return self._layout

    def sample(
        self, rendered: Rendered, n: int, params: SamplingParams, seed: int, logprobs: bool
    ) -> list[Generated]:
        """``n`` samples of ``rendered``; sample ``i`` draws with seed ``seed + i``."""
        prompt = rendered.tokens
        # A Llama checks against its context rounded up to 256 cells but keeps only n_ctx
        # tokens' room in its own arrays, and fails past them; n_ctx is the window here.
        n_ctx = self.settings.n_ctx
        if len(prompt) >= n_ctx:
            raise context_error(len(prompt), n_ctx)
        if not prompt:
            raise ModelUnavailable("llama.cpp: the prompt is empty")
        # create_completion's cap: the answer ends where the window does.
        max_tokens = min(params.max_tokens, n_ctx - len(prompt))
        limit = min(max_tokens + _UTF8_SLACK, n_ctx - len(prompt))
        stop = tuple(s.encode("utf-8") for s in rendered.stop)
        layout = self._use(plan(self.settings, len(prompt), limit, self._layout))
        chunk = sequences_together(layout, len(prompt), limit)
        bos = int(self._llama.token_bos())
        out: list[Generated] = []
        for start in range(0, n, chunk):
            states = []
            try:
                for i in range(start, min(n, start + chunk)):
                    chain = sampler_chain(
                        self._lib,
                        self._n_vocab,
                        params.temperature,
                        params.top_p,
                        (seed + i) % SEED_RANGE,
                    )
                    states.append(
                        SequenceState(
                            self._lib,
                            self._vocab,
                            chain,
                            stop=stop,
                            max_tokens=max_tokens,
                            limit=limit,
                            bos=bos,
                        )
                    )
                self._decode(prompt, states, limit, logprobs)
            finally:
                for state in states:
                    state.close()
            out.extend(state.result() for state in states)
        return out

    def score(self, tokens: Sequence[int], start: int) -> list[float]:
        """The log-probability of each of ``tokens[start:]`` given every token before it
        (teacher forcing: one evaluation of the whole sequence, no sampling).

        Sequence 0 keeps the tokens afterwards, so a next request (scored or sampled) that
        shares a prefix with them evaluates only the rest.
        """
        if not 0 < start < len(tokens):
            raise ValueError("nothing to score: the prefix or the continuation is empty")
        if len(tokens) > self.settings.n_ctx:
            raise context_error(len(tokens), self.settings.n_ctx)
        self._use(plan(self.settings, len(tokens), 1, self._layout))
        out: list[float] = []

        def read(position: int, row: int) -> None:
            logits = self._lib.llama_get_logits_ith(self._ctx, row)
            out.append(token_logprob(logits, self._n_vocab, tokens[position + 1]))

        self._evaluate(tokens, start - 1, read, upto=len(tokens) - 1)
        return out

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def logits_after(self, tokens: Sequence[int]) -> Any:
        """The next-token logits after ``tokens`` (a float32 copy, ``n_vocab`` long).

        Sequence 0 is brought to ``tokens``: cells past the common prefix with what it
        holds are removed (``llama_memory_seq_rm``: a roll-back) and only the rest is
        evaluated, so a caller stepping one token at a time evaluates one token a step
        and one that appends several, or takes some back, pays for just those.
        """
        if not tokens:
            raise ValueError("nothing to evaluate")
        if len(tokens) > self.settings.n_ctx:
            raise context_error(len(tokens), self.settings.n_ctx)
        self._use(plan(self.settings, len(tokens), 1, self._layout))
        row = self._evaluate(tokens)
        logits = self._lib.llama_get_logits_ith(self._ctx, row)
        return np.ctypeslib.as_array(logits, shape=(self._n_vocab,)).copy()

    def held(self) -> tuple[int, int]:
        """The first and last position sequence 0 has KV cells for ((-1, -1): none)."""
        if self._memory is None:
            return -1, -1
        lib = self._lib
        return (
            int(lib.llama_memory_seq_pos_min(self._memory, 0)),
            int(lib.llama_memory_seq_pos_max(self._memory, 0)),
        )

    def logits_rows(self, tokens: Sequence[int], first: int) -> list[Any]:
        """The next-token logits after each of ``tokens[:first + 1]``, ...,
        ``tokens`` (float32 copies): one evaluation of what sequence 0 lacks, however
        many rows, as a verifier of several drafted tokens needs."""
        if not 0 <= first < len(tokens):
            raise ValueError("no row asked for")
        if len(tokens) > self.settings.n_ctx:
            raise context_error(len(tokens), self.settings.n_ctx)
        self._use(plan(self.settings, len(tokens), 1, self._layout))
        rows: list[Any] = []

        def read(position: int, row: int) -> None:
            logits = self._lib.llama_get_logits_ith(self._ctx, row)
            rows.append(np.ctypeslib.as_array(logits, shape=(self._n_vocab,)).copy())

        self._evaluate(tokens, first, read)
        return rows

    def _use(self, layout: Layout) -> Layout:
        """Make ``layout`` the context's, recreating the context when it changes."""
        if layout != self._layout:
            self._free_context()
            self._ctx = new_context(self._lib, self._llama.model, self.settings, layout)
            self._memory, self._layout = self._lib.llama_get_memory(self._ctx), layout
        return layout

    def _decode(
        self, prompt: Sequence[int], states: list[SequenceState], limit: int, logprobs: bool
    ) -> None:
        lib, batch = self._lib, self._batch
        row = self._evaluate(prompt)
        for seq in range(1, len(states)):
            lib.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
        rows = [row] * len(states)  # where each sequence's logits are in the last batch
        active = list(range(len(states)))
        pos = len(prompt)
        try:
            while active:

                def draw(seq: int) -> tuple[int, float | None]:
                    token = lib.llama_sampler_sample(states[seq].chain, self._ctx, rows[seq])
                    if not logprobs:
                        return token, None
                    logits = lib.llama_get_logits_ith(self._ctx, rows[seq])
                    return token, token_logprob(logits, self._n_vocab, token)

                running = []
                for seq, (token, logprob) in zip(active, self._map(draw, active), strict=True):
                    if not states[seq].push(token, logprob):
                        running.append(seq)
                for j, seq in enumerate(running):
                    batch.token[j] = states[seq].tokens[-1]
                    batch.pos[j] = pos
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = seq
                    batch.logits[j] = 1
                    rows[seq] = j
                batch.n_tokens = len(running)
                if running:
                    self._check(lib.llama_decode(self._ctx, batch))
                active = running
                pos += 1
        finally:
            self._keep_prompt(len(prompt))

    def _map(self, draw: Callable[[int], _Drawn], seqs: list[int]) -> Iterable[_Drawn]:
        """``draw`` over ``seqs``, on the pool when there are several: ctypes calls release
        the GIL, so the sequences' samplers (a softmax over the vocabulary each) run on
        all threads instead of one while the decoding threads are idle."""
        if len(seqs) == 1 or self.settings.n_threads == 1:
            return map(draw, seqs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.n_threads, "llamacpp-sample")
        # Reading logits first reorders a batch's outputs inside llama.cpp (a one-time
        # write after each decode); here, so that the threads below only read.
        self._lib.llama_get_logits(self._ctx)
        return self._pool.map(draw, seqs)

    def _evaluate(
        self,
        prompt: Sequence[int],
        first: int | None = None,
        read: Callable[[int, int], None] | None = None,
        upto: int | None = None,
    ) -> int:
        """Bring sequence 0 to ``prompt``; the batch row holding its last token's logits.

        Positions ``first`` (default: the last) up to ``upto`` (exclusive, default: the
        end) get logits; ``read(position, row)`` is called for each of them while its
        chunk's logits are current.
        """
        lib, batch, mem = self._lib, self._batch, self._memory
        first = len(prompt) - 1 if first is None else first
        upto = len(prompt) if upto is None else upto
        common = _common_prefix(self._cached, prompt)
        common = min(common, first)  # the logits asked for must be fresh
        if common <= 0 or not lib.llama_memory_seq_rm(mem, -1, common, -1):
            lib.llama_memory_clear(mem, False)
            common = 0
        self._cached = ()
        step = self.settings.n_batch
        last = 0
        start = common
        while start < len(prompt):
            end = min(len(prompt), start + step)
            if start < upto and end > first:  # fewer rows of logits per decode
                end = min(end, max(first, start) + _OUTPUT_ROWS)
            part = prompt[start:end]
            for j, token in enumerate(part):
                batch.token[j] = token
                batch.pos[j] = start + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = int(first <= start + j < upto)
            last = len(part) - 1
            batch.n_tokens = len(part)
            self.evaluated += len(part)
            try:
                self._check(lib.llama_decode(self._ctx, batch))
            except ModelUnavailable:
                lib.llama_memory_clear(mem, False)
                raise
            if read is not None:
                for j in range(max(0, first - start), min(len(part), upto - start)):
                    read(start + j, j)
            start = end
        self._cached = tuple(prompt)
        return last

    def _keep_prompt(self, n_prompt: int) -> None:
        """Drop every sequence but 0 and 0's answer: the prompt stays for the next request."""
        lib, mem = self._lib, self._memory
        lib.llama_memory_seq_keep(mem, 0)
        if not lib.llama_memory_seq_rm(mem, 0, n_prompt, -1):  # e.g. recurrent models
            lib.llama_memory_clear(mem, False)
            self._cached = ()

    def _check(self, code: int) -> None:
        if code != 0:
            raise ModelUnavailable(f"llama.cpp: llama_decode returned {code}")

    def _free_context(self) -> None:
        if self._ctx is not None:
            self._lib.llama_free(self._ctx)
        self._ctx = self._memory = self._layout = None
        self._cached = ()

    def close(self) -> None:
        """Free the context and the batch (before the model they belong to)."""
        self._free_context()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
