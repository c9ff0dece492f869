"""Hugging Face transformers models run in process with PyTorch.

``location`` is a local model directory, a GGUF file (plain path or ``package:...``), or a
hub id (needs network; never used in tests). A GGUF file is de-quantized by transformers
once, then saved as safetensors under ``<cache>/transformers/<sha256 of the file>-<dtype>``
and loaded from there ever after: converting takes tens of seconds, loading the saved
weights well under one.

The ``n`` samples are drawn in batches of up to ``max_batch`` sequences per ``generate`` call
(``num_return_sequences``), after ``torch.manual_seed(seed + first index of the batch)``:
the same seed, ``n`` and ``max_batch`` give the same samples. At temperature 0 decoding is
greedy and one sequence is generated; further copies report zero tokens and carry
``extra["copy_of"] = 0``. The mean logprob is the model's own (before temperature and
top-p), recorded during decoding at the cost of one log-softmax per step.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.errors import first_line
from codeens.models import checkpoint, locate
from codeens.models.base import (
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class Transformers(Model):
    """A causal language model loaded with ``AutoModelForCausalLM``."""

    backend = "transformers"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        dtype: Literal["float32", "bfloat16", "float16"] = Field(
            "float32", description="Weights and compute dtype."
        )
        max_batch: int = Field(8, ge=1, description="Sequences per generate call.")
        device: str = Field("auto", description="'auto' (CUDA when present, else CPU), 'cpu', ...")
        logprobs: bool = Field(True, description="Report the mean token logprob.")

    options: Options

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.weights_dir: Path | str | None = None
        """Where the weights were loaded from: a directory, or a hub id."""
        self.cache_hit: bool | None = None
        """For GGUF files: whether the converted safetensors were already cached."""
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        import importlib.util

        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                return False, f"{module} is not installed (pip install torch transformers)"
        try:
            self._source()
        except ModelUnavailable as exc:
            return False, str(exc)
        return True, ""

    def _source(self) -> tuple[str, Path | None]:
        """(directory or hub id to load, GGUF file to convert first or None)."""
        location = self.config.location.strip()
        path = Path(os.path.expandvars(location)).expanduser()
        is_path = location.startswith((locate.PACKAGE_PREFIX, "/", ".", "~")) or path.exists()
        if not is_path and location.endswith(".gguf"):
            is_path = True
        if not is_path and _HUB_ID.match(location):
            return location, None
        resolved = locate.resolve(location)
        if resolved.is_file():
            if resolved.suffix != ".gguf":
                raise ModelUnavailable(f"{resolved} is neither a model directory nor a GGUF file")
            return str(resolved.parent), resolved
        return str(resolved), None

    def load(self) -> None:
        """Load the model now (it is otherwise loaded on the first :meth:`complete`)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        torch, transformers = checkpoint.torch_and_transformers()
        source, gguf = self._source()
        dtype = getattr(torch, self.options.dtype)
        with checkpoint.quiet(transformers):
            if gguf is not None:
                self.weights_dir, self.cache_hit = checkpoint.dequantized(gguf, self.options.dtype)
            else:
                self.weights_dir = source
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.weights_dir))
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(self.weights_dir), dtype=dtype
                )
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(
                    f"transformers cannot load {source}: {first_line(exc)}"
                ) from exc
        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        self._model, self._tokenizer = model, tokenizer

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        with self._lock:
            self._load_locked()
            inputs = self._encode(prompt)
            greedy = params.temperature == 0.0
            want = 1 if greedy else n
            out: list[Completion] = []
            for batch, start in enumerate(range(0, want, self.options.max_batch)):
                size = min(self.options.max_batch, want - start)
                for done in self._generate(inputs, size, params, seed + start):
                    out.append(dataclasses.replace(done, extra={**done.extra, "batch": batch}))
        if greedy and n > 1:
            copy = dataclasses.replace(
                out[0], input_tokens=0, output_tokens=0, extra={**out[0].extra, "copy_of": 0}
            )
            out.extend([copy] * (n - 1))
        return out

    def _encode(self, prompt: Prompt) -> dict[str, Any]:
        tokenizer = self._tokenizer
        if self.config.chat:
            if not getattr(tokenizer, "chat_template", None):
                raise ModelUnavailable(
                    f"{self.config.location} has no chat template; set chat = false"
                )
            encoded = tokenizer.apply_chat_template(
                [dict(m) for m in prompt.messages],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
        else:
            encoded = tokenizer(prompt.prefix, return_tensors="pt")
        return {k: v.to(self._model.device) for k, v in encoded.items()}

    def _generate(
        self, inputs: dict[str, Any], size: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        model, tokenizer = self._model, self._tokenizer
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(eos_ids), 0)
        recorder = _ChosenLogprobs() if self.options.logprobs else None
        sampling: dict[str, Any] = {"do_sample": False}
        if params.temperature > 0:
            # top_k=0: plain temperature + nucleus sampling, as the other backends do.
            sampling = {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": 0,
            }
        prompt_len = int(inputs["input_ids"].shape[1])
        if params.stop:
            sampling["stopping_criteria"] = StoppingCriteriaList(
                [_StopStrings(tokenizer, params.stop, prompt_len)]
            )
        torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = model.generate(
                **inputs,
                max_new_tokens=params.max_tokens,
                num_return_sequences=size,
                pad_token_id=pad,
                logits_processor=LogitsProcessorList([recorder] if recorder else []),
                **sampling,
            )
        new = sequences[:, prompt_len:]
        logprobs = recorder.stacked(new) if recorder else None
        input_tokens = int(inputs["attention_mask"].sum())
        out = []
        for row in range(new.shape[0]):
            tokens = new[row].tolist()
            count, finish = _length(tokens, eos_ids, pad, params.max_tokens)
            text = tokenizer.decode(tokens[:count], skip_special_tokens=True)
            for stop in params.stop:
                if stop in text:
                    text, finish = text[: text.index(stop)], "stop"
            mean = None
            if logprobs is not None and count:
                mean = float(logprobs[row, :count].mean())
            out.append(
                Completion(
                    text=text,
                    input_tokens=input_tokens,
                    output_tokens=count,
                    mean_logprob=mean,
                    finish_reason=finish,
                    extra={"seed": seed, "batch_size": size},
                )
            )
        return out

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None


def _length(tokens: list[int], eos_ids: set[int], pad: int, limit: int) -> tuple[int, str]:
    """Generated tokens before EOS (or before the padding of a row that stopped early)."""
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return i, "stop"
    count = len(tokens)
    while count and tokens[count - 1] == pad:
        count -= 1
    return count, "length" if count >= limit else "stop"


class _ChosenLogprobs:
    """A logits processor that keeps the log-probability of each chosen token.

    It runs before temperature and top-p, so it sees the model's own distribution; the token
    chosen at step t is read from ``input_ids`` at step t + 1 (and from the final sequences
    for the last step), so only one step's log-softmax is held at a time.
    """

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self._last: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._last is not None:
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def stacked(self, new_tokens: Any) -> Any:
        """(batch, new tokens) log-probabilities of the generated tokens."""
        import torch

        steps = list(self.steps)
        if self._last is not None and new_tokens.shape[1] > len(steps):
            final = new_tokens[:, len(steps) : len(steps) + 1]
            steps.append(self._last.gather(1, final).squeeze(1))
        if not steps:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(steps, dim=1)


class _StopStrings:
    """Stop a row once its generated text contains a stop string.

    transformers' own ``stop_strings`` also match across the end of the prompt (a chat prompt
    ends in a newline, so ``"\\n```"`` would stop at a leading ```), unlike the OpenAI API and
    llama.cpp. Only the tail that a new token can complete is decoded at each step.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_len = prompt_len
        self.window = max(len(stop) for stop in stops) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self.prompt_len, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        done = [any(stop in tail for stop in self.stops) for tail in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
