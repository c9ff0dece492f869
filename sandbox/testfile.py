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

A case whose asserts all compare with literals is also *split* (see split.py): the driver
holds its expected values and the candidate's process only evaluates what is under test;
such a case's code (a test function, ``check``) is then left out of the setup.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.split import Check, split_body
from codeens.sandbox.split_scope import COMPARISONS, Scope, constant_name, file_scope

CMP_HELPER = "__codeens_cmp__"
ENTRY = "__codeens_entry__"
TRUTH_HELPER = "__codeens_truth__"


@dataclass(frozen=True)
class TestCase:
    """One named test: source executed in the candidate's namespace after the setup, or,
    when ``checks`` is set, a probe the candidate's process runs for values that the
    driver compares. ``limit``: seconds this case may take (None: only the candidate's
    whole-run timeout applies)."""

    name: str
    source: str
    probe: str = ""
    checks: tuple[Check, ...] = ()
    limit: float | None = None

    @property
    def isolation(self) -> str:
        return "split" if self.checks else "in-process"

    def bound(self, entry_point: str) -> TestCase:
        return dataclasses.replace(
            self,
            source=self.source.replace(ENTRY, entry_point),
            probe=self.probe.replace(ENTRY, entry_point),
        )


@dataclass(frozen=True)
class TestSuite:
    """A parsed test file: shared setup plus cases, and a hash identifying them.

    ``split_setup``: the setup to run when the split cases are split, without the code of
    the tests it no longer needs (None: the same as ``setup``)."""

    setup: str
    cases: tuple[TestCase, ...]
    tests_hash: str
    entry_point_required: bool = False
    split_setup: str | None = None

    def in_process(self) -> TestSuite:
        """The same tests, every one run in-process (the path before split comparisons)."""
        cases = tuple(TestCase(c.name, c.source) for c in self.cases)
        return dataclasses.replace(self, cases=cases, split_setup=None)

    def with_limits(self, limits: Sequence[float | None]) -> TestSuite:
        """The same tests, case ``i`` with ``limits[i]`` seconds of its own (None: only the
        whole-run timeout applies to it)."""
        if len(limits) != len(self.cases):
            raise ValueError(f"{len(limits)} limits for {len(self.cases)} test cases")
        pairs = zip(self.cases, limits, strict=True)
        cases = tuple(dataclasses.replace(c, limit=t) for c, t in pairs)
        return dataclasses.replace(self, cases=cases)

    @property
    def child_setup(self) -> str:
        """The setup the candidate's process runs."""
        return self.setup if self.split_setup is None else self.split_setup

    def for_entry_point(self, entry_point: str | None) -> TestSuite:
        """Bind ``check(candidate)`` cases to the candidate's function name."""
        if not self.entry_point_required:
            return self
        if not entry_point:
            raise SandboxInputError(
                "the tests call check(candidate): give the function name with --entry-point"
            )
        cases = tuple(c.bound(entry_point) for c in self.cases)
        return dataclasses.replace(self, cases=cases, entry_point_required=False)


class _TrustedComparisons(ast.NodeTransformer):
    """Rewrite ``a == b`` into ``__codeens_cmp__(('==',), a, b)`` and wrap assert tests."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        names = ast.Tuple([ast.Constant(COMPARISONS[type(op)]) for op in node.ops], ast.Load())
        call = ast.Call(ast.Name(CMP_HELPER, ast.Load()), [names, node.left, *node.comparators], [])
        return ast.copy_location(call, node)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        node.test = ast.copy_location(
            ast.Call(ast.Name(TRUTH_HELPER, ast.Load()), [node.test], []), node.test
        )
        return node


def _harden(nodes: list[ast.stmt]) -> str:
    # A copy: the same statements may also be split (split.py reads the originals).
    module = ast.Module(body=copy.deepcopy(nodes), type_ignores=[])
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


def _check_cases(check: ast.FunctionDef, scope: Scope | None) -> list[TestCase]:
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
            ast.Call(ast.Name("__codeens_case__", ast.Load()), [ast.Name(ENTRY, ast.Load())], [])
        )
        case = TestCase(f"check: {_short(stmt)}", _harden([fn, call]))
        cases.append(_split(case, [*prelude, stmt], scope, param, ENTRY))
    return cases


def _split(
    case: TestCase,
    body: list[ast.stmt],
    scope: Scope | None,
    param: str | None = None,
    arg: str | None = None,
) -> TestCase:
    """``case`` with a probe and the driver's checks when its body can be split."""
    found = split_body(body, scope, param, arg) if scope is not None else None
    if found is None:
        return case
    return TestCase(case.name, case.source, found.probe, found.checks)


