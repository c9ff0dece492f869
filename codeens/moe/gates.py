"""Router (gate) weights for a built MoE: one row per expert in every layer.

- ``hidden``: run the base model over each expert's prompts and average, per layer, the
  vectors its MLP receives (the post-attention, normalised hidden state: exactly what the
  router will see in the MoE, whose attention and norms are the base model's). mergekit
  averages the residual stream entering each layer instead; the MLP input is closer to the
  router's own input. Special tokens (BOS) are left out of the average: they are the same
  in every prompt and would pull all rows together.
- ``cheap_embed``: the average token embedding of the prompts, the same row in every layer;
  no forward pass.
- ``random``: standard normal rows, seeded.

A row is (mean over positive prompts) - (mean over negative prompts), scaled to unit
length, so a token goes to the experts whose prompts it most resembles.

Each mode is a function registered under the entry-point group ``codeens.gate_modes``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from codeens.errors import first_line
from codeens.moe.recipe import Expert, MoEError, Recipe
from codeens.registry import Registry, UnknownName
from codeens.tensors_io import Checkpoint

GateMode = Callable[[Recipe, Path, int, int], Any]
"""(recipe, base model directory, layers, hidden size) -> (layers, experts, hidden) rows."""

GATE_MODES: Registry[GateMode] = Registry("codeens.gate_modes", "gate mode")

COLLINEAR_COSINE = 0.95
"""Gate rows closer than this (cosine) route almost alike: the prompts are too similar.

Measured on SmolLM2-135M (hidden gates, positive prompts only): code against prose prompts
gave per-layer maxima of 0.31 to 0.86; "adds two numbers" against "adds three numbers"
gave 0.988 to 0.999 in every layer. 0.95 lies between."""


def gate_weights(recipe: Recipe, base_dir: Path, layers: int, hidden_size: int) -> Any:
    """A (layers, experts, hidden_size) float32 tensor of router rows."""
    try:
        mode = GATE_MODES.get(recipe.gate_mode)
    except UnknownName as exc:
        raise MoEError(str(exc)) from None
    return mode(recipe, base_dir, layers, hidden_size)


def random_gates(recipe: Recipe, base_dir: Path, layers: int, hidden_size: int) -> Any:
    """Standard normal rows, seeded by the recipe."""
    import torch

    generator = torch.Generator().manual_seed(recipe.seed)
    return torch.randn(layers, len(recipe.experts), hidden_size, generator=generator)


def cheap_embed_gates(recipe: Recipe, base_dir: Path, layers: int, hidden_size: int) -> Any:
    """The prompts' average token embedding, the same row in every layer."""
    rows = _cheap_embed_rows(recipe.experts, base_dir)
    return rows.unsqueeze(0).repeat(layers, 1, 1)


def hidden_gates(recipe: Recipe, base_dir: Path, layers: int, hidden_size: int) -> Any:
    """Per layer, the average MLP input of the base model over the prompts."""
    return _hidden_rows(recipe.experts, base_dir)


def max_cosines(gates: Any) -> list[float]:
    """Per layer, the largest cosine similarity between two different experts' rows."""
    import torch

    unit = torch.nn.functional.normalize(gates.float(), dim=-1)
    similarity = unit @ unit.transpose(1, 2)
    experts = gates.shape[1]
    off_diagonal = ~torch.eye(experts, dtype=torch.bool)
    return [float(layer[off_diagonal].max()) for layer in similarity]


def _unit(rows: Any) -> Any:

    return rows / rows.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def _tokenizer(base_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(base_dir))
    except (OSError, ValueError) as exc:
        raise MoEError(
            f"cannot load the base model's tokenizer from {base_dir}: {first_line(exc)}"
        ) from exc


def _prompt_ids(tokenizer: Any, prompt: str) -> tuple[Any, Any]:
    """(input ids, mask of the non-special positions) for one prompt, as generation sees it."""
    import torch

    encoded = tokenizer(prompt, return_tensors="pt", return_special_tokens_mask=True)
    keep = encoded["special_tokens_mask"][0] == 0
    if not bool(keep.any()):
        keep = torch.ones_like(keep)
    return encoded["input_ids"], keep


def _cheap_embed_rows(experts: tuple[Expert, ...], base_dir: Path) -> Any:
    import torch

    tokenizer = _tokenizer(base_dir)
    embed = Checkpoint(base_dir).get("model.embed_tokens.weight").float()

    def mean(prompts: tuple[str, ...]) -> Any:
        vectors = []
        for prompt in prompts:
            ids, keep = _prompt_ids(tokenizer, prompt)
            vectors.append(embed[ids[0][keep]].mean(dim=0))
        return torch.stack(vectors).mean(dim=0)

    return _unit(torch.stack(_expert_rows(experts, mean)))


def _hidden_rows(experts: tuple[Expert, ...], base_dir: Path) -> Any:
    import torch
    import transformers

    from codeens.models.checkpoint import quiet

    tokenizer = _tokenizer(base_dir)
    try:
        with quiet(transformers):
            model: Any = transformers.AutoModelForCausalLM.from_pretrained(
                str(base_dir), dtype=torch.float32
            )
    except (OSError, ValueError) as exc:
        raise MoEError(f"cannot load the base model from {base_dir}: {first_line(exc)}") from exc
    model.eval()
    blocks = model.model.layers
    captured: list[Any] = [None] * len(blocks)
    hooks = [
        block.mlp.register_forward_pre_hook(_capture(captured, index))
        for index, block in enumerate(blocks)
    ]

    def mean(prompts: tuple[str, ...]) -> Any:
        per_prompt = []
        for prompt in prompts:
            ids, keep = _prompt_ids(tokenizer, prompt)
            with torch.inference_mode():
                model(input_ids=ids)
            per_prompt.append(torch.stack([c[0][keep].mean(dim=0) for c in captured]))
        return torch.stack(per_prompt).mean(dim=0)  # (layers, hidden)

    try:
        rows = _expert_rows(experts, mean)
    finally:
        for hook in hooks:
            hook.remove()
    return _unit(torch.stack(rows, dim=1))  # (layers, experts, hidden)


def _expert_rows(experts: tuple[Expert, ...], mean: Callable[[tuple[str, ...]], Any]) -> list[Any]:
    """Each expert's mean over its positive prompts, less the mean over its negative ones."""
    rows = []
    for expert in experts:
        row = mean(expert.positive_prompts)
        if expert.negative_prompts:
            row = row - mean(expert.negative_prompts)
        rows.append(row)
    return rows


def _capture(captured: list[Any], index: int) -> Any:
    def hook(_module: Any, args: tuple[Any, ...]) -> None:
        captured[index] = args[0].detach().float()

    return hook
