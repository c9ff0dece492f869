"""``codeens merge evolve RECIPE.yaml --out DIR``: search a merge's parameters by CMA-ES."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from codeens.commands.options import MERGE_METHODS, ListsNames, shared_options
from codeens.errors import InputError

if TYPE_CHECKING:
    from codeens.storage import Run, Store

FITNESS = "codeens.merging.fitness:FITNESS"


@click.command("evolve", cls=ListsNames, lists={"Merge methods": MERGE_METHODS, "Fitness": FITNESS})
@click.argument("recipe_path", metavar="RECIPE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@shared_options(
    "config",
    "db",
    "quiet",
    config="Config file: its [sandbox] runs the fitness's programs (default: ./codeens.toml).",
    quiet="No progress or summary on stderr.",
)
def evolve(
    recipe_path: Path, out_dir: Path, config_path: Path | None, db: Path | None, quiet: bool
) -> None:
    """Search the parameters of the merge in RECIPE.yaml with CMA-ES, scoring each
    candidate merge by its fitness (default: pass rate on MBPP's validation split in the
    sandbox), and write the best one to DIR. Every genome measured goes to the log."""
    import json
    import time
    import uuid

    from codeens.config import ConfigError, load_config
    from codeens.merging.evolve import check_sources, search, write_best
    from codeens.merging.evolve_recipe import load_evolve_recipe
    from codeens.merging.fitness import FITNESS, FitnessContext, FitnessError
    from codeens.merging.recipe import RecipeError
    from codeens.models.base import ModelUnavailable
    from codeens.storage import Lineage, Run, Store

    def log(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    try:
        recipe, text = load_evolve_recipe(recipe_path)
        config = load_config(config_path)[0]
        check_sources(recipe)
    except (RecipeError, ConfigError) as exc:
        raise InputError(str(exc)) from exc
    if out_dir.is_dir() and any(out_dir.glob("*.safetensors")):
        raise InputError(f"{out_dir} already holds a model; choose an empty --out")
    store = Store(db)
    run = Run(
        id=uuid.uuid4().hex[:12],
        kind="evolve",
        problem_path=str(recipe_path),
        strategy=f"evolve:{recipe.merge_method}",
        models_json=json.dumps([m.model for m in recipe.models]),
        config_json=recipe.model_dump_json(),
    )
    store.write(run)
    log(f"evolve run {run.id}")
    started = time.monotonic()
    fitness = FITNESS.get(recipe.fitness.kind)
    context = FitnessContext(store=store, run_id=run.id, config=config, log=log)
    try:
        result = search(
            recipe,
            fitness(fitness.Options.model_validate(recipe.fitness.options), context),
            store=store,
            run_id=run.id,
            log=log,
        )
        lineage = write_best(result, out_dir, seed=recipe.cma.seed, log=log)
    except (RecipeError, ModelUnavailable) as exc:
        _finish(store, run, "error", started, {"error": str(exc)})
        raise InputError(str(exc)) from exc
    except FitnessError as exc:
        _finish(store, run, "error", started, {"error": str(exc)})
        raise click.ClickException(f"evolve run {run.id}: {exc}") from exc
    except BaseException:
        _finish(store, run, "interrupted", started, {})
        raise
    store.write(
        Lineage(
            model_dir=lineage["model_dir"],
            kind="evolve",
            method=lineage["method"],
            sources_json=json.dumps(lineage["sources"]),
            parameters_json=json.dumps(
                {**lineage["parameters"], "seed": recipe.cma.seed, "evolve": lineage["evolve"]}
            ),
            recipe=text,
        )
    )
    _finish(store, run, "done", started, lineage["evolve"])
    best = result.best
    log(
        f"best fitness {best.fitness} after {len(result.evaluations)} evaluations "
        f"(stopped by {result.stopped}); merged into {lineage['model_dir']}"
    )
    for source, value in result.sources().items():
        if value is not None and (best.fitness is None or value > best.fitness):
            log(
                f"note: source {source} alone scored {value + 0.0:.4f} "
                "(better than every merge measured)"
            )


def _finish(store: Store, run: Run, status: str, started: float, summary: object) -> None:
    import json
    import time

    run.status = status
    run.wall_s = time.monotonic() - started
    run.summary_json = json.dumps(summary)
    store.write(run)
