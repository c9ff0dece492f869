"""``codeens merge RECIPE.yaml --out DIR``: build one checkpoint from several (mergekit YAML).

``codeens merge evolve RECIPE.yaml --out DIR`` searches a recipe's parameters instead
(:mod:`codeens.commands.merge_evolve`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from codeens.commands.merge_evolve import evolve
from codeens.commands.options import MERGE_METHODS, ListsNames, shared_options
from codeens.errors import InputError


class MergeGroup(ListsNames, click.Group):
    """A command that is also a group: a first argument naming a subcommand (``evolve``)
    runs that subcommand; anything else is the command's own arguments."""

    # The command's own options may follow its argument, and nothing else may.
    allow_interspersed_args = True
    allow_extra_args = False

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if args and args[0] in self.commands:
            # A bare parent: the subcommand's usage must not show RECIPE.yaml before it.
            own = click.Context(click.Command(self.name), info_name=info_name, parent=parent)
            return self.commands[args[0]].make_context(args[0], args[1:], parent=own)
        return super().make_context(info_name, args, parent, **extra)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return click.Command.collect_usage_pieces(self, ctx)


@click.command(
    "merge",
    cls=MergeGroup,
    lists={"Merge methods": MERGE_METHODS},
    invoke_without_command=True,
)
@click.argument("recipe_path", metavar="RECIPE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of DARE's masks.")
@click.option(
    "--max-shard-size",
    type=click.FloatRange(min=0.001),
    default=2048.0,
    show_default=True,
    help="Largest output shard, in MiB.",
)
@shared_options("db", "quiet", quiet="No progress or summary on stderr.")
def merge(
    recipe_path: Path, out_dir: Path, seed: int, max_shard_size: float, db: Path | None, quiet: bool
) -> None:
    """Merge the models of RECIPE.yaml (mergekit's recipe format; methods below) into
    DIR, loadable with AutoModelForCausalLM and usable as a `transformers` model in
    codeens.toml. The lineage goes to the log and to DIR/codeens_lineage.json.

    `codeens merge evolve RECIPE.yaml --out DIR` searches the recipe's parameters
    (evolutionary merging); see `codeens merge evolve --help`."""
    import json

    from codeens.merging.engine import merge as run_merge
    from codeens.merging.recipe import RecipeError, load_recipe
    from codeens.storage import Store
    from codeens.storage.models import Lineage

    def log(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    try:
        recipe, text = load_recipe(recipe_path)
        result = run_merge(
            recipe, out_dir, seed=seed, max_shard_bytes=int(max_shard_size * 1024**2), log=log
        )
    except RecipeError as exc:
        raise InputError(str(exc)) from exc
    Store(db).write(
        Lineage(
            model_dir=result.model_dir,
            kind="merge",
            method=result.method,
            sources_json=json.dumps(result.sources),
            parameters_json=json.dumps({**result.parameters, "seed": seed}),
            recipe=text,
        )
    )
    log(
        f"merged {len(result.sources)} models ({result.method}) into {result.model_dir}: "
        f"{result.tensors} tensors, {len(result.shards)} shard(s), "
        f"{result.bytes / 1024**2:.1f} MiB {result.dtype}, {result.seconds:.1f} s"
    )


merge.add_command(evolve)
