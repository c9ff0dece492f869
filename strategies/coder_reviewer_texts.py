"""The two texts Coder-Reviewer scores for a candidate: its code after the specification
(the coder) and the specification after its code (the reviewer).

Both are a prefix and a continuation, scored as log p(continuation | prefix) by one model:

* coder, p(code | spec): the prefix a base model would continue (the file up to the stub,
  the candidate's own helpers and imports, the stub's signature and docstring) and the
  candidate's function body after its docstring. Only the body is scored: the signature is
  the stub's, and helpers are read as context, as the body that calls them would be.
* reviewer, p(spec | code): the candidate's code without its docstring, then the stub's
  docstring as the value of ``<name>.__doc__``: plain Python that says "the text that
  documents the code above", so any code model reads it without an instruction template.
  The candidate's own docstring must go: models often copy the specification into it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from codeens.extract import normalize
from codeens.problem import Problem
from codeens.prompts import context_before
from codeens.pyast import parse_or_none
from codeens.stub import Stub


@dataclass(frozen=True)
class Texts:
    """One candidate's two (prefix, continuation) pairs; reviewer None without a docstring."""

    coder: tuple[str, str]
    reviewer: tuple[str, str] | None


@dataclass(frozen=True)
class _Parts:
    others: str  # the code around the target function (imports, helpers)
    body: str  # the target's statements after its docstring, as written
    bare: str  # the whole code with the target's docstring removed


def texts(problem: Problem, stub: Stub, code: str) -> Texts:
    """The coder and reviewer texts of ``code``, a candidate for ``stub``."""
    parts = _split(code, stub.name)
    spec = stub.prompt_text.rstrip() + "\n"
    others = parts.others.strip()
    prefix = context_before(problem, stub) + (others + "\n\n\n" if others else "") + spec
    reviewer = None
    if stub.docstring.strip():
        reviewer = (f'{parts.bare.rstrip()}\n\n\n{stub.name}.__doc__ = """', stub.docstring)
    return Texts((prefix, parts.body), reviewer)


def _split(code: str, name: str) -> _Parts:
    """The candidate's parts; the whole code as its body when it cannot be taken apart."""
    tree = parse_or_none(code)
    if tree is None:
        return _Parts("", code, code)
    defs = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    ]
    if not defs:
        return _Parts("", code, normalize(code))
    func = defs[-1]  # the one that counts when a name is defined twice
    lines = code.splitlines(keepends=True)
    first = _start(func)
    end = func.end_lineno or len(lines)
    others = "".join(lines[: first - 1] + lines[end:])
    statements = func.body
    doc = ast.get_docstring(func, clean=False) is not None
    rest = statements[1:] if doc else statements
    if rest and _start(rest[0]) > func.lineno:
        body = "".join(lines[_start(rest[0]) - 1 : end])
    else:  # a one-line def, or a body that is only a docstring: no clean line to cut at
        body = "".join(lines[first - 1 : end])
    if not doc:
        return _Parts(others, body, code)
    node = statements[0]
    if node.lineno == func.lineno or node.end_lineno is None:
        return _Parts(others, body, normalize(code))
    bare = "".join(lines[: node.lineno - 1] + lines[node.end_lineno :])
    return _Parts(others, body, bare)


def _start(node: ast.stmt) -> int:
    """The first line of a statement, its decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])
