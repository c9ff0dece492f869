"""Turn a test file into named test cases the driver can run one at a time.

Three styles are accepted and may be mixed:

* pytest style: every top-level ``def test_*()`` is one case;
* HumanEval style: ``def check(candidate)`` is called with the entry point. When its body is
  a prelude followed only by asserts, each assert becomes its own case so that a pass rate
  is finer than all-or-nothing;
* MBPP style: every top-level ``assert`` is one case.

All other top-level statements (imports, helpers, constants) form the setup, which runs once
in the candidate's namespace before the first case. Every comparison and every assert's
truth test is routed through trusted helpers installed by the driver, so a candidate-defined
``__eq__`` or ``__bool__`` cannot make an assertion pass.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from codeens.sandbox.errors import SandboxInputError

CMP_HELPER = "__codeens_cmp__"
TRUTH_HELPER = "__codeens_truth__"
_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


@dataclass(frozen=True)
class TestCase:
    """One named test: source executed in the candidate's namespace after the setup."""

    name: str
    source: str


@dataclass(frozen=True)
class TestSuite:
    """A parsed test file: shared setup plus cases, and a hash identifying them."""

    setup: str
    cases: tuple[TestCase, ...]
    tests_hash: str
    entry_point_required: bool = False

    def for_entry_point(self, entry_point: str | None) -> TestSuite:
        """Bind ``check(candidate)`` cases to the candidate's function name."""
        if not self.entry_point_required:
            return self
        if not entry_point:
            raise SandboxInputError(
                "the tests call check(candidate): give the function name with --entry-point"
            )
        cases = tuple(
            TestCase(c.name, c.source.replace("__codeens_entry__", entry_point)) for c in self.cases
        )
        return TestSuite(self.setup, cases, self.tests_hash, entry_point_required=False)


class _TrustedComparisons(ast.NodeTransformer):
    """Rewrite ``a == b`` into ``__codeens_cmp__(('==',), a, b)`` and wrap assert tests."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        names = ast.Tuple([ast.Constant(_OPS[type(op)]) for op in node.ops], ast.Load())
        call = ast.Call(ast.Name(CMP_HELPER, ast.Load()), [names, node.left, *node.comparators], [])
        return ast.copy_location(call, node)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        node.test = ast.copy_location(
            ast.Call(ast.Name(TRUTH_HELPER, ast.Load()), [node.test], []), node.test
        )
        return node


def _harden(nodes: list[ast.stmt]) -> str:
    module = ast.Module(body=nodes, type_ignores=[])
    module = _TrustedComparisons().visit(module)
    ast.fix_missing_locations(module)
    return ast.unparse(module)


def _short(node: ast.AST, limit: int = 100) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _is_check_call(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "check"
    )


def _is_main_guard(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "__name__" in ast.unparse(stmt.test)


def _check_cases(check: ast.FunctionDef) -> list[TestCase]:
    param = check.args.args[0].arg if check.args.args else "candidate"
    body = [s for s in check.body if not _is_docstring(s)]
    first_assert = next((i for i, s in enumerate(body) if isinstance(s, ast.Assert)), None)
    splittable = first_assert is not None and all(
        isinstance(s, ast.Assert) for s in body[first_assert:]
    )
    if not splittable or first_assert is None:
        return [TestCase("check", "check(__codeens_entry__)")]
    prelude = body[:first_assert]
    cases = []
    for stmt in body[first_assert:]:
        assert isinstance(stmt, ast.Assert)
        fn = ast.FunctionDef(
            name="__codeens_case__",
            args=ast.arguments(
                posonlyargs=[],
                args=[ast.arg(param)],
                kwonlyargs=[],
                kw_defaults=[],
                defaults=[],
            ),
            body=[*prelude, stmt],
            decorator_list=[],
            returns=None,
        )
        call = ast.Expr(
            ast.Call(
                ast.Name("__codeens_case__", ast.Load()),
                [ast.Name("__codeens_entry__", ast.Load())],
                [],
            )
        )
        cases.append(TestCase(f"check: {_short(stmt)}", _harden([fn, call])))
    return cases


def parse_test_suite(source: str, label: str = "<tests>") -> TestSuite:
    """Parse test source into a :class:`TestSuite`; raises SandboxInputError when unusable."""
    try:
        return _parse_test_suite(source, label)
    except (RecursionError, MemoryError) as exc:
        raise SandboxInputError(f"{label}: nested too deeply to parse") from exc


def _parse_test_suite(source: str, label: str) -> TestSuite:
    try:
        tree = ast.parse(source, filename=label)
    except SyntaxError as exc:
        raise SandboxInputError(
            f"{label}: not valid Python ({exc.msg}, line {exc.lineno})"
        ) from exc
    setup: list[ast.stmt] = []
    cases: list[TestCase] = []
    needs_entry = False
    for stmt in tree.body:
        if isinstance(stmt, ast.Assert):
            cases.append(TestCase(_short(stmt), _harden([stmt])))
        elif _is_check_call(stmt) or _is_main_guard(stmt):
            continue
        elif isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test"):
            setup.append(stmt)
            if not stmt.args.args:
                cases.append(TestCase(stmt.name, f"{stmt.name}()"))
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            setup.append(stmt)
            cases.extend(_check_cases(stmt))
            needs_entry = True
        else:
            setup.append(stmt)
    if not cases:
        raise SandboxInputError(
            f"{label}: no tests found (expected test_* functions, check(candidate) or asserts)"
        )
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return TestSuite(_harden(setup), tuple(cases), digest, entry_point_required=needs_entry)


def read_python_source(path: Path, what: str) -> str:
    """Read a Python file as UTF-8 text, with one clear error for each way it can be bad."""
    if not path.exists():
        raise SandboxInputError(f"{what} {path}: no such file")
    if not path.is_file():
        raise SandboxInputError(f"{what} {path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SandboxInputError(f"{what} {path}: cannot read ({exc.strerror})") from exc
    if b"\x00" in data:
        raise SandboxInputError(f"{what} {path}: binary file, not Python source")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SandboxInputError(f"{what} {path}: not UTF-8 text") from exc
    if not text.strip():
        raise SandboxInputError(f"{what} {path}: empty file")
    return text


def load_test_suite(path: Path) -> TestSuite:
    """Read and parse a test file."""
    return parse_test_suite(read_python_source(path, "tests"), str(path))


def check_candidate_source(source: str, label: str) -> None:
    """Raise SandboxInputError when a candidate is not valid Python."""
    try:
        compile(source, label, "exec", dont_inherit=True)
    except (RecursionError, MemoryError) as exc:
        raise SandboxInputError(f"candidate {label}: nested too deeply to compile") from exc
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f", line {line}" if line else ""
        raise SandboxInputError(f"candidate {label}: not valid Python ({exc}{where})") from exc


def default_entry_point(source: str) -> str | None:
    """The candidate's last top-level public function, the usual HumanEval entry point."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = [
        s.name
        for s in tree.body
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and not s.name.startswith("_")
    ]
    return names[-1] if names else None
