"""A problem: a Python file with stubbed top-level functions, its visible tests, and how to
put solutions back into it.

Only top-level functions are targets; methods and nested functions are never stubs. All code
structure is read with tree-sitter; byte offsets are into ``source.encode("utf-8")`` (a UTF-8
BOM is dropped on reading and not restored by :func:`fill`).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node

from codeens import pysyntax
from codeens.problem_tests import (
    TestPart,
    dedupe_names,
    doctest_parts,
    is_test_def,
    part,
    test_file_parts,
)
from codeens.pyast import UNPARSABLE
from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.testfile import read_python_text
from codeens.stub import Stub
from codeens.stub_header import adopt_stub_header

MARKER = "codeens: implement"
_NO_STUB = (
    "no stub function found: give a function whose body is ..., pass, "
    "raise NotImplementedError or only a docstring"
)


class ProblemError(Exception):
    """A problem or test file cannot be used; the message is one line naming the file."""


class NoStubError(ProblemError):
    """The file parses but has nothing to implement."""


@dataclass(frozen=True)
class Problem:
    """A loaded problem file. ``context`` holds its imports, helpers and constants;
    ``visible_tests`` is a test file the sandbox accepts ("" when there are no tests); the
    file's own tests and ``__main__`` blocks move there from ``program_without_tests``.
    ``test_spans`` are their byte spans in the source."""

    path: Path
    source: str
    stubs: tuple[Stub, ...]
    context: str
    visible_tests: str
    test_parts: tuple[TestPart, ...]
    test_spans: tuple[tuple[int, int], ...]

    def stub(self, name: str) -> Stub:
        """The stub called ``name``; KeyError when there is none."""
        for stub in self.stubs:
            if stub.name == name:
                return stub
        raise KeyError(name)

    @property
    def program_without_tests(self) -> str:
        """The source without its own tests and ``__main__`` blocks: what candidates run as."""
        return fill(self, {}, keep_tests=False)

    def tests_for(self, stub_name: str) -> str:
        """The visible tests for one stub, with all setup; "" when none exercises it.

        A test that mentions this stub counts; so does one that mentions no stub at all
        (it tests the file as a whole). A test about other stubs only does not: it would
        fail while they are still stubs.
        """
        stubs = {s.name for s in self.stubs}
        chosen = {
            id(p)
            for p in self.test_parts
            if p.is_case and (stub_name in p.names or not (p.names & stubs))
        }
        if not chosen:
            return ""
        return "\n".join(p.source for p in self.test_parts if not p.is_case or id(p) in chosen)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read(path: Path, what: str) -> str:
    try:
        return read_python_text(path, what)
    except SandboxInputError as exc:
        raise ProblemError(str(exc)) from exc


def _parse_checked(source: str, path: Path, what: str) -> Node:
    """The tree-sitter root of valid source; compile() catches what tree-sitter tolerates."""
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ProblemError(
            f"{what} {path}: syntax error at line {exc.lineno}: {_one_line(exc.msg)}"
        ) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProblemError(f"{what} {path}: cannot compile ({type(exc).__name__})") from exc
    root = pysyntax.parse(source).root_node
    error = pysyntax.first_error(root)
    if error is not None:
        line = error.start_point[0] + 1
        raise ProblemError(f"{what} {path}: cannot parse line {line} (syntax not supported)")
    return root


def _is_marked(root: Node, lines: list[bytes], row: int) -> bool:
    """True when the comment lines right above ``row`` include ``# codeens: implement``."""
    row -= 1
    while row >= 0 and lines[row].lstrip().startswith(b"#"):
        column = len(lines[row]) - len(lines[row].lstrip())
        node = root.descendant_for_point_range((row, column), (row, column + 1))
        if node is None or node.type != "comment":  # a '#' inside a string literal
            return False
        if _one_line(pysyntax.text(node)[1:]).lower() == MARKER:
            return True
        row -= 1
    return False


def _docstring(block: Node) -> tuple[str, Node | None]:
    node = pysyntax.docstring_node(block)
    if node is None:
        return "", None
    try:
        value = ast.literal_eval(pysyntax.text(node))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return "", None  # an f-string is not a docstring
    return (inspect.cleandoc(value), node) if isinstance(value, str) else ("", None)


def _stub(node: Node, root: Node, data: bytes, lines: list[bytes]) -> Stub | None:
    func = pysyntax.definition(node)
    if func is None or func.type != "function_definition":
        return None
    name, block = func.child_by_field_name("name"), func.child_by_field_name("body")
    colon = next((c for c in reversed(func.children) if c.type == ":"), None)
    if name is None or block is None or colon is None:
        return None
    marked = _is_marked(root, lines, node.start_point[0])
    if not marked and not pysyntax.is_stub_body(block):
        return None
    docstring, doc_node = _docstring(block)
    prompt_end = doc_node.end_byte if doc_node is not None else colon.end_byte
    decorators = [pysyntax.text(c) for c in node.children if c.type == "decorator"]
    return Stub(
        name=pysyntax.text(name),
        signature=data[func.start_byte : colon.end_byte].decode("utf-8"),
        decorators=tuple(decorators),
        docstring=docstring,
        start_byte=node.start_byte,
        end_byte=node.end_byte,
        is_async=func.children[0].type == "async",
        prompt_text=data[node.start_byte : prompt_end].decode("utf-8") + "\n",
        marked=marked,
    )


