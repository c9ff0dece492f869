"""What a test file binds, and which of its expressions are literals the driver can
evaluate alone (split.py decides the rest)."""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Calls the driver evaluates itself around the expression under test (name: most arguments),
# and the builtins a literal may call.
AROUND = {"abs": 1, "round": 2}
MATH_AROUND = {"isclose": 2, "fabs": 1}
_MATH_CONSTANTS = {"pi", "e", "tau", "inf", "nan"}
_LITERAL_CALLS = {
    "float", "complex", "int", "str", "bytes", "bytearray", "set", "frozenset", "tuple", "list",
}  # fmt: skip
_TRUSTED_NAMES = set(AROUND) | _LITERAL_CALLS
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
NUMBER_OPS = tuple(_ARITHMETIC)

# The comparison operators of asserts, by their source spelling.
COMPARISONS: dict[type[ast.cmpop], str] = {
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
class Scope:
    """What the test file binds: names of the math module and its functions, and every
    other name it defines (helpers whose code would run in the candidate's process)."""

    math_names: frozenset[str] = frozenset()
    math_functions: tuple[tuple[str, str], ...] = ()
    helpers: frozenset[str] = frozenset()
    rebound: frozenset[str] = frozenset()
    # NAME = literal at the top level, bound nowhere else: the driver can evaluate it
    constants: tuple[tuple[str, ast.expr], ...] = ()

    def constant(self, name: str) -> ast.expr | None:
        return dict(self.constants).get(name)

    def math_function(self, node: ast.expr) -> str | None:
        """``isclose``/``fabs`` when ``node`` names the real math function."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in self.math_names
        ):
            return node.attr
        if isinstance(node, ast.Name):
            return dict(self.math_functions).get(node.id)
        return None

    def trusted(self, name: str) -> bool:
        return name in _TRUSTED_NAMES and name not in self.rebound


def file_scope(tree: ast.Module) -> Scope:
    """The names a test file binds, read from its top level and its test bodies."""
    counts: dict[str, int] = {}
    math_names: set[str] = set()
    math_functions: dict[str, str] = {}
    helpers: set[str] = set()
    for node in ast.walk(tree):
        for name in _bound_names(node):
            counts[name] = counts.get(name, 0) + 1
        if isinstance(node, ast.Import):
            math_names.update(a.asname or a.name for a in node.names if a.name == "math")
        elif isinstance(node, ast.ImportFrom) and node.module == "math" and not node.level:
            for alias in node.names:
                if alias.name in MATH_AROUND:
                    math_functions[alias.asname or alias.name] = alias.name
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if not stmt.name.startswith("test") and stmt.name != "check":
                helpers.add(stmt.name)
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Lambda):
            helpers.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    once = {name for name, n in counts.items() if n == 1}
    scope = Scope(
        math_names=frozenset(math_names & once),
        math_functions=tuple(sorted((k, v) for k, v in math_functions.items() if k in once)),
        helpers=frozenset(helpers),
        rebound=frozenset(counts),
    )
    constants = []
    for stmt in tree.body:
        constant = constant_name(stmt)
        if constant in once and isinstance(stmt, ast.Assign) and is_literal(stmt.value, scope):
            constants.append((constant, stmt.value))
    return dataclasses.replace(scope, constants=tuple(constants))


def constant_name(stmt: ast.stmt) -> str | None:
    """``NAME`` for a top-level ``NAME = value``."""
    if (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
    ):
        return stmt.targets[0].id
    return None


def _bound_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
        return [node.id]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.arg):
        return [node.arg]
    return []


# ------------------------------------------------------------------------------- literals


def is_literal(node: ast.expr, scope: Scope) -> bool:
    """Whether the driver can evaluate ``node`` alone: constants and containers of them,
    signs, small arithmetic on numbers, float('nan')-style calls, math constants."""
    try:
        _fold(node, scope)
    except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError):
        return False
    return True


def _fold(node: ast.expr, scope: Scope) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and scope.constant(node.id) is not None:
        return _fold(scope.constant(node.id), scope)  # type: ignore[arg-type]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise ValueError("starred")
        return [_fold(e, scope) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("dict unpacking")
        keys = [k for k in node.keys if k is not None]
        return [(_fold(k, scope), _fold(v, scope)) for k, v in zip(keys, node.values, strict=True)]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _fold(node.operand, scope)
        if type(operand) not in (int, float, complex):
            raise TypeError("sign of a non-number")
        return operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, NUMBER_OPS):
        return _fold_arithmetic(node, scope)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if not scope.trusted(node.func.id) or node.func.id not in _LITERAL_CALLS:
            raise ValueError("call")
        if node.keywords or len(node.args) > 2:
            raise ValueError("call arguments")
        return [_fold(a, scope) for a in node.args]
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in scope.math_names
        and node.attr in _MATH_CONSTANTS
    ):
        return getattr(math, node.attr)
    raise ValueError("not a literal")


def _fold_arithmetic(node: ast.BinOp, scope: Scope) -> object:
    left, right = _fold(node.left, scope), _fold(node.right, scope)
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        raise TypeError("arithmetic on a non-number")
    if isinstance(node.op, ast.Pow) and abs(right) > 64:
        raise ValueError("large power")
    return _ARITHMETIC[type(node.op)](left, right)
