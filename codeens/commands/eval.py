"""``codeens eval``: models and strategies on HumanEval or MBPP, scored on hidden tests."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codeens.commands.options import (
    BENCHMARKS,
    STRATEGIES,
    ListsNames,
    field_option,
    registry_names,
    shared_options,
)
from codeens.errors import InputError

if TYPE_CHECKING:
    from codeens.evals.spec import EvalSpec


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@click.command("eval", cls=ListsNames, lists={"Benchmarks": BENCHMARKS})
@click.argument("benchmark", required=False)
@click.option("--split", default=None, help="test (default), validation, train, prompt, ...")
@click.option("--limit", type=click.IntRange(1), default=None, help="The first N problems.")
@click.option("--problems", "problem_ids", default=None, help="Comma-separated task ids.")
@click.option("--models", "model_names", default=None, help="Comma-separated model names.")
@field_option(
    "--strategies",
    "strategy_names",
    names=STRATEGIES,
    help="Comma-separated, any of {names} (default: the config's strategy)",
)
@field_option("--samples", field="samples")
@field_option("--workers", field="sandbox.workers")
@field_option("--seed", field="seed")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="MBPP: a folder with mbpp.jsonl and sanitized-mbpp.json, or 'hub' for the datasets "
    "library (default: the copy shipped with codeens).",
)
@click.option("--resume", "resume_id", default=None, help="Continue an interrupted run.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run the problems as Ray tasks on the cluster at ADDRESS (host:port, auto or "
    "ray://...); alone, on a local one started for the run. Put BENCHMARK before it.",
)
@shared_options("config", "db", "json", "quiet", json="Print the summary as JSON.")
def eval_command(
    benchmark: str | None,
    split: str | None,
    limit: int | None,
    problem_ids: str | None,
    model_names: str | None,
    strategy_names: str | None,
    samples: int | None,
    workers: int | None,
    seed: int | None,
    data: Path | None,
    resume_id: str | None,
    ray_address: str | None,
    config_path: Path | None,
    db: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Evaluate on BENCHMARK (names below): every model samples once, every strategy
    chooses from those samples on the visible tests, the hidden tests score the choice.

    Interrupted runs continue with --resume RUN_ID. `codeens report RUN_ID` writes the
    report.
    """
    from codeens.evals import runner
    from codeens.evals.summary import summarize
    from codeens.progress import Progress
    from codeens.storage import Store

    address = _ray_address(ray_address)
    if ray_address is not None:  # before anything is recorded: an unreachable one is refused
        from codeens.evals import distributed

        try:
            distributed.connect(address)
        except ConnectionError as exc:
            raise InputError(f"--ray: {exc}") from exc
    store = Store(db)
    if resume_id is not None:
        if benchmark is not None:
            raise InputError("--resume continues a recorded run: give no BENCHMARK with it")
        run = store.run(resume_id)
        if run is None or run.kind != "eval":
            raise InputError(f"no eval run {resume_id!r} in {store.path}")
        if run.status == "done":
            raise InputError(f"eval run {run.id} already finished: codeens report {run.id}")
    else:
        if benchmark is None:
            names = " or ".join(registry_names(BENCHMARKS))
            raise InputError(f"give a BENCHMARK ({names}) or --resume RUN_ID")
        spec = _spec(benchmark, click.get_current_context().params)
        run = runner.start(spec, store)
    _prepare(runner.spec_of(run))
    warning = _sandbox_warning(runner.spec_of(run))
    if warning is not None:
        click.echo(warning, err=True)
    click.echo(f"eval run {run.id} (resume with: codeens eval --resume {run.id})", err=True)
    try:
        with Progress(enabled=None if not quiet else False) as progress:
            if ray_address is None:
                run = runner.execute(run, store, progress)
            else:
                run = _on_ray(run, store, progress, address)
    except KeyboardInterrupt:
        click.echo(f"interrupted; continue with: codeens eval --resume {run.id}", err=True)
        raise
    summary = summarize(store, run)
    run.summary_json = json.dumps(summary)
    store.write(run)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_tables(summary)


def _ray_address(value: str | None) -> str | None:
    """The cluster address --ray names (None: a local cluster, or no --ray at all)."""
    if value is None or value == "local":
        return None
    if value == "auto" or value.startswith("ray://") or _host_port(value):
        return value
    raise InputError(
        f"--ray {value}: not a cluster address (host:port, auto or ray://host:port); "
        "give BENCHMARK before --ray"
    )


def _host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit()


