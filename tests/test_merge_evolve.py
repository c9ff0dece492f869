"""`codeens merge evolve`: CMA-ES over a merge recipe, on tiny real checkpoints.

The search tests use a deterministic fitness registered the way a plugin's would be:
minus the mean squared distance between the merged weights and one source's weights,
so the best merge is known. The built-in ``pass-rate`` runs for real once, on the
process sandbox (a tiny random model scores 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from merge_helpers import family, lineage, weights, write_recipe

from codeens.cli import cli, main
from codeens.merging.evolve import search
from codeens.merging.evolve_recipe import EvolveRecipe
from codeens.merging.fitness import (
    FITNESS,
    Candidate,
    Fitness,
    FitnessContext,
    FitnessError,
    Score,
)
from codeens.merging.genome import genome_space
from codeens.storage import Lineage, Store


class Distance(Fitness):
    """Minus the mean squared distance of the merge's weights to ``target``'s."""

    name = "distance"

    class Options(Fitness.Options):
        target: str

    options: Options

    def score(self, candidate: Candidate) -> Score:
        target = weights(Path(self.options.target))
        merged = weights(candidate.model_dir)
        total = sum(float(((merged[n] - t) ** 2).sum()) for n, t in target.items())
        count = sum(t.numel() for t in target.values())
        return Score(-total / count)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """[base, ft1, ft2]: two fine-tuned stand-ins of one tiny llama."""
    return family(tmp_path_factory.mktemp("evolve-family"), count=3)


@pytest.fixture(autouse=True)
def distance_fitness() -> Iterator[None]:
    with FITNESS.registered("distance", Distance):
        yield


def recipe_dict(models: list[Path], **changes: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "merge_method": "linear",
        "models": [{"model": str(models[1])}, {"model": str(models[2])}],
        "dtype": "float32",
        "search": {"weight": [0.0, 1.0]},
        "fitness": {"kind": "distance", "target": str(models[1])},
        "budget": {"evaluations": 6},
        "cma": {"sigma0": 0.3, "popsize": 4, "seed": 0},
        "baselines": False,
    }
    recipe.update(changes)
    return recipe


def run_search(tmp_path: Path, recipe: EvolveRecipe) -> tuple[Any, Store]:
    store = Store(tmp_path / "evolve.db")
    context = FitnessContext(store=store, run_id="r1", config=_config())
    options = Distance.Options.model_validate(recipe.fitness.options)
    return search(recipe, Distance(options, context), store=store, run_id="r1"), store


def _config() -> Any:
    from codeens.config import Config, SandboxConfig

    return Config(models=(), sandbox=SandboxConfig(backend="process"))


def test_the_search_puts_the_weight_on_the_target_source(
    tmp_path: Path, models: list[Path]
) -> None:
    recipe = EvolveRecipe.model_validate(recipe_dict(models, budget={"evaluations": 24}))
    result, _ = run_search(tmp_path, recipe)
    w1, w2 = (result.best.parameters["models"][str(m)]["weight"] for m in models[1:])
    assert w1 / (w1 + w2) > 0.9, (w1, w2)
    fitness = [m.fitness for m in result.evaluations]
    assert result.best.fitness == max(fitness)
    assert result.best.fitness > fitness[0]


def test_the_budget_of_evaluations_stops_mid_generation(tmp_path: Path, models: list[Path]) -> None:
    recipe = EvolveRecipe.model_validate(recipe_dict(models, budget={"evaluations": 5}))
    result, store = run_search(tmp_path, recipe)
    assert len(result.evaluations) == 5 and result.stopped == "evaluations"
    steps = store.evolve_steps("r1")
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert all(s.role == "genome" and len(json.loads(s.genome_json)) == 2 for s in steps)


def test_the_wall_clock_budget_stops_after_one_evaluation(
    tmp_path: Path, models: list[Path]
) -> None:
    budget = {"evaluations": 50, "wall_s": 0.001}
    recipe = EvolveRecipe.model_validate(recipe_dict(models, budget=budget))
    result, store = run_search(tmp_path, recipe)
    assert result.stopped == "wall_s"
    assert len(result.evaluations) == 1 and len(store.evolve_steps("r1")) == 1


def test_a_genome_maps_to_control_points_per_layer_group(models: list[Path]) -> None:
    recipe = EvolveRecipe.model_validate(
        {
            "merge_method": "ties",
            "base_model": str(models[0]),
            "models": [{"model": str(models[1])}, {"model": str(models[2])}],
            "layer_groups": 2,
            "parameters": {"lambda": 1.0},
            "search": {"weight": [0.0, 2.0], "density": [0.2, 1.0]},
        }
    )
    space = genome_space(recipe)
    genes = [(g.parameter, g.model, g.group) for g in space.genes]
    assert genes == [
        ("weight", 0, 0),
        ("weight", 0, 1),
        ("weight", 1, 0),
        ("weight", 1, 1),
        ("density", 0, 0),
        ("density", 0, 1),
        ("density", 1, 0),
        ("density", 1, 1),
    ]
    merge_recipe = space.to_recipe([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.5, 0.5])
    first, second = merge_recipe.models or []
    assert first.parameters == {"weight": [0.0, 2.0], "density": [1.0, 0.2]}
    assert second.parameters["weight"] == [1.0, 0.5]
    assert second.parameters["density"] == pytest.approx([0.6, 0.6])
    assert merge_recipe.parameters == {"lambda": 1.0}
    assert merge_recipe.base_model == str(models[0])


def test_the_gradient_reaches_the_layers(tmp_path: Path, models: list[Path]) -> None:
    """Layer 0 of 2 reads the first control point, layer 1 the last."""
    from codeens.merging.engine import merge

    recipe = EvolveRecipe.model_validate(recipe_dict(models, layer_groups=2))
    # ft1 weights (1, 0) over the layers, ft2 weights (0, 1): layer 0 is ft1, layer 1 ft2.
    merge(genome_space(recipe).to_recipe([1.0, 0.0, 0.0, 1.0]), tmp_path / "out")
    out, w1, w2 = weights(tmp_path / "out"), weights(models[1]), weights(models[2])
    name = "model.layers.{}.mlp.down_proj.weight"
    assert torch.allclose(out[name.format(0)], w1[name.format(0)])
    assert torch.allclose(out[name.format(1)], w2[name.format(1)])


def test_cli_writes_the_best_merge_its_lineage_and_every_genome(
    tmp_path: Path, models: list[Path], isolated_db: Path
) -> None:
    from transformers import AutoModelForCausalLM

    path = write_recipe(tmp_path / "evolve.yaml", recipe_dict(models, baselines=True))
    out = tmp_path / "best"
    result = CliRunner().invoke(
        cli, ["merge", "evolve", str(path), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "evaluation 6/6" in result.output and f"source {models[1]}: fitness" in result.output
    AutoModelForCausalLM.from_pretrained(str(out))
    info = lineage(out)
    assert info["method"] == "evolve:linear"
    search_info = info["evolve"]
    assert search_info["evaluations"] == 6 and len(search_info["fitness_per_evaluation"]) == 6
    assert search_info["best_fitness"] == max(search_info["fitness_per_evaluation"])
    assert search_info["sources_fitness"][str(models[1])] == 0.0
    assert search_info["sources_fitness"][str(models[2])] < 0.0
    # the target source itself (distance 0) beats every merge of 6 evaluations: said so
    assert search_info["best_fitness"] < 0.0
    assert f"note: source {models[1]} alone scored 0.0000" in result.output
    assert f"note: source {models[2]} alone" not in result.output
    store = Store(isolated_db)
    (row,) = store.lineage()
    assert isinstance(row, Lineage) and row.kind == "evolve" and row.method == "evolve:linear"
    assert json.loads(row.parameters_json)["evolve"] == search_info
    (run,) = [r for r in store.runs() if r.kind == "evolve"]
    assert run.status == "done"
    steps = store.evolve_steps(run.id)
    assert [s.role for s in steps] == ["source"] * 2 + ["genome"] * 6
    genome_rows = steps[2:]
    assert [s.fitness for s in genome_rows] == search_info["fitness_per_evaluation"]
    params = json.loads(genome_rows[0].parameters_json)
    assert set(params["models"]) == {str(models[1]), str(models[2])}


def test_merge_still_merges_and_its_help_names_evolve(tmp_path: Path, models: list[Path]) -> None:
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(models[1]), "parameters": {"weight": 1.0}},
            {"model": str(models[2]), "parameters": {"weight": 1.0}},
        ],
    }
    path = write_recipe(tmp_path / "plain.yaml", recipe)
    args = ["merge", str(path), "--quiet", "--out", str(tmp_path / "out")]
    assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
    assert lineage(tmp_path / "out")["method"] == "linear"
    shown = CliRunner().invoke(cli, ["merge", "--help"], catch_exceptions=False).output
    assert "evolve" in shown


BAD = {
    "unknown key": ({"serch": {}}, "unknown key 'serch'"),
    "nested unknown key": ({"cma": {"sigma": 0.2}}, "unknown key 'cma.sigma'"),
    "bounds out of order": ({"search": {"weight": [1.0, 0.0]}}, "must be [low, high]"),
    "unknown fitness": ({"fitness": {"kind": "passrate"}}, "unknown fitness 'passrate'"),
    "fitness option": ({"fitness": {"kind": "pass-rate", "split": "test"}}, "test split"),
    "not read by the method": ({"search": {"t": [0.0, 1.0]}}, "linear reads weight"),
    "searched and fixed": ({"parameters": {"weight": 1.0}}, "cannot also be fixed"),
    "missing model": ({"models": [{"model": "/nonexistent/model"}]}, "/nonexistent/model"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_recipe_is_one_line_and_exit_2(
    case: str, tmp_path: Path, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    changes, expected = BAD[case]
    recipe = recipe_dict(models)
    recipe.update(changes)
    path = write_recipe(tmp_path / "bad.yaml", recipe)
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", "evolve", str(path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


class Broken(Fitness):
    """A fitness that cannot be measured here, as pass-rate without a sandbox."""

    name = "broken"

    def score(self, candidate: Candidate) -> Score:
        raise FitnessError("sandbox: no Docker engine answers")


def test_a_fitness_that_cannot_run_stops_the_search_in_one_line(
    tmp_path: Path, models: list[Path], isolated_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_recipe(tmp_path / "evolve.yaml", recipe_dict(models, fitness={"kind": "broken"}))
    with FITNESS.registered("broken", Broken), pytest.raises(SystemExit) as exit_info:
        main(["merge", "evolve", str(path), "--quiet", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Docker engine answers" in err, err
    (run,) = [r for r in Store(isolated_db).runs() if r.kind == "evolve"]
    assert run.status == "error"


def test_pass_rate_runs_a_real_eval_on_the_development_split(
    tmp_path: Path, models: list[Path]
) -> None:
    """A tiny random model, one MBPP validation problem, the process sandbox: 0.0, and
    the eval run is in the log under the search's run."""
    from codeens.merging.pass_rate import PassRate

    store = Store(tmp_path / "evolve.db")
    options = PassRate.Options(problems=1, max_tokens=8, backend_options={"device": "cpu"})
    fitness = PassRate(options, FitnessContext(store=store, run_id="r1", config=_config()))
    score = fitness.score(Candidate(models[1], "evolve-test-source1"))
    assert score.value == 0.0
    assert score.eval_run_id is not None
    run = store.run(score.eval_run_id)
    assert run is not None and run.kind == "eval" and run.parent_id == "r1"
    assert run.status == "done"
    (generation,) = store.generations(run.id)
    assert generation.model == "evolve-test-source1" and generation.target == "511"
