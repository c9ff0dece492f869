"""Safetensors checkpoints in and out, one tensor at a time (merging and MoE building).

:class:`Checkpoint` maps a model directory's tensor names to its shard files
(``model.safetensors.index.json``, else every ``*.safetensors``) from the headers alone, and
reads one tensor at a time from the memory maps. Opened with ``meta=True`` it hands back
tensors on torch's meta device instead (shape and dtype, no data read), so that a layout
function can be run once to plan an output before it is run again to write it.

:class:`ShardWriter` takes that plan (name, shape, dtype code of every output tensor),
splits it into shards of at most ``max_shard_bytes`` up front, writes each shard's header
first and then streams each tensor's bytes straight to disk: no shard is ever held in
memory. The file names and the index are those ``save_pretrained`` writes.
"""

from __future__ import annotations

import functools
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import torch

# The floating dtypes weights are written in, by torch name and by safetensors code.
SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
DTYPE_NAMES = {code: name for name, code in SAFETENSORS_DTYPES.items()}
ITEM_SIZES = {"F32": 4, "BF16": 2, "F16": 2}
# Every code a checkpoint may hold, for meta tensors (buffers can be integers or bools).
TORCH_NAMES = {
    **DTYPE_NAMES,
    "F64": "float64",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"

# (tensor name, shape, safetensors dtype code) of one output tensor, in write order.
PlanEntry = tuple[str, tuple[int, ...], str]


class CheckpointError(ValueError):
    """A directory without safetensors weights, or a tensor it does not have."""


class Checkpoint:
    """The safetensors weights of one model directory, read lazily by tensor name."""

    def __init__(self, folder: Path, *, meta: bool = False) -> None:
        self.folder = folder
        self.meta = meta
        index = folder / INDEX
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            self.files = {name: folder / file for name, file in weight_map.items()}
        else:
            self.files = {}
            for path in sorted(folder.glob("*.safetensors")):
                for name in _header(path):
                    self.files[name] = path
        if not self.files:
            raise CheckpointError(f"{folder} has no safetensors weights ({SINGLE} or {INDEX})")
        self._handles: dict[Path, Any] = {}
        self._headers: dict[Path, dict[str, Any]] = {}

    def names(self) -> list[str]:
        """Every tensor name, in index (or file) order."""
        return list(self.files)

    def __contains__(self, name: object) -> bool:
        return name in self.files

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The directory's ``config.json``."""
        config: dict[str, Any] = json.loads((self.folder / "config.json").read_text())
        return config

    def info(self, name: str) -> tuple[str, tuple[int, ...]]:
        """(safetensors dtype code, shape) from the header; no data is read."""
        path = self._path(name)
        if path not in self._headers:
            self._headers[path] = _header(path)
        entry = self._headers[path][name]
        return str(entry["dtype"]), tuple(int(d) for d in entry["shape"])

    def get(self, name: str) -> torch.Tensor:
        """One tensor, read from its shard now (or its meta stand-in when ``meta``)."""
        import torch

        if self.meta:
            code, shape = self.info(name)
            return torch.empty(shape, dtype=getattr(torch, TORCH_NAMES[code]), device="meta")
        from safetensors import safe_open

        path = self._path(name)
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt")
        tensor: torch.Tensor = self._handles[path].get_tensor(name)
        return tensor

    def close(self) -> None:
        self._handles.clear()

    def _path(self, name: str) -> Path:
        if name not in self.files:
            raise CheckpointError(f"{self.folder} has no tensor {name!r}")
        return self.files[name]


def _header(path: Path) -> dict[str, Any]:
    """The tensor entries of a safetensors file's JSON header."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


class ShardWriter:
    """Writes planned tensors, in plan order, into shards of at most ``max_shard_bytes``
    (a tensor larger than that gets a shard of its own)."""

    def __init__(self, out_dir: Path, plan: list[PlanEntry], max_shard_bytes: int) -> None:
        self.out_dir = out_dir
        shards: list[list[PlanEntry]] = [[]]
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
            (SINGLE if count == 1 else f"model-{i:05d}-of-{count:05d}.safetensors", s)
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

        if self._next == len(self._order):
            raise RuntimeError(f"tensor {name} is beyond the plan")
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
        if not self._order:  # an empty plan is still a loadable (empty) checkpoint
            self._open(SINGLE)
            assert self._handle is not None
            self._handle.close()
            self._handle = None
        files = [file for file, _ in self.shards]
        if len(files) > 1:
            index = {
                "metadata": {"total_size": self.total_bytes},
                "weight_map": {name: file for file, name in self._order},
            }
            text = json.dumps(index, indent=2, sort_keys=True)
            (self.out_dir / INDEX).write_text(text + "\n")
        return files


def _nbytes(entry: PlanEntry) -> int:
    _, shape, code = entry
    count = 1
    for dim in shape:
        count *= dim
    return count * ITEM_SIZES[code]
