"""The ``codeens`` command line. Subcommands load lazily so ``--help`` stays fast."""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any

import click

from codeens import __version__

# name -> "module:attribute"; nothing here is imported until the command runs.
COMMANDS = {
    "cascade": "codeens.commands.cascade:cascade",
    "eval": "codeens.commands.eval:eval_command",
    "fuse": "codeens.commands.fuse:fuse",
    "logs": "codeens.commands.logs:logs",
    "merge": "codeens.commands.merge:merge",
    "models": "codeens.commands.models:models_command",
    "moe": "codeens.commands.moe:moe",
    "precommit": "codeens.commands.precommit:precommit",
    "report": "codeens.commands.report:report",
    "route": "codeens.commands.route:route",
    "sandbox": "codeens.commands.sandbox:sandbox",
    "serve": "codeens.commands.serve:serve",
    "solve": "codeens.commands.solve:solve",
    "strategies": "codeens.commands.strategies:strategies_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(__version__, prog_name="codeens")
def cli() -> None:
    """codeens: ask several models for code, verify every candidate in a sandbox, combine."""


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM or SIGINT: close the sandboxes first (their containers go now, and queued
    work fails fast), then unwind normally so that what is recorded stays recorded."""
    base = sys.modules.get("codeens.sandbox.backends.base")
    if base is not None:
        base.close_open_sandboxes()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error ends in one line on stderr and exit code 2."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        code = cli.main(args=argv, prog_name="codeens", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
