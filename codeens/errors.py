"""Errors that end a command with one clear line."""

from __future__ import annotations

import click


class InputError(click.ClickException):
    """The user's input cannot be used: exit code 2, one line, no traceback."""

    exit_code = 2
