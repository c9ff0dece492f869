"""``codeens serve``: the ensemble behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

from pathlib import Path

import click

from codeens.commands.options import field_option, shared_options
from codeens.errors import InputError

SETTINGS = "codeens.serve.settings:ServeSettings"


@click.command()
@field_option("--host", field="host", model=SETTINGS, default="field")
@field_option("--port", field="port", model=SETTINGS, default="field")
@shared_options("config", "db")
@field_option("--api-key-env", field="api_key_env", model=SETTINGS, default="field")
@field_option("--max-concurrent", field="max_concurrent", model=SETTINGS, default="field")
@field_option("--queue", field="queue", model=SETTINGS, default="field")
@field_option("--deadline-s", field="deadline_s", model=SETTINGS, default="field")
@field_option("--max-body-bytes", field="max_body_bytes", model=SETTINGS, default="field")
@field_option("--max-n", field="max_n", model=SETTINGS, default="field")
def serve(
    host: str,
    port: int,
    config_path: Path | None,
    db: Path | None,
    api_key_env: str | None,
    max_concurrent: int,
    queue: int,
    deadline_s: float,
    max_body_bytes: int,
    max_n: int,
) -> None:
    """Serve the configured ensemble over an OpenAI-compatible HTTP API.

    A message with Python stubs is solved and verified in the sandbox; any other message
    is plain chat. Binds 127.0.0.1 unless told otherwise; another address needs
    --api-key-env. Every request is logged as a run of kind "serve".
    """
    from pydantic import ValidationError

    from codeens.config import ConfigError, load_config
    from codeens.models import locate
    from codeens.models.composite import locations
    from codeens.models.parts import AssemblyError
    from codeens.registry import UnknownName
    from codeens.sandbox.errors import SandboxUnavailable
    from codeens.serve.settings import ServeSettings, api_key
    from codeens.solve import load_strategy
    from codeens.storage import Store
    from codeens.validation import first_error

    try:
        settings = ServeSettings(
            host=host,
            port=port,
            api_key_env=api_key_env,
            max_concurrent=max_concurrent,
            queue=queue,
            deadline_s=deadline_s,
            max_body_bytes=max_body_bytes,
            max_n=max_n,
        )
        key = api_key(settings)
        config = load_config(config_path)[0]
        load_strategy(config.strategy, config)
        locate.prepare([loc for m in config.models for loc in locations(m)])
    except ValidationError as exc:
        raise InputError(first_error(exc)) from exc
    except (ValueError, ConfigError, UnknownName, AssemblyError) as exc:
        raise InputError(str(exc)) from exc
    warning = config.sandbox.warning()
    if warning is not None:
        click.echo(warning, err=True)

    from codeens.serve.app import create_app
    from codeens.serve.engine import Engine
    from codeens.serve.server import serve as run_server

    store = Store(db)
    try:
        sandbox = config.sandbox.open()
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    engine = Engine(config, store, sandbox)

    def announce(url: str) -> None:
        names = ", ".join(m.name for m in config.models)
        click.echo(
            f"codeens serve: {url}/v1 (members: {names}; strategy {config.strategy})", err=True
        )

    try:
        run_server(create_app(engine, settings, key), settings.host, settings.port, announce)
    except KeyboardInterrupt:
        # Ctrl-C is how a server is stopped; uvicorn re-raises it once it has shut down
        # (accepted requests finished and logged).
        click.echo("codeens serve: stopped", err=True)
    finally:
        engine.close()
        sandbox.close()
