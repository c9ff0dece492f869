"""The ``fuse`` backend: other configured models decoding as one, during inference.

```toml
[[models]]
name = "fused"
backend = "fuse"
options = { members = ["qwen-coder-0.5b", "qwen-coder-1.5b"], mode = "token" }
```

The members are llama.cpp models (configured or embedded; :mod:`codeens.models.composite`
resolves the names). They load through the generator's pool, so a member that is also in
the ensemble on its own is loaded once, and decode in their own decoders under their own
locks. The decoding itself is :mod:`codeens.models.fusion_tokens` and
:mod:`codeens.models.fusion_spans`. Every member is prompted the
way the composite's ``chat`` flag says (its own chat template, or the stub's prefix), so
all of them continue the same text.

Weights: equal by default, fixed (``weights = [..]``), or ``"packllm"``: per request,
``softmax(-CE_i / tau)`` over each member's cross-entropy on its own rendering of the
prompt (PackLLM), which costs one scoring pass of the prompt per member. Members of
weight 0 are not evaluated at all. A completion's ``extra`` carries the weights used and
``fused_share``, the share of steps where more than one member decided.
"""

from __future__ import annotations

import dataclasses
import threading
from contextlib import ExitStack
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from codeens.models.base import (
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
)
from codeens.models.fusion import Fused, Member, Output
from codeens.models.fusion_spans import Boundary, SpanOptions, fuse_spans
from codeens.models.fusion_tokens import TokenOptions, fuse_tokens
from codeens.models.pool import ModelPool
from codeens.models.vocab import UnionVocabulary, Vocabulary, vocabulary

_ROOM = 8  # tokens of context a member keeps free past the fused text


class FuseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[str, ...] = Field(
        min_length=1, description="Names of other models (configured or embedded)."
    )
    member_configs: tuple[ModelConfig, ...] = Field(
        (), description="Filled in from `members` when the configuration is read."
    )
    mode: Literal["token", "span"] = Field("token", description="Fuse tokens or spans.")
    weights: tuple[float, ...] | Literal["packllm"] = Field(
        (), description="One weight per member (default equal), or 'packllm'."
    )
    tau: float = Field(1.0, gt=0.0, description="PackLLM's temperature over cross-entropies.")
    temperature: float = Field(
        1.0, gt=0.0, description="Each member's softmax temperature before fusing (token mode)."
    )
    threshold: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Token mode: the first member decides alone when its top probability "
        "reaches this (GaC's thresholded ensemble); 0 fuses every step.",
    )
    top_k: int = Field(
        0,
        ge=0,
        description="Token mode across vocabularies: fuse only the union of each "
        "member's top k tokens (UniTE); 0 projects full distributions onto the union (GaC).",
    )
    drafts: Literal["greedy", "always", "never"] = Field(
        "greedy",
        description="Token mode, one vocabulary: the first member drafts a few tokens and "
        "the others check them in one batch (greedy: the same tokens as step by step; "
        "sampling: the same distribution, by speculative sampling). greedy: only when "
        "decoding greedily (sampling at 0.8 was slower drafted than step by step here).",
    )
    vocab: Literal["auto", "union"] = Field(
        "auto",
        description="auto: members with one shared vocabulary fuse id by id, others over "
        "the union of token strings; union: always the union.",
    )
    boundary: Boundary = Field("line", description="Span mode: where a draft ends.")
    span_tokens: int = Field(16, ge=1, description="Span mode: most tokens in one draft.")

    @model_validator(mode="after")
    def _consistent(self) -> FuseOptions:
        if isinstance(self.weights, tuple):
            if self.weights and len(self.weights) != len(self.members):
                raise ValueError("weights: one per member")
            if any(w < 0 for w in self.weights) or (self.weights and not any(self.weights)):
                raise ValueError("weights: non-negative, not all 0")
        for member in self.member_configs:
            if member.backend != "llamacpp":
                raise ValueError(
                    f"member {member.name!r} runs on {member.backend}: fused decoding needs "
                    "llama.cpp members (their logits, step by step)"
                )
        return self


