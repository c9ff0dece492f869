"""Existing MoE checkpoints (Mixtral, Qwen2-MoE, OLMoE layouts) are ordinary models.

Tiny random ones are built from their transformers configs and saved as transformers saves
them; codeens's transformers backend then loads and samples from each like any dense model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tokenizer

from codeens.models import ModelConfig, Prompt, SamplingParams
from codeens.models.transformers_backend import Transformers

SHAPE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
LAYOUTS = {
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {"num_local_experts": 4}),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64},
    ),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", {"num_experts": 4}),
}


def save_tiny_moe(folder: Path, layout: str) -> Path:
    import torch
    import transformers

    config_name, model_name, experts = LAYOUTS[layout]
    tokenizer: Any = build_tokenizer(folder)
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer),
        num_experts_per_tok=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPE,
        **experts,
    )
    torch.manual_seed(0)
    getattr(transformers, model_name)(config).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_backend_generates_from_an_existing_moe_checkpoint(tmp_path: Path, layout: str) -> None:
    import json

    from transformers import AutoModelForCausalLM

    folder = save_tiny_moe(tmp_path / layout, layout)
    assert json.loads((folder / "config.json").read_text())["model_type"] == layout
    # Every saved tensor is read back (nothing left to random initialisation).
    _, info = AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    model = Transformers(
        ModelConfig(name=layout, backend="transformers", location=str(folder), chat=False)
    )
    prompt = Prompt(messages=(), prefix="def add(a, b):\n")
    try:
        assert model.available() == (True, "")
        [greedy] = model.complete(prompt, 1, SamplingParams(temperature=0, max_tokens=8), 0)
        again = model.complete(prompt, 2, SamplingParams(temperature=1.0, max_tokens=8), 3)
        same = model.complete(prompt, 2, SamplingParams(temperature=1.0, max_tokens=8), 3)
    finally:
        model.close()
    assert model.weights_dir == str(folder)
    assert greedy.output_tokens > 0 and greedy.input_tokens > 1
    assert [c.text for c in again] == [c.text for c in same]  # seeded like any model
