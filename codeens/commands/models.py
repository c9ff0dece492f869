"""``codeens models``: the configured models and whether each can be used here."""

from __future__ import annotations

from pathlib import Path

import click

from codeens.errors import InputError


@click.command("models")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
def models_command(config_path: Path | None) -> None:
    """List the configured models (the embedded default without a config)."""
    from codeens.config import ConfigError, load_config
    from codeens.models.base import MODELS
    from codeens.registry import UnknownName

    try:
        config, source = load_config(config_path)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    click.echo(f"# models from {source or 'the embedded default'}")
    for model in config.models:
        try:
            ok, why = MODELS.get(model.backend)(model).available()
        except UnknownName as exc:
            ok, why = False, str(exc)
        except Exception as exc:
            ok, why = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        state = "available" if ok else f"unavailable: {why}"
        kind = "chat" if model.chat else "base"
        click.echo(f"{model.name:16} {model.backend:12} {kind:5} {state}")
