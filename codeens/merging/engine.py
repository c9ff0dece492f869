"""Run a merge recipe: resolve the checkpoints, stream tensors through a method, write out.

Peak memory is the tensors of one parameter name across the inputs (float32 while being
merged) plus what the memory maps have paged in: never K models at once. The output
directory gets the weights, the base (or first) model's config, generation config and
tokenizer files, and ``codeens_lineage.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codeens.merging.base import METHODS, MergeMethod, ParameterDef, TensorInputs
from codeens.merging.recipe import ModelEntry, Recipe, RecipeError, layer_position, lookup
from codeens.models.base import ModelUnavailable
from codeens.models.checkpoint import checkpoint_dir
from codeens.registry import UnknownName
from codeens.tensors_io import (
    DTYPE_NAMES,
    SAFETENSORS_DTYPES,
    Checkpoint,
    CheckpointError,
    PlanEntry,
    ShardWriter,
)

LINEAGE_FILE = "codeens_lineage.json"
DEFAULT_SHARD_BYTES = 2 * 1024**3
# Files copied from the reference model: configuration and tokenizer, never weights.
COPIED = ("*.json", "*.jinja", "*.model", "*.txt", "*.tiktoken")
NOT_COPIED = {"model.safetensors.index.json", "pytorch_model.bin.index.json", LINEAGE_FILE}


@dataclass
class MergeResult:
    """What a merge produced; also the content of ``codeens_lineage.json``."""

    model_dir: str
    method: str
    sources: list[dict[str, str]]
    parameters: dict[str, Any]
    dtype: str
    seed: int
    tensors: int = 0
    shards: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0


def merge(
    recipe: Recipe,
    out_dir: Path,
    *,
    seed: int = 0,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    log: Callable[[str], None] = lambda _line: None,
) -> MergeResult:
    """Merge as ``recipe`` says into ``out_dir`` (created; must not hold a model already).

    Raises :class:`RecipeError` (one line) for anything the user can fix: an unknown method
    or key, a missing model, models of different architectures or shapes.
    """
    started = time.monotonic()
    try:
        method = METHODS.get(recipe.merge_method)
    except UnknownName as exc:
        raise RecipeError(str(exc)) from exc
    first = recipe.models[0].model if recipe.models else None
    if first is None and recipe.slices and recipe.slices[0].sources:
        first = recipe.slices[0].sources[0].model
    reference = recipe.base_model or first
    if reference is None:
        raise RecipeError("the recipe lists no models ('models' or 'slices')")
    ref_dir = _resolve(reference)
    layers = int(json.loads((ref_dir / "config.json").read_text()).get("num_hidden_layers", 1))
    entries = recipe.entries(layers)
    inputs, base = _split(method, recipe, entries)
    _check_parameters(method, recipe, entries)
    checkpoints = [_open(e.model) for e in inputs]
    base_ckpt = _open(base) if base is not None else None
    everyone = ([base_ckpt] if base_ckpt else []) + checkpoints
    plan = _plan(everyone, recipe.output_dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("*.safetensors")):
        raise RecipeError(f"{out_dir} already holds a model; choose an empty --out")
    writer = ShardWriter(out_dir, plan, max_shard_bytes)
    import torch

    for done, (name, _, code) in enumerate(plan, start=1):
        position = layer_position(name, layers)
        merged = method.merge(
            TensorInputs(
                name=name,
                tensors=[c.get(name).float() for c in checkpoints],
                base=base_ckpt.get(name).float() if base_ckpt else None,
                model_params=[
                    _values(method.model_parameters, name, position, e.parameters, recipe)
                    for e in inputs
                ],
                params=_values(method.parameters, name, position, {}, recipe),
                generator=torch.Generator().manual_seed(_tensor_seed(seed, name)),
            )
        )
        writer.write(name, merged.to(getattr(torch, DTYPE_NAMES[code])))
        if done % 50 == 0:
            log(f"{done}/{len(plan)} tensors")
    shards = writer.finish()
    for ckpt in everyone:
        ckpt.close()
    dtype = DTYPE_NAMES[plan[0][2]]
    _copy_side_files(everyone[0].folder, out_dir, dtype)
    result = MergeResult(
        model_dir=str(out_dir.resolve()),
        method=method.name,
        sources=_sources(inputs, checkpoints, base, base_ckpt),
        parameters={
            "global": recipe.model_dump(mode="json")["parameters"],
            "models": {e.model: e.model_dump(mode="json")["parameters"] for e in entries},
        },
        dtype=dtype,
        seed=seed,
        tensors=len(plan),
        shards=shards,
        bytes=writer.total_bytes,
        seconds=round(time.monotonic() - started, 3),
    )
    (out_dir / LINEAGE_FILE).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _sources(
    inputs: list[ModelEntry],
    checkpoints: list[Checkpoint],
    base: str | None,
    base_ckpt: Checkpoint | None,
) -> list[dict[str, str]]:
    """The recipe's references with the directories they resolved to, base first."""
    out = []
    if base is not None and base_ckpt is not None:
        out.append({"model": base, "path": str(base_ckpt.folder), "role": "base"})
    for entry, ckpt in zip(inputs, checkpoints, strict=True):
        out.append({"model": entry.model, "path": str(ckpt.folder), "role": "input"})
    return out


