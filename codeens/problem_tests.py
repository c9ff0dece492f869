"""Build a problem's visible tests: doctests turned into asserts, and test files made runnable
in the candidate's namespace (the sandbox runs tests after the candidate program, so they see
its names directly and must not import the module under test)."""

from __future__ import annotations

import ast
import doctest
import textwrap
from dataclasses import dataclass

from tree_sitter import Node

from codeens import pysyntax

# Bound to a module name that tests import (`import palindrome`), so `palindrome.f()` still
# resolves; a snapshot of the candidate's globals, taken after the candidate program ran.
_NAMESPACE = '__import__("types").SimpleNamespace(**globals())'


@dataclass(frozen=True)
class TestPart:
    """One piece of the visible tests: a case (test function, assert, doctest) or setup."""

    source: str
    names: frozenset[str]
    is_case: bool


def part(source: str, is_case: bool, extra_names: frozenset[str] = frozenset()) -> TestPart:
    """A part whose names are the identifiers its code mentions (found with tree-sitter);
    attribute names count, so that ``module.f()`` is a test of ``f``."""
    names = pysyntax.identifiers(pysyntax.parse(source).root_node, attributes=True)
    return TestPart(source, frozenset(names) | extra_names, is_case)


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


def _compare(left: ast.expr, op: ast.cmpop, right: ast.expr) -> str:
    return ast.unparse(ast.Assert(ast.Compare(left, [op], [right]), None))


def _output_assert(expr: ast.expr, want: str, normalize: bool) -> str:
    """``assert`` for an expression example; print() calls compare their printed text."""
    want = want.rstrip("\n")
    is_print = (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id == "print"
        and not expr.keywords
        and expr.args
        and not any(isinstance(a, ast.Starred) for a in expr.args)
    )
    if isinstance(expr, ast.Call) and is_print:
        strs: list[ast.expr] = [_call("str", a) for a in expr.args]
        left: ast.expr = strs[0]
        if len(strs) > 1:
            join = ast.Attribute(ast.Constant(" "), "join", ast.Load())
            left = ast.Call(join, [ast.Tuple(strs, ast.Load())], [])
    else:
        if not normalize:
            try:
                value = ast.literal_eval(want)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
            else:
                # `is` for singletons: doctest would tell 1 from True, `==` would not.
                if value is None or isinstance(value, bool):
                    return _compare(expr, ast.Is(), ast.Constant(value))
                literal = ast.parse(want.strip() if "\n" not in want else repr(value), mode="eval")
                return _compare(expr, ast.Eq(), literal.body)
        left = _call("repr", expr)
    if normalize:
        # NORMALIZE_WHITESPACE: compare with every run of whitespace made one space.
        join = ast.Attribute(ast.Constant(" "), "join", ast.Load())
        split = ast.Call(ast.Attribute(left, "split", ast.Load()), [], [])
        left = ast.Call(join, [split], [])
        want = " ".join(want.split())
    return _compare(left, ast.Eq(), ast.Constant(want))


def _raises_block(code: str, exc_msg: str) -> str:
    exc_name = exc_msg.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return (
        f"try:\n{textwrap.indent(code, '    ')}\n"
        "except Exception as _doctest_exc:\n"
        f"    assert type(_doctest_exc).__name__ == {exc_name!r}\n"
        f"else:\n    raise AssertionError({'expected ' + exc_name!r})"
    )


def _stdout_block(code: str, want: str) -> str:
    return (
        "import contextlib as _doctest_cl, io as _doctest_io\n"
        "with _doctest_cl.redirect_stdout(_doctest_io.StringIO()) as _doctest_out:\n"
        f"{textwrap.indent(code, '    ')}\n"
        f"assert _doctest_out.getvalue() == {want!r}"
    )


