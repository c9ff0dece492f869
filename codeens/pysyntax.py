"""Small helpers over tree-sitter's Python grammar, shared by problem loading and extraction.

Byte offsets are into the UTF-8 encoding of the text that was parsed. tree-sitter never raises
on bad input: it returns a tree with ERROR or MISSING nodes, so callers check
:func:`first_error` (and still ``compile()``, because tree-sitter accepts some code CPython
rejects, such as an empty block).
"""

from __future__ import annotations

from collections.abc import Iterator

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Tree

LANGUAGE = Language(tree_sitter_python.language())
_DEF_TYPES = ("function_definition", "class_definition")


def parse(source: str | bytes) -> Tree:
    """Parse Python source; a fresh parser each time because parsers are not thread-safe."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    return Parser(LANGUAGE).parse(data)


def text(node: Node) -> str:
    """The node's source text."""
    return (node.text or b"").decode("utf-8")


def walk(node: Node) -> Iterator[Node]:
    """All nodes under ``node`` (itself included), depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def first_error(node: Node) -> Node | None:
    """The first ERROR or MISSING node under ``node``, or None when it parsed cleanly."""
    if not node.has_error and not node.is_missing:
        return None
    return next((n for n in walk(node) if n.is_error or n.is_missing), None)


def definition(node: Node) -> Node | None:
    """The function or class defined by a top-level statement, looking through decorators."""
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        return inner if inner is not None and inner.type in _DEF_TYPES else None
    return node if node.type in _DEF_TYPES else None


def defined_name(node: Node) -> str | None:
    """The name a def/class statement binds, or None for other statements."""
    inner = definition(node)
    name = inner.child_by_field_name("name") if inner is not None else None
    return text(name) if name is not None else None


def identifiers(node: Node, attributes: bool = False) -> set[str]:
    """Names the code refers to; attribute names (``x.name``) only when ``attributes``."""
    found = set()
    for n in walk(node):
        if n.type != "identifier":
            continue
        parent = n.parent
        if not attributes and parent is not None and parent.type == "attribute":
            attr = parent.child_by_field_name("attribute")
            if attr is not None and attr.id == n.id:
                continue
        found.add(text(n))
    return found


def docstring_node(block: Node) -> Node | None:
    """The docstring's string node when the block's first statement is a plain string."""
    body = [c for c in block.named_children if c.type != "comment"]
    if not body or body[0].type != "expression_statement":
        return None
    exprs = body[0].named_children
    if len(exprs) == 1 and exprs[0].type == "string":
        return exprs[0]
    return None


def is_stub_body(block: Node) -> bool:
    """True when the body, docstring aside, is ``...``, ``pass``, ``raise NotImplementedError``
    (with or without arguments) or nothing at all."""
    body = [c for c in block.named_children if c.type != "comment"]
    if docstring_node(block) is not None:
        body = body[1:]
    if not body:
        return True
    if len(body) > 1:
        return False
    stmt = body[0]
    if stmt.type == "pass_statement":
        return True
    if stmt.type == "expression_statement":
        return [c.type for c in stmt.named_children] == ["ellipsis"]
    if stmt.type == "raise_statement":
        raised = [c for c in stmt.named_children if c.type != "comment"]
        if len(raised) != 1:
            return False
        target = raised[0]
        if target.type == "call":
            target = target.child_by_field_name("function") or target
        return target.type == "identifier" and text(target) == "NotImplementedError"
    return False


def is_main_guard(node: Node) -> bool:
    """True for ``if __name__ == "__main__":`` (either operand order, any quotes)."""
    if node.type != "if_statement":
        return False
    cond = node.child_by_field_name("condition")
    if cond is None or cond.type != "comparison_operator":
        return False
    names = {text(c) for c in cond.named_children if c.type == "identifier"}
    strings = {
        text(s)
        for c in cond.named_children
        if c.type == "string"
        for s in c.named_children
        if s.type == "string_content"
    }
    return names == {"__name__"} and strings == {"__main__"}


def line_span(node: Node, data: bytes) -> tuple[int, int]:
    """The node's bytes plus its line ending, so removing it leaves no stray blank line."""
    end = node.end_byte
    for ending in (b"\r\n", b"\n"):
        if data.startswith(ending, end):
            return node.start_byte, end + len(ending)
    return node.start_byte, end


def splice(data: bytes, edits: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) byte edits."""
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new.encode("utf-8") + data[end:]
    return data.decode("utf-8")
