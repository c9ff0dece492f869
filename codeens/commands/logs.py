"""``codeens logs``: recent runs, and one run in full."""

from __future__ import annotations

import json
from pathlib import Path

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError


@click.group("logs", invoke_without_command=True)
@shared_options("db")
@click.option("-n", "--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--all", "everything", is_flag=True, help="Also the per-problem runs of eval runs.")
@click.pass_context
def logs(ctx: click.Context, db: Path | None, limit: int, everything: bool) -> None:
    """List recent runs (newest first)."""
    ctx.obj = db
    if ctx.invoked_subcommand is not None:
        return
    from codeens.storage import Store

    for run in Store(db).runs(limit, children=everything):
        models = ",".join(json.loads(run.models_json))
        click.echo(
            f"{run.id}  {run.created_at:%Y-%m-%d %H:%M:%S}  {run.status:10} {run.strategy:10} "
            f"{models:24} {run.wall_s:7.1f}s  {run.problem_path}"
        )


@logs.command("show")
@click.argument("run_id")
@shared_options("json")
@click.pass_obj
def show(db: Path | None, run_id: str, as_json: bool) -> None:
    """Show one run: its generations, executions and decisions."""
    from codeens.storage import Store

    store = Store(db)
    run = store.run(run_id)
    if run is None:
        raise InputError(f"no run {run_id!r} in {store.path} (see `codeens logs`)")
    generations = store.generations(run.id)
    executions = store.executions(run_id=run.id, limit=100000)
    decisions = store.decisions(run.id)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run": run.model_dump(mode="json"),
                    "generations": [g.model_dump(mode="json") for g in generations],
                    "executions": [e.model_dump(mode="json") for e in executions],
                    "decisions": [d.model_dump(mode="json") for d in decisions],
                }
            )
        )
        return
    click.echo(f"run {run.id}  {run.status}  strategy {run.strategy}  {run.problem_path}")
    click.echo(
        f"  {run.wall_s:.1f} s, {run.input_tokens}+{run.output_tokens} tokens, cost {run.cost:.6f}"
    )
    for g in generations:
        cached = " (cached)" if g.cached_from else ""
        code = "code" if g.code else "rejected"
        click.echo(
            f"  generation {g.id} {g.target} {g.model} seed {g.seed}: {code}, "
            f"{g.output_tokens} tokens, {g.latency_s:.2f}s{cached}"
        )
    for e in reversed(executions):
        click.echo(
            f"  execution {e.candidate}: {e.verdict} {e.tests_passed}/{e.tests_total} "
            f"{e.duration_s:.2f}s"
        )
    for d in decisions:
        chosen = d.chosen_hash[:12] if d.chosen_hash else "-"
        click.echo(f"  decision {d.target}: {d.status} via {d.strategy}, chose {chosen}")
