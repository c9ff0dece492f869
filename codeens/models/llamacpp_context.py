"""The llama.cpp context the batched decoder runs in: its KV layout, and building it.

Two layouts, chosen by the ``kv_unified`` option:

* unified (default): one pool of cells for every sequence. The prompt's cells are shared
  (``seq_cp`` only tags them with more sequence ids), so a request needs the prompt once
  plus each answer: the leanest in memory, whatever the prompt length. The price is in
  attention: every token attends over all occupied cells (the other sequences' answers
  masked out), so a step slows as the answers grow; measured on Qwen2.5-Coder-0.5B with 8
  sequences (1 thread), the last of 480 steps took 40% longer than the first; over 200
  steps kv_unified = false was 5% faster on it and 1-2% on the 1.5B (benchmarks/sampling.py).
* per-sequence streams: each sequence has cells of its own, the prompt copied into each
  (``seq_cp`` across streams copies the buffer), so attention covers that sequence only
  and steps stay flat; but each stream holds prompt + answer, so a long prompt costs its
  cells once per sequence.

Either way the cells are sized for the request (never below one window, ``n_ctx``) and a
budget (``kv_cells``, two windows by default) bounds them: when the answers would not fit,
fewer sequences run together. A request that needs a bigger context recreates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeens.models.base import ModelUnavailable

_CELL_ROUNDING = 256  # llama.cpp rounds every context up to a multiple of 256 cells


@dataclass(frozen=True)
class DecoderSettings:
    """How the decoding context is built (from the backend's options)."""

    n_ctx: int  # one sample's window: prompt + answer
    n_seq_max: int  # sequences decoded together, at most
    n_threads: int
    n_batch: int = 512  # prompt tokens per llama_decode, as in Llama's default
    kv_cells: int = 0  # most KV cells a request may use; 0: two windows
    kv_unified: bool = True
    flash_attn: bool = False

    @property
    def budget(self) -> int:
        return max(self.kv_cells or 2 * self.n_ctx, self.n_ctx)


@dataclass(frozen=True)
class Layout:
    """A context's KV cells: how many, in how many streams (one per sequence, or one)."""

    cells: int
    streams: int  # the context's n_seq_max: sequence ids 0 .. streams - 1
    unified: bool

    @property
    def per_sequence(self) -> int:
        """Cells one sequence may fill: its prompt and its answer."""
        return self.cells if self.unified else self.cells // self.streams


def plan(settings: DecoderSettings, n_prompt: int, limit: int, current: Layout | None) -> Layout:
    """The layout for a request of ``n_prompt`` tokens and answers of up to ``limit``:
    ``current`` when it serves as well as a new one would, else a new one."""
    per_sequence = _round_up(n_prompt + limit)
    if settings.kv_unified:
        together = (settings.budget - n_prompt) // limit
        together = max(1, min(settings.n_seq_max, together))
        cells = _round_up(max(settings.n_ctx, n_prompt + together * limit))
        wanted = Layout(cells, settings.n_seq_max, True)
        fits = current is not None and current.unified and current.cells >= cells
    else:
        streams = max(1, min(settings.n_seq_max, settings.budget // per_sequence))
        wanted = Layout(streams * per_sequence, streams, False)
        fits = (
            current is not None
            and not current.unified
            and current.per_sequence >= per_sequence
            and current.streams >= streams
        )
    return current if fits and current is not None else wanted


def sequences_together(layout: Layout, n_prompt: int, limit: int) -> int:
    """How many sequences of one request ``layout`` can decode at once."""
    if not layout.unified:
        return layout.streams
    return max(1, min(layout.streams, (layout.cells - n_prompt) // limit))


def new_context(lib: Any, model: Any, settings: DecoderSettings, layout: Layout) -> Any:
    """A llama.cpp context over ``model`` with ``layout``; free it with ``llama_free``."""
    params = lib.llama_context_default_params()
    params.n_ctx = layout.cells
    params.n_batch = params.n_ubatch = settings.n_batch
    params.n_seq_max = layout.streams
    params.kv_unified = layout.unified
    params.n_threads = params.n_threads_batch = settings.n_threads
    params.flash_attn_type = (
        lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if settings.flash_attn
        else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    ctx = lib.llama_init_from_model(model, params)
    if ctx is None:
        raise ModelUnavailable(f"llama.cpp cannot create a context of {layout.cells} tokens")
    return ctx


def _round_up(cells: int) -> int:
    return -(-cells // _CELL_ROUNDING) * _CELL_ROUNDING
