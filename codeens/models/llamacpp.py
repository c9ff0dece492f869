"""GGUF models in process through llama-cpp-python.

A loaded model is keyed by (file, options) in a :class:`~codeens.models.pool.ModelPool`:
the :class:`~codeens.generation.Generator` hands its pool to every instance it makes, so
configured models over one file (under other names, sampling or prices) load it once and
the generator frees it; an instance used on its own loads into a pool of its own, freed by
:meth:`LlamaCpp.close`. One ``Llama`` is not thread-safe, so calls on a shared model are
serialised by its lock.

The ``Llama`` object holds the weights, the vocabulary and the chat template; decoding runs
in a context of codeens' own (:mod:`codeens.models.llamacpp_batch`) where the ``n`` samples
of a request share one evaluation of the prompt and advance together, one batch per token.
Prompts are rendered as ``create_chat_completion`` (chat models, the GGUF's template) and
``create_completion`` (base models, ``prompt.prefix``) render them
(:mod:`codeens.models.llamacpp_prompt`), and each sample draws with the sampler chain those
calls would build, so a single greedy sample is the library's answer token for token.
Sample ``i`` uses seed ``seed + i``. At temperature 0 decoding is greedy, so one sample is
decoded and, when ``n > 1``, repeated: the copies report zero tokens (they cost nothing)
and carry ``extra["copy_of"] = 0``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.models import locate
from codeens.models.base import (
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
    TokenScore,
)
from codeens.models.llamacpp_batch import BatchDecoder
from codeens.models.llamacpp_context import DecoderSettings
from codeens.models.llamacpp_prompt import PromptRenderer
from codeens.models.pool import ModelPool

# The Llama's own context is never decoded in (codeens decodes in the BatchDecoder's), so
# it is kept as small as llama.cpp allows instead of a second full-size KV cache.
_IDLE_CTX = 256


# llama.cpp's threads meet at a barrier after each operation of a forward pass, hundreds of
# times per token, and a waiting thread of its OpenMP runtime (libgomp) spins up to 300,000
# times (milliseconds) before it sleeps. On a CPU shared with any other busy process the
# spinning thread keeps a core that the thread it waits for needs. On 2 cores beside one
# busy process a 210-token prompt and 2 x 64 sampled tokens of the 0.5B Qwen took 58-135 s
# instead of 9 s; with 1,000 spins, 9-10 s, and idle as fast as the default (4.2 s against
# 4.1 s), where never spinning (OMP_WAIT_POLICY=passive) took 7.7 s, one thread's time.
_SPIN_COUNT = "1000"


def _bounded_spin() -> None:
    """Cap libgomp's spin-wait unless the user set a wait policy. libgomp reads it once,
    when it is loaded: the first ``import llama_cpp`` (or torch) of the process."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = _SPIN_COUNT