def _resolve(reference: str) -> Path:
    try:
        return checkpoint_dir(reference)
    except ModelUnavailable as exc:
        raise RecipeError(f"model {reference!r}: {exc}") from exc


def _open(reference: str) -> Checkpoint:
    try:
        return Checkpoint(_resolve(reference))
    except CheckpointError as exc:
        raise RecipeError(f"model {reference!r}: {exc}") from exc


def _split(
    method: MergeMethod, recipe: Recipe, entries: list[ModelEntry]
) -> tuple[list[ModelEntry], str | None]:
    """(input models, base model or None) as the method sees them."""
    if method.base == "required":
        inputs = [e for e in entries if e.model != recipe.base_model]
        base = recipe.base_model
    else:
        if recipe.base_model and all(e.model != recipe.base_model for e in entries):
            raise RecipeError(
                f"{method.name} does not use base_model unless it is listed in models"
            )
        inputs, base = entries, None
    try:
        method.check(len(inputs), base is not None)
    except ValueError as exc:
        raise RecipeError(str(exc)) from exc
    return inputs, base


def _check_parameters(method: MergeMethod, recipe: Recipe, entries: list[ModelEntry]) -> None:
    known = {p.name for p in method.parameters + method.model_parameters}
    scopes = [("parameters", recipe.parameters)]
    scopes += [(f"models.{i}.parameters", e.parameters) for i, e in enumerate(entries)]
    for where, scope in scopes:
        for name in scope:
            if name not in known:
                raise RecipeError(
                    f"unknown key '{where}.{name}': {method.name} reads {', '.join(sorted(known))}"
                )


def _values(
    defs: tuple[ParameterDef, ...],
    tensor: str,
    position: float,
    own: dict[str, Any],
    recipe: Recipe,
) -> dict[str, Any]:
    values = {}
    for p in defs:
        value = lookup(p.name, tensor, position, own, recipe.parameters)
        if value is None:
            if p.required:
                raise RecipeError(f"missing parameter {p.name!r} for {tensor}")
            value = p.default
        values[p.name] = value
    return values


def _plan(checkpoints: list[Checkpoint], dtype: str | None) -> list[PlanEntry]:
    """(name, shape, safetensors dtype) of every output tensor, checking the inputs agree."""
    first = checkpoints[0]
    for other in checkpoints[1:]:
        for key in ("model_type", "architectures"):
            if first.config.get(key) != other.config.get(key):
                raise RecipeError(
                    f"architectures differ: {key} {first.config.get(key)!r} in "
                    f"{first.folder} but {other.config.get(key)!r} in {other.folder}"
                )
        missing = set(first.names()) ^ set(other.names())
        if missing:
            name = sorted(missing)[0]
            raise RecipeError(f"tensor {name} is in one of {first.folder}, {other.folder} only")
    plan = []
    for name in first.names():
        code, shape = first.info(name)
        for other in checkpoints[1:]:
            other_shape = other.info(name)[1]
            if other_shape != shape:
                raise RecipeError(
                    f"shape mismatch for {name}: {list(shape)} in {first.folder}, "
                    f"{list(other_shape)} in {other.folder}"
                )
        if code not in DTYPE_NAMES:
            raise RecipeError(f"tensor {name} has dtype {code}: only floating weights merge")
        plan.append((name, shape, SAFETENSORS_DTYPES[dtype] if dtype else code))
    return plan


def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _copy_side_files(source: Path, out_dir: Path, dtype: str) -> None:
    """Config, generation config and tokenizer from ``source``; the config gets ``dtype``."""
    for pattern in COPIED:
        for path in source.glob(pattern):
            if path.is_file() and path.name not in NOT_COPIED:
                shutil.copyfile(path, out_dir / path.name)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    for key in ("torch_dtype", "dtype"):
        if key in config:
            config[key] = dtype
    config_path.write_text(json.dumps(config, indent=2) + "\n")