def _context(nodes: list[Node]) -> str:
    chunks: list[str] = []
    previous_simple = False
    for node in nodes:
        simple = pysyntax.definition(node) is None
        if chunks:
            chunks.append("\n" if simple and previous_simple else "\n\n\n")
        chunks.append(pysyntax.text(node))
        previous_simple = simple
    return "".join(chunks) + ("\n" if chunks else "")


def load_problem(path: Path, extra_tests: Sequence[Path] = ()) -> Problem:
    """Read a problem file, find its stubs and gather its visible tests.

    The tests are the stubs' doctests, the file's own ``test_*`` functions and top-level
    asserts, the sibling ``test_<stem>.py`` when it exists, and ``extra_tests``.
    Raises ProblemError with one line naming the file when anything is unusable.
    """
    return parse_problem(_read(path, "problem"), path, extra_tests)


def parse_problem(source: str, path: Path, extra_tests: Sequence[Path] = ()) -> Problem:
    """:func:`load_problem` for source already in hand (``path`` names it in messages and
    locates a sibling test file, which need not exist)."""
    root = _parse_checked(source, path, "problem")
    data = source.encode("utf-8")
    lines = data.split(b"\n")
    stubs = [s for s in (_stub(n, root, data, lines) for n in root.named_children) if s]
    if not stubs:
        raise NoStubError(f"problem {path}: {_NO_STUB}")
    stub_starts = {s.start_byte for s in stubs}
    own_tests, guards, context = [], [], []
    for node in root.named_children:
        if node.start_byte in stub_starts or node.type == "comment":
            continue
        if node.type == "assert_statement" or is_test_def(node, "test_"):
            own_tests.append(node)
        elif pysyntax.is_main_guard(node):
            guards.append(node)
        else:
            context.append(node)
    parts = [p for stub in stubs for p in doctest_parts(stub.name, stub.docstring)]
    parts = [part("# doctests\n", False), *parts] if parts else []
    if own_tests:
        parts.append(part(f"# tests from {path.name}\n", False))
        parts.extend(part(pysyntax.text(n) + "\n", True) for n in own_tests)
    test_files = [path.with_name(f"test_{path.stem}.py")] if path.stem else []
    test_files = [p for p in test_files if p.is_file()] + list(extra_tests)
    unique: dict[Path, Path] = {}  # the sibling may also be given with --tests
    for test_path in test_files:
        unique.setdefault(test_path.resolve(), test_path)
    for test_path in unique.values():
        text = _read(test_path, "tests")
        _parse_checked(text, test_path, "tests")
        parts.append(part(f"# tests from {test_path.name}\n", False))
        parts.extend(test_file_parts(text, path.stem))
    parts = dedupe_names(parts)
    spans = tuple(pysyntax.line_span(n, data) for n in own_tests + guards)
    return Problem(
        path=path,
        source=source,
        stubs=tuple(stubs),
        context=_context(context),
        visible_tests="\n".join(p.source for p in parts) if any(p.is_case for p in parts) else "",
        test_parts=tuple(parts),
        test_spans=spans,
    )


def _with_decorators(code: str, stub: Stub) -> str:
    """Give the solution's def the stub's decorators when the model wrote none."""
    if not stub.decorators:
        return code
    root = pysyntax.parse(code).root_node
    for node in root.named_children:
        if node.type == "function_definition" and pysyntax.defined_name(node) == stub.name:
            data = code.encode("utf-8")
            head = "".join(d + "\n" for d in stub.decorators).encode("utf-8")
            return (data[: node.start_byte] + head + data[node.start_byte :]).decode("utf-8")
    return code


def fill(problem: Problem, solutions: Mapping[str, str], *, keep_tests: bool = True) -> str:
    """The problem source with each solved stub's definition replaced by its solution code
    (imports, helpers and the function), all else byte-for-byte; unsolved stubs stay.

    ``keep_tests=False`` also drops the file's own tests and ``__main__`` blocks: the program
    a candidate runs as. Raises ValueError for an unknown stub name, a solution that does not
    define its function, or a result that does not compile.
    """
    data = problem.source.encode("utf-8")
    newline = "\r\n" if b"\r\n" in data else "\n"
    edits: list[tuple[int, int, str]] = []
    for name, code in solutions.items():
        try:
            stub = problem.stub(name)
        except KeyError:
            raise ValueError(f"{problem.path}: no stub named {name!r}") from None
        root = pysyntax.parse(code).root_node
        if name not in {pysyntax.defined_name(n) for n in root.named_children}:
            raise ValueError(f"{problem.path}: the solution for {name} does not define it")
        adopted = adopt_stub_header(code.strip("\r\n").replace("\r\n", "\n"), stub)
        text = _with_decorators(adopted.strip("\n"), stub)
        edits.append((stub.start_byte, stub.end_byte, text.replace("\n", newline)))
    if not keep_tests:
        edits.extend((start, end, "") for start, end in problem.test_spans)
    result = pysyntax.splice(data, edits)
    if not keep_tests and problem.test_spans:
        # Removed tests usually sat at the end, after blank lines that would now trail the file.
        result = result.rstrip() + newline
    try:
        compile(result, str(problem.path), "exec", dont_inherit=True)
    except UNPARSABLE as exc:
        raise ValueError(f"{problem.path}: filled program does not compile ({exc})") from exc
    return result
