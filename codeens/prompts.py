"""What the models are asked: a chat prompt for instruction models, a prefix for base ones."""

from __future__ import annotations

from codeens.models.base import Prompt
from codeens.problem import Problem
from codeens.stub import Stub

SYSTEM = (
    "You are a careful Python programmer. You write correct, complete, self-contained "
    "implementations that pass their tests."
)
MAX_TESTS_SHOWN = 1500
REPLY = (
    "Reply with only one ```python code block holding the complete function, with "
    "the imports and helper functions it needs; no tests, example usage or explanation."
)


def context_before(problem: Problem, stub: Stub) -> str:
    """The file up to the stub: imports, helpers and constants the body may use."""
    # Stub offsets are byte offsets into the UTF-8 source.
    before = problem.source.encode("utf-8")[: stub.start_byte].decode("utf-8")
    return before.rstrip() + "\n\n" if before.strip() else ""


def shown_tests(tests: str) -> str:
    """The visible tests as a prompt shows them: cut after MAX_TESTS_SHOWN characters."""
    return tests if len(tests) <= MAX_TESTS_SHOWN else tests[:MAX_TESTS_SHOWN] + "\n# ...\n"


def specification(problem: Problem, stub: Stub, tests: str) -> list[str]:
    """The prompt paragraphs that show the function's specification and its visible tests,
    for requests about the function other than its code (tests, inputs)."""
    parts = [
        f"Here is the specification of the Python function `{stub.name}`:",
        f"```python\n{context_before(problem, stub)}{stub.prompt_text.rstrip()}\n```",
    ]
    if tests.strip():
        parts.append(f"It already has these tests:\n```python\n{shown_tests(tests).strip()}\n```")
    return parts


def solve_prompt(
    problem: Problem, stub: Stub, tests: str, feedback: str = "", reply: str = REPLY
) -> Prompt:
    """The prompt for one target function; ``feedback`` is extra context from a strategy,
    ``reply`` says what the answer must look like (prompt variants ask for a plan first)."""
    shown = shown_tests(tests)
    parts = [
        f"Implement the Python function `{stub.name}`. Keep its name and signature.",
        reply,
        f"```python\n{context_before(problem, stub)}{stub.prompt_text}\n```",
    ]
    if shown.strip():
        parts.append(f"It must pass these tests:\n```python\n{shown.strip()}\n```")
    if feedback:
        parts.append(feedback)
    messages = (
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    )
    prefix = context_before(problem, stub) + stub.prompt_text.rstrip() + "\n"
    return Prompt(messages=messages, prefix=prefix)
