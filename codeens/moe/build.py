"""Build a sparse MoE checkpoint from a recipe: resolve sources, make gates, write, record.

The checkpoint is written into a private ``<out>.<pid>.partial`` directory and renamed into
place at the end, so a failed or interrupted build never leaves half a model at ``out``.
Besides weights, config and tokenizer, the directory holds ``codeens_lineage.json``: the
sources, gate mode, parameters and the recipe text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codeens.errors import first_line
from codeens.moe import gates as gating
from codeens.moe import mixtral
from codeens.moe.recipe import MoEError, Recipe
from codeens.tensors_io import SAFETENSORS_DTYPES, Checkpoint, CheckpointError, ShardWriter

LINEAGE_FILE = "codeens_lineage.json"
# Everything a tokenizer or generation needs, copied from the base model as it is.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


@dataclasses.dataclass(frozen=True)
class Built:
    """What a build produced."""

    out_dir: Path
    lineage: dict[str, Any]
    """The contents of ``codeens_lineage.json``."""
    warnings: tuple[str, ...]
    seconds: float


def build_moe(
    recipe: Recipe,
    recipe_text: str,
    out_dir: Path,
    *,
    recipe_dir: Path | None = None,
    max_shard_bytes: int = 2 << 30,
    warn: Callable[[str], None] = lambda _line: None,
) -> Built:
    """Build the MoE ``recipe`` describes into ``out_dir`` (which must not exist yet).

    Relative source paths are taken relative to ``recipe_dir`` when they exist there.
    ``warn`` receives one line per warning (nearly collinear gates). Raises
    :class:`MoEError` for anything the user can fix.
    """
    started = time.monotonic()
    base_dir = _source(recipe.base_model, recipe_dir, recipe.dtype)
    expert_dirs = [_source(e.source_model, recipe_dir, recipe.dtype) for e in recipe.experts]
    base_config = _config(base_dir)
    expert_configs = [(f"experts[{i}]", _config(d)) for i, d in enumerate(expert_dirs)]
    mixtral.check_sources(base_config, expert_configs)
    layers, hidden = base_config["num_hidden_layers"], base_config["hidden_size"]
    dtype = recipe.dtype or _dtype_of(base_config)

    try:
        gates = gating.gate_weights(recipe, base_dir, layers, hidden)
    except CheckpointError as exc:
        raise MoEError(str(exc)) from exc
    cosines = gating.max_cosines(gates)
    warnings = []
    close = [i for i, c in enumerate(cosines) if c > gating.COLLINEAR_COSINE]
    if close and recipe.gate_mode != "random":
        warnings.append(
            f"gate vectors are nearly collinear (max cosine {max(cosines):.3f} > "
            f"{gating.COLLINEAR_COSINE}) in {len(close)} of {layers} layers: the experts' "
            "prompts are too similar for the router to tell apart"
        )
    for line in warnings:
        warn(line)

    import torch

    out_dtype = getattr(torch, dtype)
    partial = out_dir.with_name(f"{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        config = mixtral.mixtral_config(
            base_config, len(recipe.experts), recipe.experts_per_token, dtype
        )
        config.save_pretrained(str(partial))
        tied = bool(base_config.get("tie_word_embeddings"))
        # A first pass on meta tensors plans the shards; the second streams the data.
        code = SAFETENSORS_DTYPES[dtype]
        plan = [
            (name, tuple(tensor.shape), code)
            for name, tensor in _layout(base_dir, expert_dirs, gates, tied, meta=True)
        ]
        writer = ShardWriter(partial, plan, max_shard_bytes)
        for name, tensor in _layout(base_dir, expert_dirs, gates, tied, meta=False):
            writer.write(name, tensor.to(out_dtype))
        shards = writer.finish()
        for name in TOKENIZER_FILES:
            if (base_dir / name).is_file():
                shutil.copy2(base_dir / name, partial / name)
        lineage = _lineage(recipe, recipe_text, base_dir, expert_dirs, dtype, cosines)
        lineage["parameters"]["shards"] = len(shards)
        lineage["parameters"]["bytes"] = writer.total_bytes
        (partial / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n")
        partial.rename(out_dir)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, CheckpointError):
            raise MoEError(str(exc)) from exc
        raise
    return Built(out_dir, lineage, tuple(warnings), time.monotonic() - started)


def _layout(
    base_dir: Path, expert_dirs: list[Path], gates: Any, tied: bool, *, meta: bool
) -> Iterator[tuple[str, Any]]:
    """The MoE checkpoint's (name, tensor) pairs in write order; shapes only when ``meta``."""
    experts = [Checkpoint(d, meta=meta) for d in expert_dirs]
    return mixtral.moe_tensors(Checkpoint(base_dir, meta=meta), experts, gates, tied)


def _source(location: str, recipe_dir: Path | None, dtype: str | None) -> Path:
    from codeens.models.base import ModelUnavailable
    from codeens.models.checkpoint import checkpoint_dir

    if recipe_dir is not None and not Path(location).expanduser().is_absolute():
        relative = recipe_dir / location
        if relative.exists():
            location = str(relative)
    try:
        return checkpoint_dir(location, dtype or "float32").resolve()
    except ModelUnavailable as exc:
        raise MoEError(str(exc)) from exc


def _config(folder: Path) -> dict[str, Any]:
    """The model's config as transformers normalises it (rope parameters and all)."""
    from transformers import AutoConfig

    try:
        config: dict[str, Any] = AutoConfig.from_pretrained(str(folder)).to_dict()
    except (OSError, ValueError) as exc:
        raise MoEError(f"cannot read the config of {folder}: {first_line(exc)}") from exc
    return config


def _dtype_of(config: dict[str, Any]) -> str:
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    dtype = dtype.removeprefix("torch.")
    return dtype if dtype in ("float32", "float16", "bfloat16") else "float32"


def _lineage(
    recipe: Recipe,
    recipe_text: str,
    base_dir: Path,
    expert_dirs: list[Path],
    dtype: str,
    cosines: list[float],
) -> dict[str, Any]:
    from codeens import __version__

    sources: list[dict[str, Any]] = [
        {"role": "base", "location": recipe.base_model, "path": str(base_dir)}
    ]
    for expert, folder in zip(recipe.experts, expert_dirs, strict=True):
        sources.append(
            {
                "role": "expert",
                "location": expert.source_model,
                "path": str(folder),
                "positive_prompts": list(expert.positive_prompts),
                "negative_prompts": list(expert.negative_prompts),
            }
        )
    return {
        "kind": "moe",
        "method": recipe.architecture,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "codeens_version": __version__,
        "sources": sources,
        "parameters": {
            "gate_mode": recipe.gate_mode,
            "experts_per_token": recipe.experts_per_token,
            "num_experts": len(recipe.experts),
            "dtype": dtype,
            "seed": recipe.seed,
            "gate_max_cosine": [round(c, 6) for c in cosines],
            "collinear_threshold": gating.COLLINEAR_COSINE,
        },
        "recipe": recipe_text,
    }
