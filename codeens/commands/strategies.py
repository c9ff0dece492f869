"""``codeens strategies``: the registered combination strategies."""

from __future__ import annotations

import click


@click.command("strategies")
def strategies_command() -> None:
    """List the strategies `--strategy NAME` accepts."""
    from codeens.strategies.base import STRATEGIES

    for name in STRATEGIES.names():
        strategy = STRATEGIES.get(name)
        click.echo(f"{name:16} {strategy.summary}")
