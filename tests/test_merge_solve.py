"""A merged model is a codeens model like any other: `codeens solve` with it, for real.

Two variants of one tiny base are fine-tuned (overfitted, AdamW on CPU) on the body of a
correct `add`, continuing the exact prefix a base model is given; they are merged linearly;
the merged directory becomes a ``transformers`` entry in a config file, and `codeens solve`
runs with only that model and the real Docker sandbox.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from merge_helpers import write_recipe
from tiny_models import build_tiny_llama

from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

BODY = "    return a + b\n"


def fine_tune(base: Path, out: Path, prompt: str, body: str, seed: int, steps: int) -> Path:
    """Overfit ``base`` to continue ``prompt`` with ``body`` and EOS; save it to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base))
    # Prompt and body tokenised apart, as at inference: the prompt's last token is its own.
    parts = [tokenizer(t, return_tensors="pt").input_ids for t in (prompt, body)]
    ids = torch.cat([*parts, torch.tensor([[tokenizer.eos_token_id]])], dim=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def test_solve_with_a_merged_model(tmp_path: Path, sandbox_image: str) -> None:
    problem_path = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem_path)
    problem = load_problem(problem_path)
    prefix = solve_prompt(problem, problem.stubs[0], tests="").prefix
    base = build_tiny_llama(tmp_path / "base", seed=0)
    a = fine_tune(base, tmp_path / "ft-a", prefix, BODY, seed=1, steps=60)
    b = fine_tune(base, tmp_path / "ft-b", prefix, BODY, seed=2, steps=50)
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        {
            "merge_method": "linear",
            "models": [
                {"model": str(a), "parameters": {"weight": 0.5}},
                {"model": str(b), "parameters": {"weight": 0.5}},
            ],
        },
    )
    merged = tmp_path / "merged"
    proc = run_cli("merge", str(recipe), "--out", str(merged), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = tmp_path / "codeens.toml"
    config.write_text(
        "[[models]]\n"
        'name = "merged"\n'
        'backend = "transformers"\n'
        f"location = {json.dumps(str(merged))}\n"
        "chat = false\n"
        "sampling = { temperature = 0.0, max_tokens = 24 }\n"
    )
    proc = run_cli(
        "solve", str(problem_path), "--config", str(config), "--models", "merged",
        "--samples", "1", "--json", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    data = json.loads(proc.stdout)
    assert data["candidates"] and {c["model"] for c in data["candidates"]} == {"merged"}, data
    assert data["status"] == "solved", data
    assert proc.returncode == 0, proc.stderr
    assert "return a + b" in data["solution"]
