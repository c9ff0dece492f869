"""A sandbox result as ``codeens sandbox run`` prints it for people."""

from __future__ import annotations

import click


def print_result(result: object) -> None:
    """One candidate's verdict for people: a line, its message, each test that failed."""
    from codeens.sandbox.results import ExecutionResult

    assert isinstance(result, ExecutionResult)
    line = (
        f"{result.verdict.upper():<12} {result.candidate}  "
        f"{result.tests_passed}/{result.tests_total} tests  {result.duration:.2f}s"
    )
    click.echo(line)
    if result.message:
        click.echo(f"    {result.message}")
    for test in result.tests:
        if test.outcome != "passed":
            last = test.message.strip().splitlines()[-1:] or [""]
            click.echo(f"    {test.outcome}: {test.name}: {last[0]}")
