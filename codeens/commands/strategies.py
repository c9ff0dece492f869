"""``codeens strategies``: the registered combination strategies."""

from __future__ import annotations

import click


@click.command("strategies")
def strategies_command() -> None:
    """List the strategies `--strategy NAME` accepts."""
    from codeens.strategies.base import STRATEGIES

    for name in STRATEGIES.names():
        try:
            summary = STRATEGIES.get(name).summary
        except Exception as exc:  # a broken plugin must not hide the others
            summary = f"(cannot be loaded: {type(exc).__name__}: {exc})"
        click.echo(f"{name:16} {summary}")
