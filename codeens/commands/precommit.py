"""``codeens precommit``: suggest verified code for the stubs in the files being committed.

Used as the pre-commit hook ``codeens-suggest``. Files without a stub are dismissed by
parsing alone, so a commit without stubs never loads a model.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from codeens.commands.options import field_option, shared_options
from codeens.errors import InputError


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--write", is_flag=True, help="Apply suggestions that pass every test found.")
@click.option(
    "--budget",
    type=click.FloatRange(1.0, 3600.0),
    default=120.0,
    show_default=True,
    help="Seconds of generation for the whole commit; what is found by then is reported.",
)
@field_option("--samples", field="samples")
@shared_options("config", "db", "quiet")
@click.pass_context
def precommit(
    ctx: click.Context,
    files: tuple[Path, ...],
    write: bool,
    budget: float,
    samples: int | None,
    config_path: Path | None,
    db: Path | None,
    quiet: bool,
) -> None:
    """Print a unified diff of a verified implementation for each stub in FILES.

    Nothing is changed unless --write is given; then only suggestions that pass every test
    found are applied, and the exit code is 1 so that pre-commit reports the change.
    """
    from codeens.problem import NoStubError, ProblemError, load_problem

    started = time.monotonic()
    with_stubs: list[Path] = []
    for path in files:
        if path.suffix != ".py":
            continue
        try:
            load_problem(path)
        except NoStubError:
            continue
        except ProblemError as exc:
            if not path.exists():
                raise InputError(str(exc)) from exc
            click.echo(f"codeens: skipped {path}: {exc}", err=True)
            continue
        with_stubs.append(path)
    if not with_stubs:
        return
    changed = _suggest(with_stubs, write, budget, started, samples, config_path, db, quiet)
    ctx.exit(1 if changed else 0)


def _suggest(
    paths: list[Path],
    write: bool,
    budget: float,
    started: float,
    samples: int | None,
    config_path: Path | None,
    db: Path | None,
    quiet: bool,
) -> bool:
    from codeens.config import ConfigError, load_config
    from codeens.models import locate
    from codeens.models.composite import locations
    from codeens.models.parts import AssemblyError
    from codeens.precommit import related_tests, unified_diff
    from codeens.problem import fill, load_problem
    from codeens.progress import Progress
    from codeens.solve import AllModelsFailed, load_strategy, solve
    from codeens.storage import Store

    try:
        config, _ = load_config(config_path)
        strategy = load_strategy(config.strategy, config)
        locate.prepare([loc for m in config.models for loc in locations(m)])
    except (ConfigError, AssemblyError) as exc:
        raise InputError(str(exc)) from exc
    store = Store(db)
    changed = False
    for path in paths:
        remaining = budget - (time.monotonic() - started)
        if remaining <= 0:
            click.echo(f"codeens: time budget spent; not looked at: {path}")
            continue
        problem = load_problem(path)
        problem = load_problem(path, related_tests(path, [s.name for s in problem.stubs]))
        try:
            with Progress(enabled=None if not quiet else False) as progress:
                report = solve(
                    problem,
                    config,
                    models=list(config.models),
                    strategy=strategy,
                    samples=samples or config.samples,
                    store=store,
                    progress=progress,
                    kind="precommit",
                    budget_s=remaining,
                )
        except AllModelsFailed as exc:
            click.echo(f"codeens: {path}: {exc}")
            continue
        suggested: dict[str, str] = {}
        verified: dict[str, str] = {}
        for target in report.targets:
            chosen = target.decision.chosen
            click.echo(f"codeens: {path}: {target.stub.name}: {_describe(target)}")
            if chosen is None:
                continue
            suggested[target.stub.name] = chosen.code
            if target.status == "solved":
                verified[target.stub.name] = chosen.code
        if suggested:
            click.echo(unified_diff(path, problem.source, fill(problem, suggested)), nl=False)
        if write and verified:
            path.write_text(fill(problem, verified), encoding="utf-8")
            click.echo(f"codeens: wrote {', '.join(verified)} into {path}")
            changed = True
    return changed


def _describe(target: object) -> str:
    from codeens.solve import TargetSummary

    assert isinstance(target, TargetSummary)
    chosen = target.decision.chosen
    if target.out_of_time and chosen is None:
        return "no suggestion within the time budget"
    if chosen is not None and target.status == "unverified":
        models = ", ".join(chosen.models)
        return f"UNVERIFIED suggestion (no tests found; {models}); never written"
    if chosen is None or chosen.result is None:
        return "no candidate could be run"
    result = chosen.result
    models = ", ".join(chosen.models)
    if target.status == "solved":
        return f"verified suggestion ({result.tests_passed}/{result.tests_total} tests, {models})"
    return (
        f"no passing candidate; best passes {result.tests_passed}/{result.tests_total} "
        f"tests ({models}); not written"
    )
