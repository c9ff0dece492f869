"""The ``codeens`` command line. Subcommands load lazily so ``--help`` stays fast."""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading
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
    code = _run(argv)
    if argv is None:  # the console script: nothing runs after this process
        _exit_now(code)
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """The command's exit code (an unexpected error still raises)."""
    try:
        code = cli.main(args=argv, prog_name="codeens", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    return code if isinstance(code, int) else 0


def _exit_now(code: int) -> None:
    """End the process as the interpreter would, minus tearing it down: other threads are
    waited for and exit handlers run, then the process ends without freeing every object
    one by one (0.2 s here once SQLAlchemy and docker are loaded; nothing is left to
    flush by then, the log commits as it goes)."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what was written is all there is
            pass
    os._exit(code)
