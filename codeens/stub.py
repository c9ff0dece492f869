"""A stub: one top-level function of a problem file that is to be implemented."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stub:
    """A top-level function to implement.

    ``signature`` is the ``def`` header up to its colon (``async`` included, decorators in
    ``decorators``); ``docstring`` is the cleaned docstring value or ""; ``start_byte`` and
    ``end_byte`` span the whole definition, decorators included; ``prompt_text`` is the
    definition as written up to the end of its docstring (or header), plus a newline: what a
    base model should continue. ``marked`` says a ``# codeens: implement`` line chose it.
    """

    name: str
    signature: str
    decorators: tuple[str, ...]
    docstring: str
    start_byte: int
    end_byte: int
    is_async: bool
    prompt_text: str
    marked: bool = False
