"""GGUF models in process through llama-cpp-python.

Loaded models are shared per process, keyed by (file, options): many :class:`LlamaCpp`
instances over one file load it once, and the last :meth:`LlamaCpp.close` frees it. One
``Llama`` is not thread-safe, so calls on a shared model are serialised by its lock.

Chat models use the chat template stored in the GGUF (``create_chat_completion``); base
models continue ``prompt.prefix`` (``create_completion``). Sample ``i`` uses seed
``seed + i``. At temperature 0 decoding is greedy, so one call is made and, when ``n > 1``,
the answer is repeated: the copies report zero tokens (they cost nothing) and carry
``extra["copy_of"] = 0``.
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
)
from codeens.models.openai_compat import parse_choice

# llama.cpp treats 0xFFFFFFFF as "pick a random seed"; seeds are reduced below it.
_SEED_RANGE = 0xFFFFFFFF


def _cpus() -> int:
    return os.cpu_count() or 1


@dataclass
class _Loaded:
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_LOADED: dict[tuple[str, str], _Loaded] = {}
_LOADED_LOCK = threading.Lock()


class LlamaCpp(Model):
    """A GGUF file run by llama.cpp on this machine."""

    backend = "llamacpp"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n_ctx: int = Field(2048, ge=16, description="Context window in tokens (prompt + answer).")
        n_threads: int = Field(
            default_factory=_cpus, ge=1, description="CPU threads; default all cores."
        )
        logprobs: bool = Field(
            False,
            description="Report the mean token logprob. llama.cpp then keeps logits for every "
            "position and scores the whole vocabulary in Python per token: 10-40x slower "
            "generation here, so it is off by default.",
        )

    options: Options

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self._loaded: _Loaded | None = None
        self._key: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return False, "llama-cpp-python is not installed (pip install llama-cpp-python)"
        why = locate.check(self.config.location)
        return (not why, why)

    def _model(self) -> _Loaded:
        with self._lock:  # one reference per instance, however many threads ask at once
            if self._loaded is not None:
                return self._loaded
            path = locate.resolve(self.config.location)
            key = (str(path.resolve()), self.options.model_dump_json())
            with _LOADED_LOCK:
                loaded = _LOADED.get(key)
                if loaded is None:
                    loaded = _Loaded(self._load(path))
                    _LOADED[key] = loaded
                loaded.users += 1
            self._loaded, self._key = loaded, key
            return loaded

    def _load(self, path: Path) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelUnavailable(
                "llama-cpp-python is not installed (pip install llama-cpp-python)"
            ) from exc
        _silence(llama_cpp)
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.options.n_ctx,
                n_threads=self.options.n_threads,
                logits_all=self.options.logprobs,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(f"llama.cpp cannot load {path}: {exc}") from exc

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        loaded = self._model()
        greedy = params.temperature == 0.0
        try:
            with loaded.lock:
                out = [
                    self._one(loaded.llama, prompt, params, seed + i)
                    for i in range(1 if greedy else n)
                ]
        except ValueError as exc:  # e.g. a prompt longer than the context window
            raise ModelUnavailable(f"llama.cpp: {exc} (options.n_ctx)") from exc
        if greedy and n > 1:
            copy = dataclasses.replace(
                out[0], input_tokens=0, output_tokens=0, extra={**out[0].extra, "copy_of": 0}
            )
            out.extend([copy] * (n - 1))
        return out

    def _one(self, llama: Any, prompt: Prompt, params: SamplingParams, seed: int) -> Completion:
        # top_k and min_p off: SamplingParams means plain temperature + nucleus sampling,
        # the same distribution the other backends sample from.
        common: dict[str, Any] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": 0,
            "min_p": 0.0,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop),
            "seed": seed % _SEED_RANGE,
        }
        if self.config.chat:
            extra = {"logprobs": True, "top_logprobs": 1} if self.options.logprobs else {}
            response = llama.create_chat_completion(
                messages=[dict(m) for m in prompt.messages], **common, **extra
            )
        else:
            extra = {"logprobs": 1} if self.options.logprobs else {}
            response = llama.create_completion(prompt.prefix, **common, **extra)
        usage = response.get("usage") or {}
        text, finish_reason, mean_logprob = parse_choice(response["choices"][0], self.config.chat)
        return Completion(
            text=text,
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            mean_logprob=mean_logprob,
            finish_reason=finish_reason,
            extra={"seed": seed},
        )

    def close(self) -> None:
        with self._lock:
            loaded, key = self._loaded, self._key
            self._loaded = self._key = None
        if loaded is None or key is None:
            return
        with _LOADED_LOCK:
            loaded.users -= 1
            if loaded.users > 0:
                return
            _LOADED.pop(key, None)
        with loaded.lock:
            loaded.llama.close()


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
