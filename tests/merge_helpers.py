"""Helpers for the merge tests: tiny model families with known task vectors, recipes, I/O.

No asserts here (PYTEST_DONT_REWRITE): test modules import it before pytest registers it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from tiny_models import build_tiny_llama

from codeens.cli import main

WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json")


def variant(base: Path, out: Path, seed: int, scale: float = 0.02) -> Path:
    """A copy of ``base`` whose every tensor moved by a known random task vector."""
    import torch
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True)
    for path in base.iterdir():
        if path.suffix != ".safetensors":
            shutil.copyfile(path, out / path.name)
    weights = load_file(str(base / "model.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    moved = {
        name: (t + scale * torch.randn(t.shape, generator=generator)).contiguous()
        for name, t in weights.items()
    }
    save_file(moved, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def family(root: Path, *, tied: bool = False, count: int = 3) -> list[Path]:
    """[base, variant 1, ...]: one tiny llama and ``count - 1`` fine-tuned stand-ins."""
    base = build_tiny_llama(root / "base", seed=0, tie_word_embeddings=tied)
    return [base] + [variant(base, root / f"ft{i}", seed=100 + i) for i in range(1, count)]


def weights(directory: Path) -> dict[str, Any]:
    """All tensors of a checkpoint (one file or several shards)."""
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for path in sorted(directory.glob("*.safetensors")):
        out.update(load_file(str(path)))
    return out


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_merge(*args: str) -> int:
    """``codeens merge ARGS`` in process (stderr is left to capsys); the exit code."""
    try:
        main(["merge", "--quiet", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def lineage(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "codeens_lineage.json").read_text())
    return data
