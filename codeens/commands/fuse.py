"""``codeens fuse RECIPE.yaml --out DIR``: knowledge fusion (FuseLLM) into a target model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError

EXAMPLE = """\b
Recipe (YAML):
  sources: [qwen-coder-0.5b, qwen-coder-1.5b]   # embedded names, GGUF files, checkpoints
  target: smollm2
  data: null            # a folder of .py files or a JSONL (text_field); null: MBPP train
  lambda: 0.9           # lambda * CE_lm + (1 - lambda) * CE(target, fused sources)
  fusion: minCE         # or avgCE
  top_k: 10
  steps: null           # null: one epoch
  batch_size: 4
  learning_rate: 2.0e-5
  max_seq_len: 256
  seed: 0"""


@click.command("fuse", epilog=EXAMPLE)
@click.argument("recipe_path", metavar="RECIPE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@shared_options("db", "quiet", quiet="No progress or summary on stderr.")
def fuse(recipe_path: Path, out_dir: Path, db: Path | None, quiet: bool) -> None:
    """Train the recipe's target model on its own text and on the fused next-token
    distributions of the source models, which may use other tokenizers (FuseLLM). DIR
    becomes a transformers checkpoint, usable as a `transformers` model in codeens.toml;
    the lineage goes to the log and to DIR/codeens_lineage.json. Run it again with the
    same recipe and --out to resume after an interruption. Source distributions are
    cached, so a second run with the same sources and data skips them."""
    import json

    from codeens.fusellm.pipeline import fuse as run_fuse
    from codeens.fusellm.recipe import FuseRecipeError, load_fuse_recipe
    from codeens.storage import Store
    from codeens.storage.models import Lineage

    def log(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    try:
        recipe, text = load_fuse_recipe(recipe_path)
        with _Bar(enabled=not quiet) as bar:
            result = run_fuse(recipe, out_dir, log=bar.log if not quiet else log, on_step=bar.step)
    except FuseRecipeError as exc:
        raise InputError(str(exc)) from exc
    Store(db).write(
        Lineage(
            model_dir=result.model_dir,
            kind="fuse",
            method=result.method,
            sources_json=json.dumps(result.sources),
            parameters_json=json.dumps(
                {**result.parameters, "steps_done": result.steps, "matched": result.matched}
            ),
            recipe=text,
        )
    )
    log(
        f"fused {len(recipe.sources)} sources into {recipe.target} at {result.model_dir}: "
        f"{result.texts} texts, {result.steps} steps, loss {result.first_loss:.3f} -> "
        f"{result.last_loss:.3f}, {sum(result.seconds.values()):.0f} s, "
        f"peak memory {result.peak_rss_mib:.0f} MiB"
    )


class _Bar:
    """A progress bar with the loss while training (a line every 10 steps when stderr is
    not a terminal); silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                console=Console(stderr=True),
            )
            self._progress.start()
        return self

    def log(self, line: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)

    def step(self, loss: Any, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task("train", total=total, loss="-")
            self._progress.update(
                self._task, completed=loss.step, loss=f"{loss.loss:.4f}", total=total
            )
        elif loss.step % 10 == 0 or loss.step == total:
            click.echo(
                f"step {loss.step}/{total} loss {loss.loss:.4f} "
                f"(lm {loss.lm:.4f}, fusion {loss.fusion:.4f})",
                err=True,
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
