"""An MoE of two SmolLM2-135M copies, built by the command and used through the backend.

The embedded GGUF is de-quantized into the session's private cache first; the build reads
the resulting safetensors. With identical experts and one expert per token, greedy
generation must match dense SmolLM2 exactly, and the routers must still tell code from
prose by the prompts they were built from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2

from codeens.models import ModelConfig, SamplingParams
from codeens.models.transformers_backend import Transformers
from conftest import run_cli

pytest_plugins = ["models_fixtures"]

CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)",
    "import os\nclass Stack:\n    def push(self, item):\n        self.items.append(item)",
]
PROSE = [
    "Once upon a time there was a little girl who lived in a village.",
    "The weather today is sunny with a light breeze from the west.",
    "Dear Sir or Madam, I am writing to enquire about the position.",
]


@pytest.fixture(scope="module")
def smollm2_moe(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import yaml

    folder = tmp_path_factory.mktemp("smollm2-moe")
    recipe = {
        "base_model": SMOLLM2,
        "gate_mode": "hidden",
        "experts_per_token": 1,
        "experts": [
            {"source_model": SMOLLM2, "positive_prompts": CODE, "negative_prompts": PROSE},
            {"source_model": SMOLLM2, "positive_prompts": PROSE, "negative_prompts": CODE},
        ],
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    done = run_cli("moe", "build", "recipe.yaml", "--out", "moe", cwd=folder, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    return folder / "moe"


def backend(location: str) -> Transformers:
    return Transformers(ModelConfig(name="m", backend="transformers", location=location, chat=True))


def test_smollm2_moe_generates_like_dense_smollm2(smollm2_moe: Path) -> None:
    config = json.loads((smollm2_moe / "config.json").read_text())
    assert (config["model_type"], config["num_local_experts"]) == ("mixtral", 2)
    assert config["tie_word_embeddings"] is True
    greedy = SamplingParams(temperature=0, max_tokens=32)
    texts = []
    for location in (str(smollm2_moe), SMOLLM2):
        model = backend(location)
        try:
            [done] = model.complete(ADD_PROMPT, 1, greedy, seed=0)
        finally:
            model.close()
        assert done.output_tokens > 0
        texts.append(done.text)
    assert texts[0] == texts[1]
    assert "def add" in texts[0]


def test_smollm2_moe_routes_code_and_prose_apart(smollm2_moe: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_moe))
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_moe))

    def share(prompts: list[str], expert: int) -> float:
        picks = []
        for prompt in prompts:
            with torch.inference_mode():
                out = model(**tokenizer(prompt, return_tensors="pt"), output_router_logits=True)
            picks += [(layer.argmax(-1) == expert).float() for layer in out.router_logits]
        return float(torch.cat(picks).mean())

    assert share(CODE, 0) > 0.7
    assert share(PROSE, 1) > 0.7
