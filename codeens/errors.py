"""Errors that end a command with one clear line."""

from __future__ import annotations

import click


class InputError(click.ClickException):
    """The user's input cannot be used: exit code 2, one line, no traceback."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name if it has none.

    Library errors (transformers, docker, HTTP clients) can run to pages; a report or a
    one-line error keeps only the line that names the problem.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
