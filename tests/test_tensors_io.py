"""The shared safetensors reader and shard writer, against safetensors' own reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from codeens.tensors_io import (
    INDEX,
    SINGLE,
    Checkpoint,
    CheckpointError,
    PlanEntry,
    ShardWriter,
)

TENSORS = {
    "embed.weight": torch.arange(24, dtype=torch.float32).reshape(6, 4),
    "layers.0.weight": torch.linspace(-1, 1, 16, dtype=torch.float32).reshape(4, 4),
    "layers.0.bias": torch.tensor([0.5, -0.25, 3.0, 7.0]),
    "head.weight": torch.ones(2, 4, dtype=torch.float32) * 0.125,
}
DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def write(out: Path, tensors: dict[str, torch.Tensor], code: str, max_bytes: int) -> list[str]:
    plan: list[PlanEntry] = [(n, tuple(t.shape), code) for n, t in tensors.items()]
    writer = ShardWriter(out, plan, max_bytes)
    for name, tensor in tensors.items():
        writer.write(name, tensor.to(DTYPES[code]))
    return writer.finish()


@pytest.mark.parametrize("code", ["F32", "BF16", "F16"])
def test_one_shard_is_read_back_by_safetensors(tmp_path: Path, code: str) -> None:
    assert write(tmp_path, TENSORS, code, 1 << 20) == [SINGLE]
    assert not (tmp_path / INDEX).exists()
    loaded = load_file(str(tmp_path / SINGLE))
    assert set(loaded) == set(TENSORS)
    for name, tensor in TENSORS.items():
        assert loaded[name].dtype == DTYPES[code]
        assert torch.equal(loaded[name], tensor.to(DTYPES[code]))
    with safe_open(str(tmp_path / SINGLE), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}


def test_shards_split_at_the_limit_with_an_index(tmp_path: Path) -> None:
    # 96, 64, 16 and 32 bytes with a 100-byte limit: [embed], [layers.0.*], [head].
    files = write(tmp_path, TENSORS, "F32", 100)
    assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((tmp_path / INDEX).read_text())
    assert index["metadata"]["total_size"] == 96 + 64 + 16 + 32
    assert index["weight_map"] == {
        "embed.weight": files[0],
        "layers.0.weight": files[1],
        "layers.0.bias": files[1],
        "head.weight": files[2],
    }
    checkpoint = Checkpoint(tmp_path)
    assert sorted(checkpoint.names()) == sorted(TENSORS)
    for name, tensor in TENSORS.items():
        assert torch.equal(checkpoint.get(name), tensor)
        assert checkpoint.info(name) == ("F32", tuple(tensor.shape))


def test_a_tensor_over_the_limit_gets_a_shard_of_its_own(tmp_path: Path) -> None:
    files = write(tmp_path, TENSORS, "F32", 1)
    assert len(files) == len(TENSORS)


def test_writing_out_of_plan_order_or_short_fails(tmp_path: Path) -> None:
    plan: list[PlanEntry] = [("a", (2,), "F32"), ("b", (2,), "F32")]
    writer = ShardWriter(tmp_path, plan, 1 << 20)
    with pytest.raises(RuntimeError, match="out of plan order"):
        writer.write("b", torch.zeros(2))
    writer.write("a", torch.zeros(2))
    with pytest.raises(RuntimeError, match="1 planned tensors never written"):
        writer.finish()


def test_an_empty_plan_is_an_empty_checkpoint(tmp_path: Path) -> None:
    assert ShardWriter(tmp_path, [], 1 << 20).finish() == [SINGLE]
    assert load_file(str(tmp_path / SINGLE)) == {}


def test_meta_checkpoint_gives_shapes_without_data(tmp_path: Path) -> None:
    save_file(
        {"w": torch.zeros(3, 5, dtype=torch.bfloat16), "ids": torch.arange(4)},
        str(tmp_path / SINGLE),
    )
    meta = Checkpoint(tmp_path, meta=True)
    w, ids = meta.get("w"), meta.get("ids")
    assert w.is_meta and tuple(w.shape) == (3, 5) and w.dtype == torch.bfloat16
    assert ids.is_meta and ids.dtype == torch.int64
    assert "w" in meta and "nope" not in meta


def test_missing_weights_and_tensors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="has no safetensors weights"):
        Checkpoint(tmp_path)
    save_file({"w": torch.zeros(1)}, str(tmp_path / SINGLE))
    with pytest.raises(CheckpointError, match="has no tensor 'v'"):
        Checkpoint(tmp_path).get("v")
