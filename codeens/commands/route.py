"""``codeens route``: what the ``route`` strategy would do, and why."""

from __future__ import annotations

from pathlib import Path

import click

from codeens.commands.options import field_option, shared_options
from codeens.errors import InputError

ROUTE_OPTIONS = "codeens.strategies.route:RouteOptions"


@click.group("route")
def route() -> None:
    """kNN routing over the log: which model a problem would be sent to."""


@route.command("explain")
@click.argument("problem_path", metavar="PROBLEM", type=click.Path(path_type=Path))
@shared_options("config", "db")
@field_option("--k", model=ROUTE_OPTIONS, field="k", help="Neighbours")
@field_option(
    "--lambda",
    "willingness_to_pay",
    model=ROUTE_OPTIONS,
    field="willingness_to_pay",
    help="Willingness to pay per unit of P(success)",
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

    from codeens.config import ConfigError, load_config, override
    from codeens.encoders import EncoderUnavailable
    from codeens.problem import ProblemError, load_problem
    from codeens.storage import Store
    from codeens.strategies.route import RouteOptions, fallback_words, plan_route
    from codeens.validation import first_error

    try:
        config, _ = load_config(config_path)
        options = RouteOptions.model_validate(dict(config.strategies.get("route", {})))
        options = override(options, {"k": k, "willingness_to_pay": willingness_to_pay})
        problem = load_problem(problem_path)
    except ValidationError as exc:
        raise InputError(f"config [strategies.route] {first_error(exc)}") from exc
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