def _convert(example: doctest.Example) -> tuple[str, str] | None:
    """(kind, code) for one example: kind is "assert", "statement" or "block"."""
    try:
        module = ast.parse(example.source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    code = ast.unparse(module)
    if example.exc_msg is not None:
        return "block", _raises_block(code, example.exc_msg)
    if not example.want:
        return "statement", code
    normalize = bool(example.options.get(doctest.NORMALIZE_WHITESPACE))
    if len(module.body) == 1 and isinstance(module.body[0], ast.Expr):
        return "assert", _output_assert(module.body[0].value, example.want, normalize)
    return "block", _stdout_block(code, example.want)


def doctest_parts(name: str, docstring: str) -> list[TestPart]:
    """Test parts from the ``>>>`` examples in a stub's docstring.

    Each example with output becomes its own top-level assert so pass rates are fine-grained;
    when any example is a bare statement (state shared between examples), all of the
    docstring's examples go into one ``def test_doctest_<name>():`` in order. Examples marked
    SKIP or ELLIPSIS, and ones that do not parse, are left out.
    """
    try:
        examples = doctest.DocTestParser().get_examples(docstring, name)
    except ValueError:  # malformed doctest layout: there is nothing reliable to check
        return []
    converted = []
    for example in examples:
        if example.options.get(doctest.SKIP) or example.options.get(doctest.ELLIPSIS):
            continue
        result = _convert(example)
        if result is not None:
            converted.append(result)
    owner = frozenset({name})
    if any(kind == "statement" for kind, _ in converted):
        body = "\n".join(textwrap.indent(code, "    ") for _, code in converted)
        return [part(f"def test_doctest_{name}():\n{body}\n", True, owner)]
    parts = []
    for index, (kind, code) in enumerate(converted, start=1):
        if kind == "assert":
            parts.append(part(code + "\n", True, owner))
        else:
            body = textwrap.indent(code, "    ")
            parts.append(part(f"def test_doctest_{name}_{index}():\n{body}\n", True, owner))
    return parts


def _import_replacement(node: Node, module: str) -> str | None:
    """What an import of ``module`` turns into, or None when the import is kept as is."""
    kept: list[str] = []
    binds: list[str] = []
    if node.type == "import_statement":
        for name in node.children_by_field_name("name"):
            dotted = name.child_by_field_name("name") if name.type == "aliased_import" else name
            alias = name.child_by_field_name("alias") if name.type == "aliased_import" else None
            dotted_text = pysyntax.text(dotted) if dotted is not None else ""
            if dotted_text.rsplit(".", 1)[-1] != module:
                kept.append(pysyntax.text(name))
            elif alias is not None or "." not in dotted_text:
                bound = pysyntax.text(alias) if alias is not None else dotted_text
                binds.append(f"{bound} = {_NAMESPACE}")
        if not binds:
            return None
        return "; ".join(([f"import {', '.join(kept)}"] if kept else []) + binds)
    source = node.child_by_field_name("module_name")
    source_text = pysyntax.text(source) if source is not None else ""
    if source_text.lstrip(".").rsplit(".", 1)[-1] != module:
        return None
    for name in node.children_by_field_name("name"):
        if name.type == "aliased_import":
            original, alias = name.child_by_field_name("name"), name.child_by_field_name("alias")
            if original is not None and alias is not None:
                binds.append(f"{pysyntax.text(alias)} = {pysyntax.text(original)}")
    return "; ".join(binds)


def strip_module_imports(source: str, module: str) -> str:
    """Remove imports of the module under test, anywhere in a test file.

    ``from m import a as b`` leaves ``b = a`` and ``import m`` leaves ``m`` bound to a
    namespace of the candidate's globals; ``pass`` stands in where a block would be empty.
    """
    data = source.encode("utf-8")
    edits = []
    for node in pysyntax.walk(pysyntax.parse(data).root_node):
        if node.type in ("import_statement", "import_from_statement"):
            new = _import_replacement(node, module)
            if new is not None:
                top_level = node.parent is not None and node.parent.type == "module"
                edits.append((node.start_byte, node.end_byte, new or ("" if top_level else "pass")))
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new.encode("utf-8") + data[end:]
    return data.decode("utf-8")


def is_test_def(node: Node, prefix: str = "test") -> bool:
    """A top-level (possibly decorated) function whose name starts with ``prefix``."""
    inner = pysyntax.definition(node)
    name = pysyntax.defined_name(node)
    return (
        inner is not None
        and inner.type == "function_definition"
        and (name is not None and name.startswith(prefix))
    )


def test_file_parts(source: str, module: str) -> list[TestPart]:
    """Split a test file into setup and case parts, with imports of ``module`` removed."""
    root = pysyntax.parse(strip_module_imports(source, module)).root_node
    parts = []
    for node in root.named_children:
        # A __future__ import must open a file, and setup is glued from several sources.
        if node.type in ("comment", "future_import_statement") or pysyntax.is_main_guard(node):
            continue
        is_case = node.type == "assert_statement" or is_test_def(node)
        parts.append(part(pysyntax.text(node) + "\n", is_case))
    return parts


def dedupe_names(parts: list[TestPart]) -> list[TestPart]:
    """Rename repeated test functions (test_x, test_x_2): a later def would hide the first."""
    seen: set[str] = set()
    result = []
    for p in parts:
        root = pysyntax.parse(p.source).root_node
        node = next((n for n in root.named_children if n.type != "comment"), None)
        name = pysyntax.defined_name(node) if node is not None and p.is_case else None
        func = pysyntax.definition(node) if node is not None else None
        name_node = func.child_by_field_name("name") if func is not None else None
        if name is not None and name in seen and name_node is not None:
            count = 2
            while f"{name}_{count}" in seen:
                count += 1
            data = p.source.encode("utf-8")
            new = f"{name}_{count}"
            source = (
                data[: name_node.start_byte] + new.encode() + data[name_node.end_byte :]
            ).decode()
            p, name = TestPart(source, p.names, True), new
        if name is not None:
            seen.add(name)
        result.append(p)
    return result
