"""Prompts for ``moa``: the problem plus earlier candidates, each with its test results.

One :class:`~codeens.models.base.Prompt` serves both kinds of model:

* instruction models get the ordinary solve prompt (:func:`codeens.prompts.solve_prompt`)
  with the candidates appended to the user message: each candidate's code in a fence, its
  verdict and pass count, the failing tests with their assertion messages (which carry the
  compared values, ``-1 == 5 is false``), the error message or "timed out", and the end of
  its output; then the instruction to evaluate them critically and write one corrected
  function.
* base models continue a file: the code before the stub, then the candidates as comments,
  each under a header such as ``# Candidate 1 (passed 1/3 tests; failed: assert add(2, 3)
  == 5: -1 == 5 is false)``, then the stub's signature and docstring, which the model
  continues as usual. Comments keep the prefix valid Python, so extraction still reads
  ``prefix + completion`` as one file, and the file's own code stays uncopied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codeens.models.base import Prompt
from codeens.problem import Problem
from codeens.prompts import context_before, solve_prompt
from codeens.sandbox.results import ExecutionResult, Verdict
from codeens.stub import Stub

MAX_FAILURES_SHOWN = 4
MAX_MESSAGE_CHARS = 300
MAX_OUTPUT_CHARS = 400

# Adapted from Wang et al.'s aggregate-and-synthesise prompt, with execution results added.
INSTRUCTION = (
    "Below are {count} candidate implementation(s) of `{name}` written earlier, each with its "
    "results on the tests above. Some or all of them may be wrong. Critically evaluate them: "
    "keep what works, find the mistakes that make tests fail, and do not simply copy any one "
    "of them. Then write one corrected, complete implementation of `{name}`."
)
CLOSING = (
    "Reply with one ```python code block containing the corrected complete function `{name}` "
    "and any imports or helpers it needs."
)
BASE_HEADER = (
    "# Earlier attempts at `{name}` with their results on the tests. They may be wrong:\n"
    "# do not copy one blindly; keep what works and fix what fails.\n"
)
BASE_FOOTER = "# A corrected, complete implementation:\n"


@dataclass(frozen=True)
class Reference:
    """A candidate shown to a layer: its code and its result on the visible tests."""

    code: str
    result: ExecutionResult | None


def _one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _clip(code: str, max_chars: int) -> str:
    code = code.strip("\n")
    if len(code) <= max_chars:
        return code
    return code[:max_chars].rstrip() + "\n# ... (truncated)"


def status_line(result: ExecutionResult | None) -> str:
    """How a candidate fared, in a few words: ``passed 1/3 tests``, ``timed out``..."""
    if result is None:
        return "not run: there are no visible tests"
    counts = f"{result.tests_passed}/{result.tests_total} tests"
    verdict = result.verdict
    if verdict in (Verdict.PASSED, Verdict.FAILED):
        return f"passed {counts}"
    if verdict is Verdict.ERROR:
        return "error: the code does not run"
    if verdict is Verdict.TIMEOUT:
        return "timed out"
    if verdict is Verdict.MEMORY:
        return "ran out of memory"
    if verdict is Verdict.OUTPUT_LIMIT:
        return "printed too much output"
    return "could not be run (sandbox error)"


def failures(result: ExecutionResult | None) -> list[str]:
    """``<test>: <message>`` for each failing test; the error itself for a broken import."""
    if result is None:
        return []
    if result.verdict is Verdict.ERROR:
        return [_one_line(result.message)] if result.message else []
    lines = []
    for test in result.tests:
        if test.outcome == "passed":
            continue
        # "AssertionError: " adds nothing to an assert's name; other exceptions keep theirs.
        message = test.message.removeprefix("AssertionError: ").strip()
        lines.append(_one_line(f"{test.name}: {message}" if message else test.name))
    return lines


def _output_tail(result: ExecutionResult | None) -> str:
    if result is None or result.verdict is Verdict.PASSED or not result.output.strip():
        return ""
    tail = result.output.strip()
    return tail if len(tail) <= MAX_OUTPUT_CHARS else "..." + tail[-MAX_OUTPUT_CHARS:]


def chat_block(number: int, reference: Reference, max_chars: int) -> str:
    """One candidate for an instruction model: header, fenced code, failures, output."""
    parts = [
        f"### Candidate {number}: {status_line(reference.result)}",
        f"```python\n{_clip(reference.code, max_chars)}\n```",
    ]
    failed = failures(reference.result)
    if failed:
        shown = [f"- {line}" for line in failed[:MAX_FAILURES_SHOWN]]
        if len(failed) > MAX_FAILURES_SHOWN:
            shown.append(f"- ... and {len(failed) - MAX_FAILURES_SHOWN} more")
        broken = reference.result is not None and reference.result.verdict is Verdict.ERROR
        label = "Error" if broken else "Failing tests (test: message)"
        parts.append(f"{label}:\n" + "\n".join(shown))
    tail = _output_tail(reference.result)
    if tail:
        parts.append(f"Its output (end):\n```\n{tail}\n```")
    return "\n".join(parts)


def base_block(number: int, reference: Reference, max_chars: int) -> str:
    """One candidate for a base model: a comment header, then the code commented out."""
    details = [status_line(reference.result)]
    failed = failures(reference.result)
    if failed:
        details.append("failed: " + "; ".join(failed[:2]))
        if len(failed) > 2:
            details.append(f"{len(failed) - 2} more failing")
    header = f"# Candidate {number} ({'; '.join(details)})"
    body = "\n".join(f"# {line}".rstrip() for line in _clip(reference.code, max_chars).split("\n"))
    return f"{header}\n{body}\n#\n"


def layer_prompt(
    problem: Problem,
    stub: Stub,
    tests: str,
    references: Sequence[Reference],
    max_chars: int,
    instruction: str = INSTRUCTION,
) -> Prompt:
    """The prompt for a refining layer or the final aggregator, for chat and base models.

    ``instruction`` opens the chat feedback (``{count}`` and ``{name}`` are filled in);
    ``repair`` passes its own, for one program to fix rather than several to weigh.
    """
    name = stub.name
    feedback = "\n\n".join(
        [instruction.format(count=len(references), name=name)]
        + [chat_block(i, ref, max_chars) for i, ref in enumerate(references, 1)]
        + [CLOSING.format(name=name)]
    )
    chat = solve_prompt(problem, stub, tests, feedback)
    comments = "".join(base_block(i, ref, max_chars) for i, ref in enumerate(references, 1))
    prefix = (
        context_before(problem, stub)
        + BASE_HEADER.format(name=name)
        + "#\n"
        + comments
        + BASE_FOOTER
        + "\n"
        + stub.prompt_text.rstrip()
        + "\n"
    )
    return Prompt(messages=chat.messages, prefix=prefix)
