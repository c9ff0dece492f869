"""The Mixtral layout: which dense tensors go where, and the config that describes them.

Attention, norms, embeddings and the output head come from the base model; in every layer,
expert ``e``'s MLP is the source model's ``gate_proj``/``up_proj``/``down_proj``, stored as
``block_sparse_moe.experts.e.w1``/``w3``/``w2``; the router is ``block_sparse_moe.gate``.
That per-expert layout is what Mixtral checkpoints on the hub use and what transformers
5.x itself writes from ``save_pretrained``: on load it fuses the experts into its 3-D
``gate_up_proj``/``down_proj`` tensors, and older transformers, vLLM and llama.cpp's
converter read it as is.

Only Llama and Mistral sources fit (same attention, RMSNorm and SwiGLU MLP as Mixtral,
no biases).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codeens.moe.recipe import MoEError
from codeens.tensors_io import Checkpoint

DENSE_TYPES = ("llama", "mistral")
# Dense config keys that mean the same in a Mixtral config.
SHARED_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "rope_parameters",
    "rope_theta",
    "rope_scaling",
    "attention_dropout",
    "sliding_window",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
# Keys that must agree between the base model and every expert source.
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "hidden_act")
MLP = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}


def check_sources(base: dict[str, Any], experts: list[tuple[str, dict[str, Any]]]) -> None:
    """Raise :class:`MoEError` unless every config is a bias-free Llama/Mistral of one shape."""
    for name, config in [("base_model", base), *experts]:
        kind = config.get("model_type")
        if kind not in DENSE_TYPES:
            raise MoEError(
                f"{name} is a {kind!r} model; a Mixtral MoE is built from "
                f"{' or '.join(DENSE_TYPES)} models"
            )
        for flag in ("attention_bias", "mlp_bias"):
            if config.get(flag):
                raise MoEError(f"{name} has {flag}; Mixtral layers have no biases")
    for name, config in experts:
        for key in SHAPE_KEYS:
            if config.get(key) != base.get(key):
                raise MoEError(
                    f"{name} has {key} {config.get(key)!r} but base_model has "
                    f"{base.get(key)!r}: experts must share the base model's architecture"
                )


def mixtral_config(base: dict[str, Any], experts: int, per_token: int, dtype: str) -> Any:
    """The ``MixtralConfig`` for ``experts`` experts built on the dense ``base`` config."""
    from transformers import MixtralConfig

    kwargs = {key: base[key] for key in SHARED_KEYS if base.get(key) is not None}
    config = MixtralConfig(
        **kwargs,
        num_local_experts=experts,
        num_experts_per_tok=per_token,
        architectures=["MixtralForCausalLM"],
        dtype=dtype,
    )
    # Mixtral would otherwise default to a 4096-token window the dense model never had.
    config.sliding_window = base.get("sliding_window")
    return config


def moe_tensors(
    base: Checkpoint, experts: list[Checkpoint], gates: Any, tied: bool
) -> Iterator[tuple[str, Any]]:
    """(name, tensor) pairs of the MoE checkpoint, read one at a time, layer by layer."""
    layers = gates.shape[0]
    if not tied and "lm_head.weight" not in base:
        raise MoEError(f"{base.folder} has no lm_head.weight and does not tie embeddings")
    per_layer: dict[int, list[str]] = {i: [] for i in range(layers)}
    outer = []
    for name in base.names():
        if ".mlp." in name or (tied and name == "lm_head.weight"):
            continue
        parts = name.split(".")
        if name.startswith("model.layers.") and parts[2].isdigit():
            per_layer[int(parts[2])].append(name)
        else:
            outer.append(name)
    for name in outer:
        yield name, base.get(name)
    for layer in range(layers):
        for name in per_layer[layer]:
            yield name, base.get(name)
        prefix = f"model.layers.{layer}"
        for index, source in enumerate(experts):
            for dense, sparse in MLP.items():
                yield (
                    f"{prefix}.block_sparse_moe.experts.{index}.{sparse}.weight",
                    source.get(f"{prefix}.mlp.{dense}.weight"),
                )
        yield f"{prefix}.block_sparse_moe.gate.weight", gates[layer]
