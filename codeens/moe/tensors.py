"""Safetensors in and out, one tensor at a time.

:class:`Checkpoint` reads a model directory's tensors by name (one file or an index of
shards) without loading the rest; :class:`ShardWriter` writes tensors as they come, closing a
shard whenever it reaches ``max_shard_bytes``, and finishes with the same file names and
index that ``save_pretrained`` writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codeens.moe.recipe import MoEError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class Checkpoint:
    """The safetensors weights of one model directory, read lazily by tensor name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = folder / INDEX
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            self.files = {name: folder / file for name, file in weight_map.items()}
        elif (folder / SINGLE).is_file():
            from safetensors import safe_open

            with safe_open(str(folder / SINGLE), framework="pt") as handle:
                self.files = {name: folder / SINGLE for name in handle.keys()}  # noqa: SIM118
        else:
            raise MoEError(f"{folder} has no safetensors weights ({SINGLE} or {INDEX})")
        self._open: dict[Path, Any] = {}

    def names(self) -> list[str]:
        """Every tensor name, in file order."""
        return list(self.files)

    def __contains__(self, name: object) -> bool:
        return name in self.files

    def get(self, name: str) -> Any:
        """One tensor, read from its shard now."""
        from safetensors import safe_open

        if name not in self.files:
            raise MoEError(f"{self.folder} has no tensor {name!r}")
        path = self.files[name]
        handle = self._open.get(path)
        if handle is None:
            handle = self._open[path] = safe_open(str(path), framework="pt")
        return handle.get_tensor(name)


class ShardWriter:
    """Writes tensors into numbered shards of at most ``max_shard_bytes`` (one tensor may
    exceed it alone), then ``finish`` names them as transformers does."""

    def __init__(self, folder: Path, max_shard_bytes: int) -> None:
        self.folder = folder
        self.max_shard_bytes = max_shard_bytes
        self._pending: dict[str, Any] = {}
        self._pending_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: Any) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        from safetensors.torch import save_file

        path = self.folder / f"shard-{len(self._shards)}.tmp"
        save_file(self._pending, str(path), metadata={"format": "pt"})
        self._shards.append((path, list(self._pending)))
        self._pending, self._pending_bytes = {}, 0

    def finish(self) -> list[Path]:
        """Write the last shard, rename them all, and write the index if there are several."""
        if self._pending or not self._shards:
            self._flush()
        count = len(self._shards)
        if count == 1:
            final = self.folder / SINGLE
            os.replace(self._shards[0][0], final)
            return [final]
        weight_map: dict[str, str] = {}
        finals = []
        for number, (path, names) in enumerate(self._shards, start=1):
            final = self.folder / f"model-{number:05d}-of-{count:05d}.safetensors"
            os.replace(path, final)
            finals.append(final)
            weight_map.update(dict.fromkeys(names, final.name))
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
        (self.folder / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        return finals
