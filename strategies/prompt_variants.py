"""Prompt variants: one task asked in several ways, for diversity among one model's samples.

- ``direct``: the pipeline's own prompt (:func:`codeens.prompts.solve_prompt`).
- ``plan``: a short plan in prose first, then the code (chain of thought).
- ``tests-first``: a few test cases as asserts first, then the implementation.
- ``differently``: shown an existing solution, asked for another approach.

Each answer still ends in a ```python block with the function: extraction
(:func:`codeens.extract.extract_function`) takes fenced blocks first and keeps only the
definition it needs, so a plan in prose or a block of asserts never reaches the candidate.
A base model only continues the stub (its prompt is the prefix, the same for every
variant), so only ``direct`` has a completion form.
"""

from __future__ import annotations

from typing import Literal

from codeens.models.base import Prompt
from codeens.problem import Problem
from codeens.prompts import REPLY, solve_prompt
from codeens.stub import Stub

Variant = Literal["direct", "plan", "tests-first", "differently"]
VARIANTS: tuple[Variant, ...] = ("direct", "plan", "tests-first", "differently")

PLAN = (
    "First write a short plan in plain prose: at most five numbered steps saying how the "
    "function will work, no code. Then write one ```python code block holding the complete "
    "function, with the imports and helper functions it needs; no tests or example usage."
)
TESTS_FIRST = (
    "First write three to five test cases for the function as `assert` statements in one "
    "```python code block, edge cases included. Then write a second ```python code block "
    "holding the complete function, with the imports and helper functions it needs, that "
    "passes them."
)
DIFFERENTLY = (
    "Here is an existing solution:\n```python\n{code}```\nSolve the task differently: use "
    "another approach (a different algorithm or a different structure), not a rewording of "
    "this solution. It must still be correct."
)


def variant_prompt(
    variant: Variant, problem: Problem, stub: Stub, tests: str, shown: str = ""
) -> Prompt:
    """The prompt of one variant; ``shown`` is the solution ``differently`` departs from."""
    if variant == "plan":
        return solve_prompt(problem, stub, tests, reply=PLAN)
    if variant == "tests-first":
        return solve_prompt(problem, stub, tests, reply=TESTS_FIRST)
    if variant == "differently":
        code = shown if shown.endswith("\n") else shown + "\n"
        return solve_prompt(problem, stub, tests, DIFFERENTLY.format(code=code), reply=REPLY)
    return solve_prompt(problem, stub, tests)
