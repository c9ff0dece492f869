"""Parity with mergekit itself: the same recipe through `mergekit-yaml` and `codeens merge`.

mergekit pins click and pydantic versions of its own, so it lives in a separate virtual
environment (``.venv-mergekit``, made by ``scripts/bootstrap.sh test``; another one can be
named with ``$CODEENS_MERGEKIT``, the path of its ``mergekit-yaml``). Its absence fails the
test rather than skipping it, so CI cannot pass without the comparison. DARE's masks are
random and drawn differently by the two tools: they are compared at density 1 here, and the
masks' statistics are checked by hand in test_merge.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from merge_helpers import family, run_merge, weights, write_recipe

from conftest import REPO

MERGEKIT_ENV = "CODEENS_MERGEKIT"


@pytest.fixture(scope="session")
def mergekit_yaml() -> Path:
    path = Path(os.environ.get(MERGEKIT_ENV) or REPO / ".venv-mergekit" / "bin" / "mergekit-yaml")
    if not path.is_file():
        pytest.fail(f"mergekit not found at {path}: run `bash scripts/bootstrap.sh test`")
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return family(tmp_path_factory.mktemp("mergekit-family"), count=4)


def recipes(m: list[Path]) -> dict[str, dict[str, object]]:
    base, a, b, c = (str(p) for p in m)
    return {
        "linear": {
            "merge_method": "linear",
            "models": [
                {"model": a, "parameters": {"weight": 0.5}},
                {"model": b, "parameters": {"weight": 0.3}},
                {"model": c, "parameters": {"weight": 0.2}},
            ],
            "dtype": "float32",
        },
        "task_arithmetic": {
            "merge_method": "task_arithmetic",
            "base_model": base,
            "models": [
                {"model": a, "parameters": {"weight": 0.6}},
                {"model": b, "parameters": {"weight": 0.9}},
            ],
            "parameters": {"lambda": 0.8},
            "dtype": "float32",
        },
        "ties": {
            "merge_method": "ties",
            "base_model": base,
            "models": [
                {"model": a, "parameters": {"weight": 1.0, "density": 0.5}},
                {"model": b, "parameters": {"weight": 0.5, "density": 0.7}},
                {"model": c, "parameters": {"weight": 0.8, "density": 0.3}},
            ],
            "parameters": {"normalize": True, "int8_mask": True},
            "dtype": "float32",
        },
        "dare_ties": {
            "merge_method": "dare_ties",
            "base_model": base,
            "models": [
                {"model": a, "parameters": {"weight": 0.7, "density": 1.0}},
                {"model": b, "parameters": {"weight": 0.4, "density": 1.0}},
            ],
            "dtype": "float32",
        },
        "dare_linear": {
            "merge_method": "dare_linear",
            "base_model": base,
            "models": [
                {"model": a, "parameters": {"weight": 0.7, "density": 1.0}},
                {"model": c, "parameters": {"weight": 0.4, "density": 1.0}},
            ],
            "parameters": {"normalize": True},
            "dtype": "float32",
        },
        "slerp": {
            "merge_method": "slerp",
            "base_model": a,
            "slices": [
                {
                    "sources": [
                        {"model": a, "layer_range": [0, 2]},
                        {"model": b, "layer_range": [0, 2]},
                    ]
                }
            ],
            "parameters": {
                "t": [
                    {"filter": "self_attn", "value": [0.1, 0.9]},
                    {"filter": "mlp", "value": [0.8, 0.3]},
                    {"value": 0.4},
                ]
            },
            "dtype": "float32",
        },
    }


@pytest.mark.parametrize(
    "method", ["linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "slerp"]
)
def test_same_tensors_as_mergekit(
    tmp_path: Path, models: list[Path], mergekit_yaml: Path, method: str
) -> None:
    recipe = write_recipe(tmp_path / "recipe.yaml", recipes(models)[method])
    theirs_dir, ours_dir = tmp_path / "mergekit", tmp_path / "codeens"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(mergekit_yaml), str(recipe), str(theirs_dir), "--no-cuda", "--random-seed", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert run_merge(str(recipe), "--out", str(ours_dir)) == 0
    theirs, ours = weights(theirs_dir), weights(ours_dir)
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype, name
        assert torch.allclose(ours[name], tensor, atol=2e-6, rtol=1e-5), (
            name,
            float((ours[name] - tensor).abs().max()),
        )
    # Not a trivial agreement: the merge moved every input.
    source = weights(models[1])
    assert any(not torch.allclose(ours[n], source[n]) for n in ours)