def _cpus() -> int:
    """The CPUs this process may run on (its affinity mask), not every CPU of the host."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass
class Loaded:
    """A loaded GGUF: the ``Llama`` (weights, vocabulary, template), its prompt renderer and
    decoder, and the lock every use of them holds."""

    llama: Any
    renderer: PromptRenderer
    decoder: BatchDecoder
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:  # not while another thread decodes with it
            self.decoder.close()  # its context goes before the model it was made from
            self.llama.close()


class LlamaCpp(Model):
    """A GGUF file run by llama.cpp on this machine."""

    backend = "llamacpp"
    can_score = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n_ctx: int = Field(
            2048,
            ge=16,
            description="Context window of each sample in tokens (prompt + answer).",
        )
        n_threads: int = Field(
            default_factory=_cpus,
            ge=1,
            description="CPU threads; default every core this process may use. Waiting "
            "threads spin at most 1,000 times before they sleep (GOMP_SPINCOUNT, unless "
            "GOMP_SPINCOUNT or OMP_WAIT_POLICY is set): a busy neighbour does not stall them.",
        )
        n_seq_max: int = Field(
            8,
            ge=1,
            le=256,
            description="Samples decoded together in one batch; a request for more runs in "
            "chunks of this many. The KV cache holds the prompt once plus each answer.",
        )
        kv_cells: int = Field(
            0,
            ge=0,
            description="Most KV-cache cells the batched samples may use (the prompt once "
            "plus each answer at max_tokens); fewer samples run together when they would "
            "not fit. 0: two windows (2 x n_ctx).",
        )
        kv_unified: bool = Field(
            True,
            description="One KV pool for all samples, the prompt's cells shared (least "
            "memory); false: cells of its own per sample, the prompt copied into each "
            "(attention over its own cells only: faster steps for long answers).",
        )
        flash_attn: bool = Field(
            False,
            description="llama.cpp's flash attention kernels: about 5% faster here, but "
            "other rounding than llama-cpp-python's default, so greedy answers may differ.",
        )
        logprobs: bool = Field(
            False,
            description="Report each sample's mean token logprob, a log-softmax over the "
            "vocabulary at every generated token (well under a millisecond per token here).",
        )

    options: Options

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self._pool = ModelPool()
        self._own_pool = True
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()

    def share_loads(self, pool: ModelPool) -> None:
        """Load through ``pool``, which its owner frees, instead of a pool of this model's."""
        with self._lock:
            if self._own_pool:
                self._pool.close()  # anything loaded alone so far goes
            self._pool, self._own_pool, self._loaded = pool, False, None

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return False, "llama-cpp-python is not installed (pip install llama-cpp-python)"
        why = locate.check(self.config.location)
        return (not why, why)

    def loaded(self) -> Loaded:
        """The loaded model (loading it on first use): for callers that decode with it
        themselves, such as the fusing backend; hold its lock while doing so."""
        return self._model()

    def _model(self) -> Loaded:
        with self._lock:  # one lookup per instance, however many threads ask at once
            if self._loaded is None:
                path = locate.resolve(self.config.location)
                key = ("llamacpp", str(path.resolve()), self.options.model_dump_json())
                self._loaded = self._pool.get(key, lambda: self._load(path))
            return self._loaded

    def _load(self, path: Path) -> Loaded:
        _bounded_spin()
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelUnavailable(
                "llama-cpp-python is not installed (pip install llama-cpp-python)"
            ) from exc
        _silence(llama_cpp)
        options = self.options
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=_IDLE_CTX,
                n_threads=options.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(f"llama.cpp cannot load {path}: {exc}") from exc
        settings = DecoderSettings(
            n_ctx=options.n_ctx,
            n_seq_max=options.n_seq_max,
            n_threads=options.n_threads,
            n_batch=min(options.n_ctx, 512),  # the prompt in the chunks a Llama would use
            kv_cells=options.kv_cells,
            kv_unified=options.kv_unified,
            flash_attn=options.flash_attn,
        )
        return Loaded(llama, PromptRenderer(llama), BatchDecoder(llama, settings))

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        loaded = self._model()
        greedy = params.temperature == 0.0
        try:
            with loaded.lock:
                if self.config.chat:
                    rendered = loaded.renderer.chat(prompt.messages, params.stop)
                else:
                    rendered = loaded.renderer.completion(prompt.prefix, params.stop)
                samples = loaded.decoder.sample(
                    rendered, 1 if greedy else n, params, seed, self.options.logprobs
                )
        except ValueError as exc:  # e.g. a prompt longer than the context window
            raise ModelUnavailable(f"llama.cpp: {exc} (options.n_ctx)") from exc
        out = [
            Completion(
                text=sample.text,
                input_tokens=len(rendered.tokens),
                output_tokens=sample.output_tokens,
                mean_logprob=sample.mean_logprob,
                finish_reason=sample.finish_reason,
                extra={"seed": seed + i},
            )
            for i, sample in enumerate(samples)
        ]
        if greedy and n > 1:
            copy = dataclasses.replace(
                out[0], input_tokens=0, output_tokens=0, extra={**out[0].extra, "copy_of": 0}
            )
            out.extend([copy] * (n - 1))
        return out

    def score(self, prefix: str, continuation: str) -> TokenScore:
        """log p(continuation | prefix), the prefix read as plain text (no chat template,
        whatever ``chat`` says): one evaluation of both in the decoder's context."""
        loaded = self._model()
        try:
            with loaded.lock:
                tokens, start = loaded.renderer.scored(prefix, continuation)
                logprobs = loaded.decoder.score(tokens, start)
        except ValueError as exc:  # empty text, or longer than the context window
            raise ModelUnavailable(f"llama.cpp cannot score: {exc}") from exc
        return TokenScore(sum(logprobs), len(logprobs))

    def close(self) -> None:
        """Free the model if this instance loaded it on its own; a shared pool's owner
        frees what it holds."""
        with self._lock:
            self._loaded = None
            if self._own_pool:
                self._pool.close()


_SILENT: list[Any] = []


def _silence(llama_cpp: Any) -> None:
    """Route llama.cpp's own log lines (warnings printed even when not verbose) nowhere."""
    if _SILENT:
        return
    import ctypes

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        return None

    _SILENT.append(quiet)  # the C side keeps only a pointer: keep the callback alive
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