class Fuse(Model):
    """Composite model: its members decode together (token- or span-level fusion)."""

    backend = "fuse"
    Options = FuseOptions
    options: FuseOptions

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self._pool = ModelPool()
        self._own_pool = True
        self._members: list[Any] | None = None
        self._vocabs: dict[int, Vocabulary] = {}
        self._union: tuple[tuple[int, ...], UnionVocabulary | None] | None = None
        self._lock = threading.Lock()

    def share_loads(self, pool: ModelPool) -> None:
        with self._lock:
            if self._own_pool:
                self._close_members()
                self._pool.close()
            self._pool, self._own_pool = pool, False

    def _configs(self) -> tuple[ModelConfig, ...]:
        if self.options.member_configs:
            return self.options.member_configs
        from codeens.embedded import embedded

        configs = []
        for name in self.options.members:
            entry = embedded(name)
            if entry is None:
                raise ModelUnavailable(f"fuse: unknown member {name!r}")
            configs.append(entry.config)
        return tuple(configs)

    def available(self) -> tuple[bool, str]:
        try:
            configs = self._configs()
        except ModelUnavailable as exc:
            return False, str(exc)
        from codeens.models.llamacpp import LlamaCpp

        for config in configs:
            ok, why = LlamaCpp(config).available()
            if not ok:
                return False, f"member {config.name}: {why}"
        return True, ""

    def members(self) -> list[Any]:
        """The members' llama.cpp backends, made on first use, loading through the pool."""
        from codeens.models.llamacpp import LlamaCpp

        with self._lock:
            if self._members is None:
                self._members = []
                for config in self._configs():
                    member = LlamaCpp(config)
                    member.share_loads(self._pool)
                    self._members.append(member)
            return self._members

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        loads = [m.loaded() for m in self.members()]
        greedy = params.temperature == 0.0
        with ExitStack() as stack:
            for lock in _distinct_locks(loads):
                stack.enter_context(lock)
            vocabs = [self._vocabulary(load) for load in loads]
            union = self._union_of(vocabs)
            rendered = [self._render(load, prompt, params) for load in loads]
            weights = self._weights(loads, rendered)
            stop = tuple(dict.fromkeys(s for r in rendered for s in r.stop))
            out = []
            for i in range(1 if greedy else n):
                members = [
                    Member(
                        name=config.name,
                        decoder=load.decoder,
                        vocab=vocab,
                        tokenize=_tokenizer(load.llama),
                        prompt=r.tokens,
                        weight=w,
                    )
                    for config, load, vocab, r, w in zip(
                        self._configs(), loads, vocabs, rendered, weights, strict=True
                    )
                ]
                room = min(m.room for m in members)
                if room <= _ROOM:
                    raise ModelUnavailable(
                        "fuse: the prompt does not fit a member's context window (options.n_ctx)"
                    )
                limit = min(params.max_tokens, room - _ROOM)
                fused = self._decode(members, union, Output(stop, limit), params, seed + i)
                out.append(self._completion(fused, rendered[0].tokens, weights, seed + i))
        if greedy and n > 1:
            copy = dataclasses.replace(
                out[0], input_tokens=0, output_tokens=0, extra={**out[0].extra, "copy_of": 0}
            )
            out.extend([copy] * (n - 1))
        return out

    def _decode(
        self,
        members: list[Member],
        union: UnionVocabulary | None,
        output: Output,
        params: SamplingParams,
        seed: int,
    ) -> Fused:
        options = self.options
        rng = np.random.default_rng(seed)
        try:
            if options.mode == "span":
                span = SpanOptions(options.boundary, options.span_tokens)
                return fuse_spans(members, span, output, params.temperature, params.top_p, rng)
            drafted = options.drafts == "always" or (
                options.drafts == "greedy" and params.temperature == 0.0
            )
            token = TokenOptions(options.temperature, options.threshold, options.top_k, drafted)
            return fuse_tokens(members, union, token, output, params.temperature, params.top_p, rng)
        except ValueError as exc:  # a member's context window is full
            raise ModelUnavailable(f"fuse: {exc} (a member's options.n_ctx)") from exc

    def _completion(
        self, fused: Fused, prompt: tuple[int, ...], weights: list[float], seed: int
    ) -> Completion:
        return Completion(
            text=fused.text,
            input_tokens=len(prompt),
            output_tokens=fused.steps,
            mean_logprob=fused.mean_logprob,
            finish_reason=fused.finish_reason,
            extra={
                "seed": seed,
                "weights": [round(w, 4) for w in weights],
                "fused_share": round(fused.fused_steps / max(1, fused.decisions), 4),
            },
        )

    def _render(self, load: Any, prompt: Prompt, params: SamplingParams) -> Any:
        if self.config.chat:
            return load.renderer.chat(prompt.messages, params.stop)
        return load.renderer.completion(prompt.prefix, params.stop)

    def _vocabulary(self, load: Any) -> Vocabulary:
        key = id(load)
        if key not in self._vocabs:
            self._vocabs[key] = vocabulary(load.llama)
        return self._vocabs[key]

    def _union_of(self, vocabs: list[Vocabulary]) -> UnionVocabulary | None:
        """None when the members share one vocabulary (and ``vocab`` is auto); the union
        otherwise, built once and kept."""
        digests = tuple(id(v) for v in vocabs)
        if self._union is None or self._union[0] != digests:
            shared = len({v.digest for v in vocabs}) == 1 and self.options.vocab == "auto"
            self._union = (digests, None if shared else UnionVocabulary(vocabs))
        return self._union[1]

    def _weights(self, loads: list[Any], rendered: list[Any]) -> list[float]:
        given = self.options.weights
        count = len(loads)
        if given == "packllm":
            ce = np.array(
                [
                    -float(np.mean(load.decoder.score(r.tokens, 1)))
                    for load, r in zip(loads, rendered, strict=True)
                ]
            )
            z = -ce / self.options.tau
            z -= z.max()
            return [float(x) for x in np.exp(z) / np.exp(z).sum()]
        if not given:
            return [1.0 / count] * count
        total = sum(given)
        return [w / total for w in given]

    def _close_members(self) -> None:
        for member in self._members or []:
            member.close()
        self._members = None
        self._vocabs.clear()
        self._union = None

    def close(self) -> None:
        with self._lock:
            self._close_members()
            if self._own_pool:
                self._pool.close()


def _distinct_locks(loads: list[Any]) -> list[threading.Lock]:
    """Each load's lock once, in one global order (two fused models never deadlock)."""
    locks = {id(load.lock): load.lock for load in loads}
    return [locks[k] for k in sorted(locks)]


def _tokenizer(llama: Any) -> Any:
    def tokenize(text: bytes) -> list[int]:
        return list(llama.tokenize(text, add_bos=False, special=False)) if text else []

    return tokenize
