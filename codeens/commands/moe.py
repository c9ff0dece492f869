"""``codeens moe build``: a sparse Mixture-of-Experts checkpoint from dense models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError


@click.group("moe")
def moe() -> None:
    """Build Mixture-of-Experts models from dense ones (mergekit-moe recipes)."""


@moe.command("build")
@click.argument("recipe_path", metavar="RECIPE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@click.option("--force", is_flag=True, help="Replace OUT if it already exists.")
@click.option(
    "--max-shard-mb",
    type=click.IntRange(1),
    default=2048,
    show_default=True,
    help="Largest safetensors shard.",
)
@shared_options("db")
def build(
    recipe_path: Path, out_dir: Path, force: bool, max_shard_mb: int, db: Path | None
) -> None:
    """Build the MoE described by RECIPE.yaml into --out.

    Attention, norms and embeddings come from base_model; each expert's MLPs from its
    source_model; routers from the gate_mode. The result is a Mixtral checkpoint that the
    transformers backend loads (backend "transformers", location OUT). Its lineage is
    recorded in the log and in OUT/codeens_lineage.json.
    """
    from codeens.moe.build import build_moe
    from codeens.moe.recipe import MoEError, load_recipe

    try:
        recipe, text = load_recipe(recipe_path)
    except MoEError as exc:
        raise InputError(str(exc)) from exc
    out_dir = out_dir.expanduser().absolute()
    exists = out_dir.exists() and (out_dir.is_file() or any(out_dir.iterdir()))
    if exists and not force:
        raise InputError(f"{out_dir} already exists; use --force to replace it")
    target = out_dir
    if out_dir.exists():  # --force: the old directory stays until the new build is complete
        target = out_dir.with_name(out_dir.name + ".new")
        shutil.rmtree(target, ignore_errors=True)  # left by an interrupted --force
    try:
        built = build_moe(
            recipe,
            text,
            target,
            recipe_dir=recipe_path.parent,
            max_shard_bytes=max_shard_mb << 20,
            warn=lambda line: click.echo(f"warning: {line}", err=True),
        )
    except MoEError as exc:
        raise InputError(str(exc)) from exc
    if built.out_dir != out_dir:
        if out_dir.is_dir():
            shutil.rmtree(out_dir)
        else:
            out_dir.unlink()
        built.out_dir.rename(out_dir)
    _record(db, out_dir, built.lineage)
    params = built.lineage["parameters"]
    click.echo(str(out_dir))
    click.echo(
        f"built {recipe.architecture} MoE: {params['num_experts']} experts, top-"
        f"{params['experts_per_token']}, gates {params['gate_mode']}, {params['dtype']}, "
        f"{params['bytes'] / 1e6:.1f} MB in {built.seconds:.1f} s",
        err=True,
    )


def _record(db: Path | None, out_dir: Path, lineage: dict[str, object]) -> None:
    """The one Lineage row for this build, through the store's single write path."""
    from codeens.storage import Store
    from codeens.storage.models import Lineage

    sources = [
        {k: v for k, v in source.items() if k in ("role", "location", "path")}
        for source in lineage["sources"]  # type: ignore[attr-defined]
    ]
    Store(db).write(
        Lineage(
            model_dir=str(out_dir),
            kind="moe",
            method=str(lineage["method"]),
            sources_json=json.dumps(sources),
            parameters_json=json.dumps(lineage["parameters"]),
            recipe=str(lineage["recipe"]),
        )
    )