def _on_ray(run: Any, store: Any, progress: Any, address: str | None) -> Any:
    """The run on a Ray cluster; a problem that fails there ends it with one line."""
    from codeens.evals import distributed

    try:
        run, stats = distributed.execute(run, store, progress, address)
    except distributed.RemoteFailure as exc:
        click.echo(f"interrupted; continue with: codeens eval --resume {run.id}", err=True)
        raise click.ClickException(f"on a Ray worker: {exc}") from exc
    click.echo(stats.line(), err=True)
    return run


def _prepare(spec: EvalSpec) -> None:
    """Join and verify the split model files the run uses before anything is sampled."""
    from codeens.models import locate
    from codeens.models.composite import locations
    from codeens.models.parts import AssemblyError

    try:
        locate.prepare([loc for name in spec.models for loc in locations(spec.config.model(name))])
    except AssemblyError as exc:
        raise InputError(str(exc)) from exc


def _sandbox_warning(spec: EvalSpec) -> str | None:
    from codeens.registry import UnknownName

    try:
        return spec.config.sandbox.warning()
    except UnknownName as exc:
        raise InputError(str(exc)) from exc


def _spec(benchmark: str, params: dict[str, Any]) -> EvalSpec:
    """The EvalSpec the command line asks for; InputError for anything unusable."""
    from codeens.commands.options import config_overrides
    from codeens.config import ConfigError, load_config
    from codeens.evals.benchmarks import BENCHMARKS, BenchmarkError, select
    from codeens.evals.spec import EvalSpec
    from codeens.registry import UnknownName
    from codeens.solve import load_strategy

    data: Path | None = params["data"]
    if params["limit"] is not None and params["problem_ids"]:
        raise InputError("give --limit or --problems, not both")
    try:
        config = config_overrides(load_config(params["config_path"])[0])
        models = _names(params["model_names"]) or [m.name for m in config.models]
        for name in models:
            config.model(name)
        strategies = _names(params["strategy_names"]) or [config.strategy]
        for name in strategies:
            load_strategy(name, config)
        config.sandbox.warning()  # an unknown backend fails here, before anything runs
        bench = BENCHMARKS.get(benchmark)()
        chosen_split = params["split"] or bench.default_split
        problems = select(
            bench.load(chosen_split, data), params["limit"], _names(params["problem_ids"])
        )
    except (ConfigError, UnknownName, BenchmarkError) as exc:
        raise InputError(str(exc)) from exc
    if not problems:
        raise InputError(f"{benchmark} {chosen_split}: no problems selected")
    return EvalSpec(
        benchmark=benchmark,
        split=chosen_split,
        data=None if data is None else str(data if str(data) == "hub" else data.absolute()),
        task_ids=tuple(p.task_id for p in problems),
        models=tuple(models),
        strategies=tuple(dict.fromkeys(strategies)),
        samples=params["samples"] or config.samples,
        config=config,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def print_tables(summary: dict[str, Any]) -> None:
    """The headline and the per-model and per-strategy tables, on stdout."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Piped output keeps whole rows (a table is never wider than its contents).
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
    console.print(
        f"{summary['benchmark']} {summary['split']}: {summary['problems_done']} of "
        f"{summary['problems_total']} problems, {summary['samples']} samples per model, "
        f"oracle {_pct(summary['oracle'])}%",
        markup=False,
    )
    models = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in ("model", "pass@1", "95% CI", "CodeBLEU", "CBS-F1"):
        models.add_column(header, justify="left" if header == "model" else "right")
    for name, row in summary["models"].items():
        models.add_row(
            name,
            _pct(row["pass@1"]),
            _interval(row["pass@1_ci"]),
            _num(row["codebleu"]),
            _num(row["codebertscore_f1"]),
        )
    strategies = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    headers = ("strategy", "pass@1", "95% CI", "oracle", "effic.", "tokens", "cost")
    for header in (*headers, "p50 s", "p95 s"):
        strategies.add_column(header, justify="left" if header == "strategy" else "right")
    for name, row in summary["strategies"].items():
        strategies.add_row(
            name,
            _pct(row["pass@1"]),
            _interval(row["pass@1_ci"]),
            _pct(row["oracle"]),
            _pct(row["selection_efficiency"]),
            str(row["tokens"]),
            _num(row["cost"], 6),
            _num(row["latency_p50_s"], 2),
            _num(row["latency_p95_s"], 2),
        )
    console.print(models)
    console.print(strategies)


def _interval(bounds: list[float | None]) -> str:
    low, high = bounds
    return f"{_pct(low)}-{_pct(high)}"
