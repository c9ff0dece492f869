"""Split assertions so that expected values never enter the candidate's process.

An assert whose expected side is built from literals is cut in two: the candidate's process
evaluates only the expression under test (the *hole*, e.g. ``candidate(1, 2)``) and sends
its value back as plain data; the trusted driver evaluates the rest (the *check*, e.g.
``VALUE == 3`` or ``abs(VALUE - 0.5) < 1e-6``) with its own operators. A test is split only
when every one of its asserts can be, and none of the code that still runs in the
candidate's process could hold or decide what the test expects (no comparison, ``raise``,
branch, or helper defined by the test file); every other test runs in-process as before.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

from codeens.sandbox.split_scope import (
    AROUND,
    COMPARISONS,
    MATH_AROUND,
    NUMBER_OPS,
    Scope,
    is_literal,
)

VALUE = "__codeens_value__"
MATH = "__codeens_math__"
PROBE = "__codeens_probe__"
CASE = "__codeens_case__"

_IDENTITY_LITERALS = (None, True, False)
# Nothing that runs in the candidate's process may decide a test or hide its expectation.
_CHILD_FORBIDDEN = (
    ast.Compare,
    ast.Assert,
    ast.Raise,
    ast.If,
    ast.IfExp,
    ast.While,
    ast.Try,
    ast.Match,
    ast.Return,
    ast.Yield,
    ast.YieldFrom,
    ast.Await,
    ast.NamedExpr,
    ast.Global,
    ast.Nonlocal,
)


@dataclass(frozen=True)
class Check:
    """What the driver does with one value: ``ops`` between ``operands`` (a comparison
    chain), or a truth test of the single operand when ``ops`` is empty. Operands are
    expressions over VALUE, literals and the names the driver binds."""

    ops: tuple[str, ...]
    operands: tuple[str, ...]
    hole: str
    text: str = ""
    message: str = ""
    uses: frozenset[str] = frozenset()  # the test file's constants written into operands

    def to_wire(self) -> dict[str, object]:
        return {
            "ops": list(self.ops),
            "operands": list(self.operands),
            "hole": self.hole,
            "text": self.text,
            "message": self.message,
        }


@dataclass(frozen=True)
class Split:
    """A test cut in two: the child's probe (a generator yielding each hole's value in
    order) and the driver's checks, one per yielded value."""

    probe: str
    checks: tuple[Check, ...]


def split_body(
    body: list[ast.stmt], scope: Scope, param: str | None = None, arg: str | None = None
) -> Split | None:
    """Split a test body (statements and asserts, run in order), or None if any part of it
    must stay in-process. ``param``/``arg``: the case function's one parameter, bound to
    ``arg`` (``candidate`` to the entry point)."""
    out: list[ast.stmt] = []
    checks = []
    for stmt in body:
        if isinstance(stmt, ast.Assert):
            found = _split_assert(stmt, scope)
            if found is None:
                return None
            check, hole = found
            out.append(ast.Expr(ast.Yield(hole)))
            checks.append(check)
        elif child_safe(stmt, scope):
            out.append(stmt)
        else:
            return None
    if not checks:
        return None
    return Split(_probe_source(out, param, arg), tuple(checks))


