"""Pull a stub's implementation out of raw model output, and normalise code for de-duplication.

Model output may be prose with markdown fences, several fences, helpers and imports, example
calls, or (from a base model) just the continuation of a prompt. Code structure is read with
tree-sitter; the result is checked again with ``compile()``.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from tree_sitter import Node

from codeens import pysyntax
from codeens.pyast import UNPARSABLE
from codeens.stub import Stub

_FENCES = ("```", "~~~")
_IMPORTS = ("import_statement", "import_from_statement")


@dataclass(frozen=True)
class _Piece:
    """A top-level statement worth keeping: an import, a def/class or a simple assignment."""

    kind: str  # "import", "def" or "assign"
    text: str
    start: int  # byte offset in the searched source
    binds: frozenset[str]
    refs: frozenset[str]
    name: str | None = None
    is_function: bool = False
    is_stub: bool = False


def _fenced_blocks(text: str) -> list[str]:
    """Contents of markdown code fences in order; an unclosed last fence runs to the end."""
    blocks: list[str] = []
    current: list[str] | None = None
    fence = ""
    for line in text.splitlines():
        stripped = line.strip()
        if current is None:
            if stripped.startswith(_FENCES):
                fence, current = stripped[:3], []
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append(textwrap.dedent("\n".join(current)) + "\n")
            current = None
        else:
            current.append(line)
    if current is not None:
        blocks.append(textwrap.dedent("\n".join(current)) + "\n")
    return blocks


def _chunks(source: str) -> Iterator[tuple[int, str]]:
    """(byte offset, text) of each column-0 statement with its indented lines.

    Used when the whole text does not parse, so that a line of prose spoils only itself.
    Comment and blank lines never start a chunk; a decorator joins the chunk below it and a
    line opening with a closing bracket (``) -> int:``) joins the chunk above it.
    """
    groups: list[list[str]] = []
    for line in source.splitlines(keepends=True):
        starts = line[:1].strip() != "" and not line.startswith("#")
        joins_above = line.startswith((")", "]", "}"))
        after_decorator = bool(groups) and groups[-1][-1].startswith("@")
        if groups and (not starts or joins_above or after_decorator):
            groups[-1].append(line)
        else:
            groups.append([line])
    offset = 0
    for group in groups:
        chunk = "".join(group)
        yield offset, chunk
        offset += len(chunk.encode("utf-8"))


def _bound_by_import(node: Node) -> set[str]:
    """Names an import binds; ``*`` stands for a wildcard import."""
    names = set()
    for item in node.children_by_field_name("name"):
        alias = item.child_by_field_name("alias") if item.type == "aliased_import" else None
        names.add(pysyntax.text(alias) if alias else pysyntax.text(item).split(".")[0])
    if any(c.type == "wildcard_import" for c in node.children):
        names.add("*")
    return names


def _piece(node: Node, offset: int, functions: set[str]) -> _Piece | None:
    text, start = pysyntax.text(node), offset + node.start_byte
    refs = frozenset(pysyntax.identifiers(node))
    if node.type in _IMPORTS:
        return _Piece("import", text, start, frozenset(_bound_by_import(node)), refs)
    inner = pysyntax.definition(node)
    if inner is not None:
        name = pysyntax.defined_name(node)
        body = inner.child_by_field_name("body")
        is_function = inner.type == "function_definition"
        is_stub = is_function and (body is None or pysyntax.is_stub_body(body))
        binds = frozenset({name} if name else set())
        return _Piece("def", text, start, binds, refs, name, is_function, is_stub)
    assign = node.named_children[0] if node.type == "expression_statement" else None
    if assign is None or assign.type != "assignment" or len(node.named_children) != 1:
        return None
    left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
    if left is None or right is None or left.type not in ("identifier", "pattern_list"):
        return None
    # A constant, not a demo such as `result = f(3)`: it must not call code from the reply.
    if pysyntax.identifiers(right) & functions:
        return None
    return _Piece("assign", text, start, frozenset(pysyntax.identifiers(left)), refs)


def _statements(source: str) -> Iterator[tuple[int, Node]]:
    root = pysyntax.parse(source).root_node
    if pysyntax.first_error(root) is None:
        yield from ((0, n) for n in root.named_children)
        return
    for offset, chunk in _chunks(source):
        chunk_root = pysyntax.parse(chunk).root_node
        if pysyntax.first_error(chunk_root) is None:
            yield from ((offset, n) for n in chunk_root.named_children)


def _select(source: str, name: str, boundary: int = 0) -> str | None:
    """The target function plus the imports, helpers and constants it needs (transitively).

    Statements that start before ``boundary`` (the prompt prefix) are the file's own code and
    are never copied, except the target definition the reply continues.
    """
    nodes = list(_statements(source))
    functions = {f for _, n in nodes if (f := pysyntax.defined_name(n)) is not None}
    pieces = [p for p in (_piece(n, off, functions) for off, n in nodes) if p]
    target = next((p for p in pieces if p.name == name and p.is_function and not p.is_stub), None)
    if target is None:
        return None
    usable = [
        p
        for p in pieces
        if p is not target and p.start >= boundary and not p.is_stub and p.name != name
    ]
    keep, needed = [target], set(target.refs)
    grew = True
    while grew:
        grew = False
        for p in usable:
            if p not in keep and (p.binds & needed or (p.kind == "import" and "*" in p.binds)):
                keep.append(p)
                needed |= p.refs
                grew = True
    ordered = sorted(keep, key=lambda p: p.start)
    imports = "\n".join(p.text for p in ordered if p.kind == "import")
    rest = "\n\n\n".join(p.text for p in ordered if p.kind != "import")
    code = (imports + "\n\n\n" if imports else "") + rest + "\n"
    return code if _valid(code) else None


def _valid(code: str) -> bool:
    if pysyntax.first_error(pysyntax.parse(code).root_node) is not None:
        return False
    try:
        compile(code, "<candidate>", "exec", dont_inherit=True)
    except UNPARSABLE:
        return False
    return True


def extract_function(text: str, stub: Stub, prefix: str = "") -> str | None:
    """Top-level code to put in place of ``stub``: the imports, helper functions/classes and
    constants the reply's ``def <stub.name>`` uses, then that def; None when no complete,
    parseable definition of that name is found.

    Fenced blocks are tried first, one at a time and then joined; then, when ``prefix`` (the
    prompt a base model continued) is given, ``prefix + text``; then the whole text. Example
    calls, prints, tests, ``__main__`` blocks, prose and unused definitions are dropped. The
    model's own signature is kept; a definition that is still a stub does not count.
    """
    fenced = _fenced_blocks(text)
    sources = [(block, 0) for block in fenced]
    if len(fenced) > 1:
        sources.append(("".join(fenced), 0))
    if prefix:
        sources.append((prefix + text, len(prefix.encode("utf-8"))))
    sources.append((text, 0))
    for source, boundary in sources:
        code = _select(source, stub.name, boundary)
        if code is not None:
            return code
    return None


class _StripDocstrings(ast.NodeTransformer):
    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            assert isinstance(body, list)
            first = body[0] if body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                node.body = body[1:] or [ast.Pass()]
        return node


def normalize(code: str) -> str:
    """A canonical form for de-duplication: no comments or docstrings, uniform layout.

    Code that does not parse is only trimmed of blank lines and trailing spaces.
    """
    try:
        tree = ast.parse(code)
        return ast.unparse(_StripDocstrings().visit(tree))
    except UNPARSABLE:
        return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())
