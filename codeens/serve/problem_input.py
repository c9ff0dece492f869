"""Finding a problem in a chat message: Python with stubs, by the ``codeens solve`` rules.

The message's fenced code blocks tagged ``python``/``py`` (or untagged) are tried in
order; without any fenced block the whole message is tried as a bare file. The first that
parses and has a stub is the problem; when none does, the request is plain chat.
"""

from __future__ import annotations

import re
from pathlib import Path

from codeens.problem import Problem, ProblemError, parse_problem

# A fence opens a line; its info string's first word is the language (may be empty).
_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*$")
_PYTHON = {"", "python", "py", "python3"}


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced blocks whose language is Python (or unnamed); an
    unclosed last block runs to the end of the text."""
    blocks: list[str] = []
    fence: str | None = None
    keep = False
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if fence is None:
            match = _OPEN.match(line.rstrip("\r\n"))
            if match:
                fence, keep, current = match.group(1), match.group(2).lower() in _PYTHON, []
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            if keep:
                blocks.append("".join(current))
            fence = None
        else:
            current.append(line)
    if fence is not None and keep:
        blocks.append("".join(current))
    return blocks


def find_problem(text: str, path: Path) -> Problem | None:
    """The first Python source with a stub in ``text``, parsed as the file ``path``
    (whose folder should hold no ``test_<name>.py``: a sibling test file would count)."""
    sources = code_blocks(text) or [text]
    for source in sources:
        try:
            return parse_problem(source, path)
        except ProblemError:
            continue
    return None
