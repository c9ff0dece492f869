"""first_line: the one line of an exception that a report or an error message keeps."""

from __future__ import annotations

import pytest

from codeens.errors import first_line


class DiskFull(OSError):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad value"), "bad value"),
        (RuntimeError("cannot load\n  File x.py, line 3\nTraceback..."), "cannot load"),
        (RuntimeError("\n\n   \n  first real line  \nsecond"), "first real line"),
        (KeyError("missing"), "'missing'"),
    ],
)
def test_first_line_keeps_the_first_non_empty_line(exc: BaseException, expected: str) -> None:
    assert first_line(exc) == expected


@pytest.mark.parametrize("exc", [ValueError(), ValueError(""), ValueError("  \n\t\n")])
def test_an_empty_message_gives_the_type_name(exc: BaseException) -> None:
    assert first_line(exc) == "ValueError"


def test_the_type_name_is_the_exceptions_own_class() -> None:
    assert first_line(DiskFull()) == "DiskFull"
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
