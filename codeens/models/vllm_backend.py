"""vLLM in process (``vllm.LLM``): fast batched sampling on a CUDA GPU.

Optional: ``pip install 'codeens[vllm]'``. ``location`` is what ``vllm.LLM(model=...)``
takes (a directory, a hub id, or a GGUF file with ``tokenizer`` set). All ``n`` samples go
in one request (``SamplingParams(n=...)``) seeded with ``seed``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
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

NOT_INSTALLED = "vLLM is not installed (pip install 'codeens[vllm]')"
NO_GPU = "vLLM needs a CUDA GPU; none found"


def why_unavailable() -> str:
    """Why vLLM cannot run here, or ``""``."""
    if importlib.util.find_spec("vllm") is None:
        return NOT_INSTALLED
    import torch

    return "" if torch.cuda.is_available() else NO_GPU


class VLLM(Model):
    """A model served by an in-process ``vllm.LLM``."""

    backend = "vllm"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        dtype: str = Field("auto", description="Weights dtype, as vLLM names it.")
        max_model_len: int | None = Field(None, ge=16, description="Context length cap.")
        gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU share.")
        tokenizer: str | None = Field(None, description="Tokenizer, needed for GGUF files.")
        logprobs: bool = Field(False, description="Report the mean token logprob.")

    options: Options

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self._llm: Any = None
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        why = why_unavailable()
        return (not why, why)

    def _load(self) -> Any:
        if self._llm is None:
            why = why_unavailable()
            if why:
                raise ModelUnavailable(why)
            import vllm

            location = self.config.location
            if location.startswith(locate.PACKAGE_PREFIX) or os.path.exists(location):
                location = str(locate.resolve(location))
            self._llm = vllm.LLM(
                model=location,
                tokenizer=self.options.tokenizer,
                dtype=self.options.dtype,
                max_model_len=self.options.max_model_len,
                gpu_memory_utilization=self.options.gpu_memory_utilization,
            )
        return self._llm

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        with self._lock:
            llm = self._load()
            import vllm

            sampling = vllm.SamplingParams(
                n=n,
                seed=seed,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                stop=list(params.stop) or None,
                logprobs=0 if self.options.logprobs else None,
            )
            if self.config.chat:
                messages = [dict(m) for m in prompt.messages]
                result = llm.chat(messages, sampling, use_tqdm=False)[0]
            else:
                result = llm.generate([prompt.prefix], sampling, use_tqdm=False)[0]
        input_tokens = len(result.prompt_token_ids or [])
        out = []
        for i, sample in enumerate(result.outputs):
            count = len(sample.token_ids)
            logprob = sample.cumulative_logprob
            out.append(
                Completion(
                    text=sample.text,
                    input_tokens=input_tokens if i == 0 else 0,  # one prompt, prefilled once
                    output_tokens=count,
                    mean_logprob=logprob / count if logprob is not None and count else None,
                    finish_reason=str(sample.finish_reason or ""),
                    extra={"seed": seed},
                )
            )
        return out

    def close(self) -> None:
        with self._lock:
            self._llm = None
