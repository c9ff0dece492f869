"""``codeens route``: what the ``route`` strategy would do, and why."""

from __future__ import annotations

from pathlib import Path

import click

from codeens.errors import InputError


@click.group("route")
def route() -> None:
    """kNN routing over the log: which model a problem would be sent to."""


@route.command("explain")
@click.argument("problem_path", metavar="PROBLEM", type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: ./codeens.toml, else the embedded models).",
)
@click.option("--db", type=click.Path(path_type=Path), default=None, help="SQLite log file.")
@click.option("--k", type=click.IntRange(1), default=None, help="Neighbours (default: 5).")
@click.option(
    "--lambda",
    "willingness_to_pay",
    type=click.FloatRange(0),
    default=None,
    help="Willingness to pay per unit of P(success) (default: 1.0).",
)
def explain(
    problem_path: Path,
    config_path: Path | None,
    db: Path | None,
    k: int | None,
    willingness_to_pay: float | None,
) -> None:
    """Show PROBLEM's nearest past problems, each model's P(success), cost and score, and
    the model `route` would choose. Options default to [strategies.route] in the config."""
    from pydantic import ValidationError

    from codeens.config import ConfigError, load_config
    from codeens.encoders import EncoderUnavailable
    from codeens.problem import ProblemError, load_problem
    from codeens.storage import Store
    from codeens.strategies.route import RouteOptions, fallback_words, plan_route

    try:
        config, _ = load_config(config_path)
        options = RouteOptions.model_validate(dict(config.strategies.get("route", {})))
        overrides = {"k": k, "willingness_to_pay": willingness_to_pay}
        options = options.model_copy(update={n: v for n, v in overrides.items() if v is not None})
        problem = load_problem(problem_path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"config [strategies.route] {where}: {first['msg']}") from exc
    except (ConfigError, ProblemError) as exc:
        raise InputError(str(exc)) from exc
    store = Store(db)
    models = list(config.models)
    for stub in problem.stubs:
        try:
            plan = plan_route(store, models, problem.source, stub.name, options)
        except EncoderUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        if plan.fallback is not None and not plan.neighbours:
            click.echo(
                f"{stub.name}: no history in {store.path} ({plan.fallback}); "
                f"route would use {fallback_words(plan)}"
            )
            continue
        click.echo(f"{stub.name}: {len(plan.neighbours)} nearest past problem(s), k={options.k}")
        for n in plan.neighbours:
            click.echo(f"  {n.similarity:6.3f}  {n.problem_path}  {n.target}")
        click.echo(f"  {'model':16} {'P':>6} {'cost/sample':>12} {'score':>12}  neighbours")
        for e in plan.estimates:
            p = "-" if e.p is None else f"{e.p:.3f}"
            score = "-" if e.score is None else f"{e.score:.6g}"
            click.echo(f"  {e.model:16} {p:>6} {e.cost:>12.6g} {score:>12}  {e.neighbours}")
        lam = options.willingness_to_pay
        if plan.fallback is not None:
            click.echo(f"  -> no routing ({plan.fallback}): {fallback_words(plan)}")
        else:
            click.echo(f"  -> {plan.chosen[0]} (max {lam:g} * P - cost)")
