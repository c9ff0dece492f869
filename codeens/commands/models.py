"""``codeens models``: the configured models, the embedded catalog, and what is usable here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from codeens.errors import InputError


@click.command("models")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model and line.")
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
        ok, why = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return {
        "name": model.name,
        "backend": model.backend,
        "kind": "chat" if model.chat else "base",
        "available": ok,
        "state": "available" if ok else f"unavailable: {why}",
    }


def _embedded_row(entry: Any) -> dict[str, Any]:
    """Where the entry's file stands: shipped, joined and verified, or not yet joined."""
    from codeens.models import locate, parts
    from codeens.models.base import ModelUnavailable

    location = entry.config.location
    row: dict[str, Any] = {
        "name": entry.name,
        "parameters": entry.parameters,
        "quantisation": entry.quantisation,
        "licence": entry.licence,
        "source": entry.source,
        "bytes": None,
        "sha256": None,
    }
    if location.startswith(parts.PARTS_PREFIX):
        spec = parts.split_file(location)
        path = locate.joined_path(spec)
        row["bytes"], row["sha256"] = spec.size, spec.sha256
        if parts.verified(path, spec):
            row["file"] = f"assembled, sha256 verified {spec.sha256[:12]}... ({path})"
        else:
            why = locate.check(location)
            row["file"] = (
                f"unusable: {why}"
                if why
                else (
                    f"not assembled yet: joined from {spec.parts} packages on first use, "
                    f"then sha256 checked against {spec.sha256[:12]}..."
                )
            )
        return row
    why = locate.check(location)
    if why:
        row["file"] = f"unusable: {why}"
        return row
    if not _is_shipped(location):
        row["file"] = f"assembled on first use from {entry.source}"
        return row
    try:
        shipped = locate.resolve(location)
    except ModelUnavailable as exc:
        row["file"] = f"unusable: {exc}"
        return row
    row["bytes"] = shipped.stat().st_size
    row["file"] = f"ready ({shipped})"
    return row


def _is_shipped(location: str) -> bool:
    """Whether a ``package:`` location is already a file (shipped, or assembled before)."""
    from codeens.models import locate

    package, relative = locate.split_package(location)
    try:
        shipped = locate.package_dir(package) / relative
    except Exception:
        return False
    return shipped.exists() or (locate.cache_dir() / package / relative).exists()


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"
