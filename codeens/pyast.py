"""Parsing untrusted Python (model output, user files) with :mod:`ast` and ``compile``.

Besides ``SyntaxError``, CPython's parser raises ``ValueError`` (null bytes),
``RecursionError`` (deep nesting) and ``MemoryError`` (huge expressions) on hostile or
degenerate text; every caller treats all four the same way, as "not Python".
"""

from __future__ import annotations

import ast

UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def parse_or_none(source: str) -> ast.Module | None:
    """The module's tree, or None when ``source`` is not Python the parser accepts."""
    try:
        return ast.parse(source)
    except UNPARSABLE:
        return None
