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


def solve_prompt(
    problem: Problem, stub: Stub, tests: str, feedback: str = "", reply: str = REPLY
) -> Prompt:
    """The prompt for one target function; ``feedback`` is extra context from a strategy,
    ``reply`` says what the answer must look like (prompt variants ask for a plan first)."""
    shown = tests if len(tests) <= MAX_TESTS_SHOWN else tests[:MAX_TESTS_SHOWN] + "\n# ...\n"
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
