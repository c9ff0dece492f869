"""``codeens report``: Markdown and HTML reports of eval runs, or the difference of two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--compare",
    nargs=2,
    metavar="RUN_A RUN_B",
    default=None,
    help="Report the differences between two eval runs instead.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for report.md, report.html and plots/.",
)
@shared_options("db")
def report(run_id: str | None, compare: tuple[str, str] | None, out: Path, db: Path | None) -> None:
    """Write the report of eval run RUN_ID (an unfinished run gives a partial report)."""
    from codeens.evals import report as reports
    from codeens.storage import Store

    if (run_id is None) == (compare is None):
        raise InputError("give one RUN_ID, or --compare RUN_A RUN_B")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    store = Store(db)
    if compare is not None:
        first, second = (_summary(store, r) for r in compare)
        paths = reports.compare_report(first, second, out)
    else:
        assert run_id is not None
        paths = reports.run_report(_summary(store, run_id), out)
    for path in paths:
        click.echo(str(path))


def _summary(store: Any, run_id: str) -> dict[str, Any]:
    from codeens.evals.benchmarks import BenchmarkError
    from codeens.evals.summary import summarize

    run = store.run(run_id)
    if run is None or run.kind != "eval":
        raise InputError(f"no eval run {run_id!r} in {store.path}")
    if run.status == "done":
        saved: dict[str, Any] = json.loads(run.summary_json or "{}")
        if "strategies" in saved:
            return saved
    try:
        return summarize(store, run)
    except BenchmarkError as exc:
        raise InputError(f"eval run {run.id}: {exc}") from exc
