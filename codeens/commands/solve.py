"""``codeens solve``: a verified implementation of the stubs in a Python file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from codeens.commands.options import SANDBOXES, STRATEGIES, field_option, shared_options
from codeens.errors import InputError


@click.command()
@click.argument("problem_path", metavar="PROBLEM", type=click.Path(path_type=Path))
@click.option(
    "--tests",
    "extra_tests",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra test file (repeatable); test_<name>.py beside PROBLEM is automatic.",
)
@click.option(
    "--models",
    "model_names",
    default=None,
    help="Comma-separated model names from the config (default: all).",
)
@field_option("--samples", field="samples")
@field_option("--strategy", "strategy_name", field="strategy", names=STRATEGIES)
@field_option("--seed", field="seed")
@field_option("--backend", field="sandbox.backend", names=SANDBOXES)
@shared_options("config")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the solution here instead of stdout.",
)
@shared_options("db", "json", "quiet", json="One JSON object with everything.")
@click.pass_context
def solve(
    ctx: click.Context,
    problem_path: Path,
    extra_tests: tuple[Path, ...],
    model_names: str | None,
    samples: int | None,
    strategy_name: str | None,
    seed: int | None,
    backend: str | None,
    config_path: Path | None,
    out: Path | None,
    db: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Generate candidates for every stub in PROBLEM, verify them, print the solution.

    Exit code 0 when every stub is solved (the chosen candidate passes every visible test),
    1 when not, 2 for bad input.
    """
    from codeens.commands.options import config_overrides
    from codeens.config import ConfigError, load_config
    from codeens.models import locate
    from codeens.models.composite import locations
    from codeens.models.parts import AssemblyError
    from codeens.problem import ProblemError, load_problem
    from codeens.progress import Progress
    from codeens.registry import UnknownName
    from codeens.solve import AllModelsFailed, load_strategy, solve
    from codeens.storage import Store
    from codeens.strategies.base import StrategyCannotRun

    try:
        config = config_overrides(load_config(config_path)[0])
        names = [n.strip() for n in model_names.split(",") if n.strip()] if model_names else []
        models = [config.model(n) for n in names] if names else list(config.models)
        strategy = load_strategy(config.strategy, config)
        warning = config.sandbox.warning()
        problem = load_problem(problem_path, list(extra_tests))
        locate.prepare([loc for m in models for loc in locations(m)])
    except (ConfigError, ProblemError, UnknownName, AssemblyError) as exc:
        raise InputError(str(exc)) from exc
    if warning is not None:
        click.echo(warning, err=True)

    store = Store(db)
    try:
        with Progress(enabled=None if not quiet else False) as progress:
            report = solve(
                problem,
                config,
                models=models,
                strategy=strategy,
                samples=samples or config.samples,
                store=store,
                progress=progress,
            )
    except AllModelsFailed as exc:
        raise click.ClickException(str(exc)) from exc
    except StrategyCannotRun as exc:
        raise InputError(f"strategy {strategy.name}: {exc}") from exc

    for name, reason in report.failures.items():
        click.echo(f"warning: model {name} failed: {reason}", err=True)
    if as_json:
        click.echo(json.dumps(report_json(report)))
    elif out is not None:
        out.write_text(report.solution, encoding="utf-8")
    else:
        click.echo(report.solution, nl=not report.solution.endswith("\n"))
    if out is not None and as_json:
        out.write_text(report.solution, encoding="utf-8")
    if not as_json:
        for line in summary_lines(report):
            click.echo(line, err=True)
    ctx.exit(0 if report.status == "solved" else 1)


def summary_lines(report: Any) -> list[str]:
    """A short human summary: which model won, pass rate, cost, time."""
    lines = []
    for target in report.targets:
        chosen = target.decision.chosen
        if chosen is None or chosen.result is None:
            lines.append(f"{target.status}: {target.stub.name}: no candidate could run")
            continue
        result = chosen.result
        lines.append(
            f"{target.status}: {target.stub.name} by {', '.join(chosen.models)} "
            f"({result.tests_passed}/{result.tests_total} visible tests, "
            f"{len(target.candidates)} distinct of "
            f"{len(target.samples)} samples)"
        )
    lines.append(
        f"run {report.run_id}: {report.status}, {report.input_tokens}+{report.output_tokens} "
        f"tokens, cost {report.cost:.6f}, {report.wall_s:.1f} s"
    )
    return lines


def report_json(report: Any) -> dict[str, Any]:
    """Everything about the run as one JSON-ready object."""
    chosen: dict[str, Any] = {}
    candidates: list[dict[str, Any]] = []
    traces: dict[str, Any] = {}
    for target in report.targets:
        decision = target.decision
        traces[target.stub.name] = decision.trace
        if decision.chosen is not None:
            result = decision.chosen.result
            chosen[target.stub.name] = {
                "candidate": decision.chosen.hash[:12],
                "models": decision.chosen.models,
                "pass_rate": result.pass_rate if result else None,
                "status": target.status,
            }
        first_of: dict[str, int] = {}
        pool = {c.hash: c for c in target.candidates}
        for generation, sample in target.samples:
            record = pool.get(sample.code_hash or "")
            result = record.result if record else None
            duplicate_of = None
            if sample.code_hash is not None:
                duplicate_of = first_of.setdefault(sample.code_hash, generation)
                duplicate_of = None if duplicate_of == generation else duplicate_of
            candidates.append(
                {
                    "target": target.stub.name,
                    "generation": generation,
                    "model": sample.model.name,
                    "candidate": sample.code_hash[:12] if sample.code_hash else None,
                    "verdict": str(result.verdict) if result else "rejected",
                    "tests_passed": result.tests_passed if result else 0,
                    "tests_total": result.tests_total if result else 0,
                    "duplicate_of": duplicate_of,
                    "cached": sample.generated.cached_from is not None,
                }
            )
    return {
        "run_id": report.run_id,
        "status": report.status,
        "solution": report.solution,
        "chosen": chosen,
        "candidates": candidates,
        "tokens": {"input": report.input_tokens, "output": report.output_tokens},
        "cost": report.cost,
        "wall_s": round(report.wall_s, 3),
        "failures": report.failures,
        "trace": traces,
    }
