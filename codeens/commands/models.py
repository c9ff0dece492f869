"""``codeens models``: the configured models, the embedded catalog, and what is usable here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from codeens.commands.options import shared_options
from codeens.errors import InputError, first_line


@click.command("models")
@shared_options("config", "json", json="One JSON object per model and line.")
def models_command(config_path: Path | None, as_json: bool) -> None:
    """List the configured models (the embedded default without a config), then every
    embedded model with its size, quantisation, licence and whether its file is ready.

    Nothing is assembled or loaded: a split model not yet joined shows as such.
    """
    from codeens.config import ConfigError, load_config
    from codeens.embedded import CATALOG

    try:
        config, source = load_config(config_path)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    configured = [_configured_row(model) for model in config.models]
    catalog = [_embedded_row(entry) for entry in CATALOG]
    if as_json:
        for row in configured:
            click.echo(json.dumps({"section": "configured", **row}))
        for row in catalog:
            click.echo(json.dumps({"section": "embedded", **row}))
        return
    click.echo(f"# models from {source or 'the embedded default'}")
    for row in configured:
        click.echo(f"{row['name']:16} {row['backend']:12} {row['kind']:5} {row['state']}")
    click.echo("# embedded models (any of them can be named with --models)")
    for row in catalog:
        click.echo(
            f"{row['name']:16} {row['parameters']:>5} {row['quantisation']:7} "
            f"{row['licence']:19} {_size(row['bytes']):>8}  {row['file']}"
        )


def _configured_row(model: Any) -> dict[str, Any]:
    from codeens.models.base import MODELS
    from codeens.registry import UnknownName

    try:
        ok, why = MODELS.get(model.backend)(model).available()
    except UnknownName as exc:
        ok, why = False, str(exc)
    except Exception as exc:
        ok, why = False, first_line(exc)
    return {
        "name": model.name,
        "backend": model.backend,
        "kind": "chat" if model.chat else "base",
        "available": ok,
        "state": "available" if ok else f"unavailable: {why}",
    }


def _embedded_row(entry: Any) -> dict[str, Any]:
    """Where the entry's file stands: ready (and verified), not yet joined, or unusable."""
    from codeens.models import locate, parts

    location = entry.config.location
    split = location.startswith(parts.PARTS_PREFIX)
    spec = parts.split_file(location) if split else None
    path = locate.ready(location)
    row: dict[str, Any] = {
        "name": entry.name,
        "parameters": entry.parameters,
        "quantisation": entry.quantisation,
        "licence": entry.licence,
        "source": entry.source,
        "bytes": spec.size if spec else (path.stat().st_size if path else None),
        "sha256": spec.sha256 if spec else None,
    }
    why = "" if path else locate.check(location)
    if why:
        row["file"] = f"unusable: {why}"
    elif path is None:
        checked = f", then sha256 checked against {spec.sha256[:12]}..." if spec else ""
        row["file"] = f"not assembled yet: joined from {entry.source} on first use{checked}"
    elif spec is not None:
        row["file"] = f"assembled, sha256 verified {spec.sha256[:12]}... ({path})"
    else:
        row["file"] = f"ready ({path})"
    return row


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"