def _test_function_case(stmt: ast.FunctionDef, scope: Scope | None) -> TestCase:
    case = TestCase(stmt.name, f"{stmt.name}()")
    if stmt.decorator_list:
        return case
    return _split(case, [s for s in stmt.body if not _is_docstring(s)], scope)


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
    scope = file_scope(tree)
    setup: list[ast.stmt] = []
    split_only: list[ast.stmt] = []  # setup the split cases no longer need
    cases: list[TestCase] = []
    needs_entry = False
    for stmt in tree.body:
        if isinstance(stmt, ast.Assert):
            cases.append(_split(TestCase(_short(stmt), _harden([stmt])), [stmt], scope))
        elif _is_check_call(stmt) or _is_main_guard(stmt):
            continue
        elif isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test"):
            own = None if _used_elsewhere(tree, stmt) else scope
            case = _test_function_case(stmt, own) if not stmt.args.args else None
            if case is not None:
                cases.append(case)
            setup.append(stmt)
            if case is not None and case.checks:
                split_only.append(stmt)
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            own = None if _used_elsewhere(tree, stmt) else scope
            found = _check_cases(stmt, own)
            cases.extend(found)
            needs_entry = True
            setup.append(stmt)
            # Split per assert, each case carries its own copy of the body: the function
            # itself (with every expected value) stays out of the candidate's process.
            if own is not None and not found[0].source.startswith("check("):
                split_only.append(stmt)
        else:
            setup.append(stmt)
    if not cases:
        raise SandboxInputError(
            f"{label}: no tests found (expected test_* functions, check(candidate) or asserts)"
        )
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    split_only.extend(_settle_constants(setup, split_only, cases, scope))
    split_setup = _harden([s for s in setup if s not in split_only]) if split_only else None
    return TestSuite(_harden(setup), tuple(cases), digest, needs_entry, split_setup)


def _settle_constants(
    setup: list[ast.stmt], split_only: list[ast.stmt], cases: list[TestCase], scope: Scope
) -> list[ast.stmt]:
    """The constant assignments the candidate's process does not need, once every split
    case that shares a constant with code running there is put back in-process (in place,
    in ``cases``): a constant some check uses is kept from the child when all its readers
    are split; constants no check uses stay in the setup."""
    assignments = {constant_name(s): s for s in setup if constant_name(s) in dict(scope.constants)}
    while True:
        child = [s for s in setup if s not in split_only and s not in assignments.values()]
        texts = [c.probe if c.checks else c.source for c in cases]
        needed = _names_in(child, texts) & set(assignments)
        back = [i for i, c in enumerate(cases) if any(k.uses & needed for k in c.checks)]
        if not back:
            hidden = {name for c in cases for k in c.checks for name in k.uses}
            return [s for name, s in assignments.items() if name in hidden - needed]
        for i in back:
            cases[i] = TestCase(cases[i].name, cases[i].source)


def _names_in(statements: list[ast.stmt], sources: list[str]) -> set[str]:
    trees: list[ast.AST] = [*statements, *(ast.parse(text) for text in sources)]
    return {n.id for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _used_elsewhere(tree: ast.Module, definition: ast.FunctionDef) -> bool:
    """Whether anything but the skipped ``check(...)`` calls names ``definition``."""
    for stmt in tree.body:
        if stmt is definition or _is_check_call(stmt) or _is_main_guard(stmt):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name | ast.FunctionDef | ast.ClassDef) and (
                getattr(node, "id", None) == definition.name
                or getattr(node, "name", None) == definition.name
            ):
                return True
    return False


def read_python_text(path: Path, what: str) -> str:
    """Read a Python file as UTF-8 text (a BOM dropped), with one clear SandboxInputError
    line for each way it can be bad; an empty file is read as "".

    ``what`` names the file's role in the messages ("tests", "candidate", "problem").
    """
    try:
        if not path.exists():
            raise SandboxInputError(f"{what} {path}: no such file")
        if not path.is_file():
            raise SandboxInputError(f"{what} {path}: not a regular file")
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SandboxInputError(f"{what} {path}: cannot read ({reason})") from exc
    if b"\x00" in data:
        raise SandboxInputError(f"{what} {path}: binary file, not Python source")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SandboxInputError(f"{what} {path}: not UTF-8 text") from exc


def read_python_source(path: Path, what: str) -> str:
    """:func:`read_python_text` for a file that must hold code: an empty one is an error."""
    text = read_python_text(path, what)
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