def _probe_source(body: list[ast.stmt], param: str | None, arg: str | None) -> str:
    params = [ast.arg(param)] if param else []
    args: list[ast.expr] = [ast.Name(arg, ast.Load())] if arg else []
    fn = ast.FunctionDef(
        name=CASE,
        args=ast.arguments(posonlyargs=[], args=params, kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=body,
        decorator_list=[],
        returns=None,
    )
    call = ast.Call(ast.Name(CASE, ast.Load()), args, [])
    assign = ast.Assign([ast.Name(PROBE, ast.Store())], call)
    module = ast.Module(body=[fn, assign], type_ignores=[])
    return ast.unparse(ast.fix_missing_locations(module))


def _split_assert(stmt: ast.Assert, scope: Scope) -> tuple[Check, ast.expr] | None:
    """The check the driver runs for ``stmt`` and its hole, or None to keep it in-process."""
    shape = _Shape(scope)
    test = stmt.test
    if isinstance(test, ast.Compare):
        parts = [shape.walk(e) for e in (test.left, *test.comparators)]
        ops = tuple(COMPARISONS[type(op)] for op in test.ops)
    else:
        parts = [shape.walk(test)]
        ops = ()
    if shape.refused or len(shape.holes) > 1 or any(p is None for p in parts):
        return None
    if not shape.holes and not (len(parts) == 1 and isinstance(test, ast.Constant)):
        return None
    if not _identity_ok(ops, test):
        return None
    hole: ast.expr = shape.holes[0] if shape.holes else ast.Constant(None)
    if not child_safe(hole, scope):
        return None
    operands = tuple(ast.unparse(p) for p in parts if p is not None)
    message = stmt.msg.value if isinstance(stmt.msg, ast.Constant) else ""
    uses = frozenset(shape.constants)
    return Check(ops, operands, _short(hole), _short(test), str(message), uses), hole


def _short(node: ast.AST, limit: int = 200) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _identity_ok(ops: tuple[str, ...], test: ast.expr) -> bool:
    """``is`` only against None/True/False, where identity is equality of plain values."""
    if not any(op in ("is", "is not") for op in ops):
        return True
    assert isinstance(test, ast.Compare)
    operands = [test.left, *test.comparators]
    return all(
        _singleton(operands[i]) or _singleton(operands[i + 1])
        for i, op in enumerate(ops)
        if op in ("is", "is not")
    )


def _singleton(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and any(node.value is v for v in _IDENTITY_LITERALS)


class _Shape:
    """Walks one side of an assert: literals stay, trusted operations around the hole
    become the driver's, the rest is the hole (replaced by VALUE)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.holes: list[ast.expr] = []
        self.refused = False
        self.constants: set[str] = set()

    def walk(self, node: ast.expr) -> ast.expr | None:
        if is_literal(node, self.scope):
            return self._rename_math(node)
        children = self._trusted_children(node)
        if children is None:
            self.holes.append(node)
            return ast.Name(VALUE, ast.Load())
        before = len(self.holes)
        shaped = [self.walk(c) for c in children]
        if len(self.holes) == before:
            self.refused = True  # arithmetic on literals alone: no hole to carry it
            return None
        if all(isinstance(s, ast.Name) and s.id == VALUE for s in shaped) and not isinstance(
            node, ast.UnaryOp
        ):
            del self.holes[before:]  # nothing of the driver's here: the whole node is the hole
            self.holes.append(node)
            return ast.Name(VALUE, ast.Load())
        return self._rebuild(node, shaped)

    def _trusted_children(self, node: ast.expr) -> list[ast.expr] | None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, NUMBER_OPS):
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
            return [node.operand]
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
            return None
        name = self.scope.math_function(node.func)
        if name in MATH_AROUND and len(node.args) == MATH_AROUND[name]:
            if name == "isclose" and not all(
                k.arg in ("rel_tol", "abs_tol") and is_literal(k.value, self.scope)
                for k in node.keywords
            ):
                return None
            return list(node.args)
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in AROUND
            and self.scope.trusted(func.id)
            and not node.keywords
            and 1 <= len(node.args) <= AROUND[func.id]
        ):
            return list(node.args)
        return None

    def _rebuild(self, node: ast.expr, shaped: list[ast.expr | None]) -> ast.expr:
        parts = [s for s in shaped if s is not None]
        if isinstance(node, ast.BinOp):
            return ast.BinOp(parts[0], node.op, parts[1])
        if isinstance(node, ast.UnaryOp):
            return ast.UnaryOp(node.op, parts[0])
        assert isinstance(node, ast.Call)
        name = self.scope.math_function(node.func)
        if name in MATH_AROUND:
            func: ast.expr = ast.Attribute(ast.Name(MATH, ast.Load()), name, ast.Load())
        else:
            func = node.func  # abs or round, the driver's own
        keywords = [ast.keyword(k.arg, self._rename_math(k.value)) for k in node.keywords]
        return ast.Call(func, parts, keywords)

    def _rename_math(self, node: ast.expr) -> ast.expr:
        """A literal for the driver: math constants through its own module, the test file's
        constants written out."""
        renamer = _Literal(self.scope)
        renamed = renamer.visit(copy.deepcopy(node))
        self.constants |= renamer.used
        return renamed  # type: ignore[no-any-return]


class _Literal(ast.NodeTransformer):
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.used: set[str] = set()

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.scope.math_names:
            return ast.Name(MATH, ast.Load())
        value = self.scope.constant(node.id)
        if value is None:
            return node
        self.used.add(node.id)
        return self.visit(copy.deepcopy(value))  # type: ignore[no-any-return]


def child_safe(node: ast.AST, scope: Scope) -> bool:
    """Code that may run in the candidate's process: nothing that compares, raises,
    branches or calls a helper the test file defines."""
    for sub in ast.walk(node):
        if isinstance(sub, _CHILD_FORBIDDEN):
            return False
        if isinstance(sub, ast.Name) and sub.id in scope.helpers:
            return False
    return True
