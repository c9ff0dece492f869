"""Keep the user's signature and docstring when a model's function fits under them.

Models often drop type annotations or the docstring, or rename nothing but rewrite the
header. The solution should read as the user's file with the body filled in, so when the
model's function takes exactly the stub's parameters, its body is placed under the stub's
own header and docstring; otherwise the model's definition is kept as written.
"""

from __future__ import annotations

import ast

from codeens.pyast import parse_or_none
from codeens.stub import Stub


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = fn.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names


def _function(source: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    tree = parse_or_none(source)
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def adopt_stub_header(code: str, stub: Stub) -> str:
    """``code`` with the target function's header and docstring taken from the stub."""
    header = stub.prompt_text.replace("\r\n", "\n").rstrip("\n") + "\n"
    theirs = _function(code, stub.name)
    ours = _function(header + "    ...\n", stub.name) or _function(header + "\n...\n", stub.name)
    if theirs is None or ours is None or _params(theirs) != _params(ours):
        return code
    body = theirs.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
        and len(body) > 1
    ):
        body = body[1:]  # the model's own docstring gives way to the user's
    lines = code.splitlines(keepends=True)
    first = body[0].lineno - 1
    # Decorators count as part of the definition's span.
    start = min([theirs.lineno, *(d.lineno for d in theirs.decorator_list)]) - 1
    end = theirs.end_lineno or len(lines)
    body_text = "".join(lines[first:end])
    stub_indent = _docstring_indent(stub)
    body_indent = body_text[: len(body_text) - len(body_text.lstrip(" \t"))]
    if stub.docstring and stub_indent != body_indent:
        return code  # re-indenting a docstring could change its text
    new_def = header + body_text
    if not new_def.endswith("\n"):
        new_def += "\n"
    result = "".join(lines[:start]) + new_def + "".join(lines[end:])
    return result if _function(result, stub.name) is not None else code


def _docstring_indent(stub: Stub) -> str:
    for line in stub.prompt_text.splitlines()[1:]:
        if line.strip():
            return line[: len(line) - len(line.lstrip(" \t"))]
    return ""
