"""Tensor streaming: read one tensor at a time from safetensors shards, write shard by shard.

:class:`Checkpoint` maps tensor names to shard files (``model.safetensors.index.json`` or the
lone ``*.safetensors``) and reads headers without loading data. :class:`ShardWriter` plans
the output shards from the known shapes before any data is written, writes each shard's
header first and then streams every tensor's bytes straight to disk, so no output shard is
ever held in memory.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import torch

# safetensors dtype codes and their byte sizes, for the floating dtypes merges produce.
SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
DTYPE_NAMES = {code: name for name, code in SAFETENSORS_DTYPES.items()}
ITEM_SIZES = {"F32": 4, "BF16": 2, "F16": 2}
INDEX = "model.safetensors.index.json"


class Checkpoint:
    """A checkpoint directory's tensors, opened lazily (memory-mapped by safetensors)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        index = directory / INDEX
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            self.files = {name: directory / file for name, file in weight_map.items()}
        else:
            self.files = {}
            for path in sorted(directory.glob("*.safetensors")):
                for name in _header(path):
                    self.files[name] = path
        self.config: dict[str, Any] = json.loads((directory / "config.json").read_text())
        self._handles: dict[Path, Any] = {}
        self._headers: dict[Path, dict[str, Any]] = {}

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def info(self, name: str) -> tuple[str, tuple[int, ...]]:
        """(safetensors dtype code, shape) from the header; no data is read."""
        path = self.files[name]
        if path not in self._headers:
            self._headers[path] = _header(path)
        entry = self._headers[path][name]
        return str(entry["dtype"]), tuple(int(d) for d in entry["shape"])

    def get(self, name: str) -> torch.Tensor:
        """One tensor, copied out of the memory map."""
        from safetensors import safe_open

        path = self.files[name]
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt")
        tensor: torch.Tensor = self._handles[path].get_tensor(name)
        return tensor

    def close(self) -> None:
        self._handles.clear()


def _header(path: Path) -> dict[str, Any]:
    """The tensor entries of a safetensors file's JSON header."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


class ShardWriter:
    """Writes planned tensors, in plan order, into shards of at most ``max_shard_bytes``."""

    def __init__(
        self, out_dir: Path, plan: list[tuple[str, tuple[int, ...], str]], max_shard_bytes: int
    ) -> None:
        self.out_dir = out_dir
        shards: list[list[tuple[str, tuple[int, ...], str]]] = [[]]
        size = 0
        for entry in plan:
            nbytes = _nbytes(entry)
            if shards[-1] and size + nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(entry)
            size += nbytes
        count = len(shards)
        self.shards = [
            ("model.safetensors" if count == 1 else f"model-{i:05d}-of-{count:05d}.safetensors", s)
            for i, s in enumerate(shards, start=1)
        ]
        self.total_bytes = sum(_nbytes(e) for e in plan)
        self._order = [(file, name) for file, shard in self.shards for name, _, _ in shard]
        self._next = 0
        self._handle: BinaryIO | None = None
        self._file: str | None = None

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the next planned tensor (already in its planned dtype and shape)."""
        import torch

        file, expected = self._order[self._next]
        if name != expected:
            raise RuntimeError(f"tensor {name} written out of plan order (expected {expected})")
        if file != self._file:
            self._open(file)
        assert self._handle is not None
        data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy()
        self._handle.write(data.data)
        self._next += 1
        if self._next == len(self._order) or self._order[self._next][0] != file:
            self._handle.close()
            self._handle = None

    def _open(self, file: str) -> None:
        shard = dict(self.shards)[file]
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape, code in shard:
            end = offset + _nbytes((name, shape, code))
            header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, end]}
            offset = end
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
        self._handle = (self.out_dir / file).open("wb")
        self._handle.write(struct.pack("<Q", len(raw)) + raw)
        self._file = file

    def finish(self) -> list[str]:
        """Write the index when there are several shards; the shard file names."""
        if self._next != len(self._order):
            raise RuntimeError(f"{len(self._order) - self._next} planned tensors never written")
        files = [file for file, _ in self.shards]
        if len(files) > 1:
            index = {
                "metadata": {"total_size": self.total_bytes},
                "weight_map": {name: file for file, name in self._order},
            }
            (self.out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return files


def _nbytes(entry: tuple[str, tuple[int, ...], str]) -> int:
    _, shape, code = entry
    count = 1
    for dim in shape:
        count *= dim
    return count * ITEM_SIZES[code]
