"""Tests written by the models themselves, for execution agreement (CodeT).

Chat models get a prompt built from the stub's signature and docstring (and the visible
tests as examples of the format) asking for ``n`` one-line ``assert <call> == <expected>``
tests; base models continue the stub followed by ``# tests`` and ``assert <name>(``. Only
single-line ``assert`` statements that call the target function are kept: each is parsed
with :mod:`ast`, normalised with :func:`ast.unparse`, de-duplicated (also against the
visible tests, which add nothing new) and capped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codeens.models.base import Prompt
from codeens.prompts import context_before, specification
from codeens.pyast import parse_or_none
from codeens.strategies.asking import ask_every_model
from codeens.strategies.interface import Context

if TYPE_CHECKING:
    from codeens.problem import Problem
    from codeens.stub import Stub

MAX_TESTS = 20
"""Generated tests kept at most (or ``n`` when more were asked)."""
MAX_LINE = 400
"""Longer assert lines are dropped: they are usually runaway generations."""
MAX_EXAMPLES = 8
"""Visible asserts shown to base models as examples of the format."""
SYSTEM = (
    "You are a careful Python tester. You write short, correct unit tests whose expected "
    "values follow exactly from the specification."
)


def base_continuation(name: str) -> str:
    """What a base model's test prompt ends with; its completion continues this text."""
    return f"assert {name}("


def prompt_for_tests(problem: Problem, stub: Stub, tests: str, n: int) -> Prompt:
    """The prompt asking for ``n`` new tests of ``stub`` (chat messages and a base prefix)."""
    context = context_before(problem, stub)
    examples = visible_asserts(tests, stub.name)
    parts = specification(problem, stub, tests)
    parts.append(
        f"Write {n} new, different tests for `{stub.name}`, one per line, each of the form "
        f"`assert {stub.name}(<arguments>) == <expected value>`, with the expected value "
        "worked out exactly from the specification. Cover ordinary inputs and edge cases. "
        "Reply with only the assert lines in one ```python code block."
    )
    messages = (
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    )
    shown_examples = "".join(f"{line}\n" for line in examples[:MAX_EXAMPLES])
    prefix = (
        f"{context}{stub.prompt_text.rstrip()}\n    pass\n\n\n# tests\n"
        f"{shown_examples}{base_continuation(stub.name)}"
    )
    return Prompt(messages=messages, prefix=prefix)


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(node)
    )


def _one_assert(line: str, name: str) -> str | None:
    """The normal form of ``line`` when it is one assert calling ``name``, else None."""
    if len(line) > MAX_LINE or not line.startswith("assert"):
        return None
    tree = parse_or_none(line)
    if tree is None:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    if not _calls(tree.body[0].test, name):
        return None
    return ast.unparse(tree.body[0])


def parse_tests(text: str, name: str) -> list[str]:
    """Single-line asserts calling ``name`` in ``text``, normalised, in order, de-duplicated.

    Lines are taken from anywhere in the reply (fenced or not, indented or not); a statement
    spread over several lines does not parse on its own line and is dropped.
    """
    found: dict[str, None] = {}
    for raw in text.splitlines():
        test = _one_assert(raw.strip(), name)
        if test is not None:
            found.setdefault(test)
    return list(found)


def visible_asserts(tests: str, name: str) -> list[str]:
    """The one-line asserts calling ``name`` anywhere in the visible tests, normalised."""
    tree = parse_or_none(tests)
    if tree is None:
        return []
    found: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.lineno == node.end_lineno:
            test = _one_assert(ast.unparse(node), name)
            if test is not None:
                found.setdefault(test)
    return list(found)


@dataclass
class GeneratedTests:
    """The kept tests and, per model, what its test generation gave."""

    tests: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model what came back, and what test generation cost."""
        return {
            "sources": self.sources,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost": round(self.cost, 9),
        }


def generate_tests(ctx: Context, n: int, samples: int) -> GeneratedTests:
    """Ask every usable model for tests; log the samples; keep the usable asserts.

    Seeds start at the run seed, so the same seed and the same models give the same tests
    (and an identical request is served from the log). A model that fails here is noted in
    the result only: it may still be fine for candidates, so it is not a run failure.
    """
    name = ctx.stub.name
    prompt = prompt_for_tests(ctx.problem, ctx.stub, ctx.tests, n)
    asked = ask_every_model(
        ctx, prompt, "tests", samples, lambda text: parse_tests(text, name),
        base_continuation(name),
    )  # fmt: skip
    seen = set(visible_asserts(ctx.tests, name))
    cap = max(MAX_TESTS, n)
    out = GeneratedTests(
        input_tokens=asked.input_tokens, output_tokens=asked.output_tokens, cost=asked.cost
    )
    for source in asked.sources:
        kept = 0
        for test in asked.lines.get(source["model"], []):
            if test not in seen and len(out.tests) < cap:
                seen.add(test)
                out.tests.append(test)
                kept += 1
        out.sources.append(source | {"kept": kept})
    return out
