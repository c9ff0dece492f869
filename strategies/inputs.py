"""Inputs to run candidates on: the visible tests' calls and calls the models propose.

Execution-agreement strategies (``mbr-exec``, ``cluster``) compare what programs *return*,
so they need inputs, not tests: a call ``f(<arguments>)`` needs no expected value, and a
model that cannot work out the right answer can still propose a good input. The visible
tests give the first inputs (every call of the target in them, ``assert f(1, 2) == 3``
gives ``f(1, 2)``); chat models are then asked for more calls, one per line, and base models
continue the stub followed by the visible calls and ``<name>(``.

A call of the target is kept when its line parses on its own (the call is normalised with
:func:`ast.unparse`; from ``assert f(x) == y``, which small models write although asked for
calls only, ``f(x)`` is kept) and its arguments use no name but builtins and the names they
bind themselves (a lambda's parameters, a comprehension's targets): a call that reads a test's
local variable could not run on its own. Calls are de-duplicated (also against the visible
ones) and capped (``n`` per model, :data:`MAX_INPUTS` in all), taken from the models in
turn so that every model's inputs are present.
"""

from __future__ import annotations

import ast
import builtins
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.models.base import Prompt
from codeens.prompts import context_before, specification
from codeens.pyast import parse_or_none
from codeens.strategies.asking import ask_every_model
from codeens.strategies.interface import Context

if TYPE_CHECKING:
    from codeens.problem import Problem
    from codeens.stub import Stub

MAX_INPUTS = 40
"""Model-proposed calls kept at most, over all models (visible calls come on top)."""
MAX_LINE = 400
"""Longer lines are dropped: they are usually runaway generations."""
MAX_EXAMPLES = 8
"""Visible calls shown to base models as examples of the format."""
SYSTEM = (
    "You are a careful Python tester. You choose inputs that exercise a function's "
    "ordinary cases and its edge cases, always within its specification."
)
_BUILTINS = frozenset(dir(builtins))


class InputOptions(BaseModel):
    """Options of the strategies that run candidates on model-proposed inputs."""

    model_config = ConfigDict(extra="forbid")

    inputs: int = Field(
        10, ge=0, le=100, description="Calls asked of each model; 0: the visible calls only."
    )
    input_samples: int = Field(1, ge=1, le=20, description="Input-writing completions per model.")


def prompt_for_inputs(problem: Problem, stub: Stub, tests: str, n: int) -> Prompt:
    """The prompt asking for ``n`` calls of ``stub`` (chat messages and a base prefix)."""
    context = context_before(problem, stub)
    parts = specification(problem, stub, tests)
    parts.append(
        f"Write {n} new, different calls of `{stub.name}`, one per line, each of the form "
        f"`{stub.name}(<arguments>)` with literal arguments that the specification allows. "
        "Write only the calls: no assert, no expected value, no print. Cover ordinary inputs "
        "and edge cases. Reply with only the calls in one ```python code block."
    )
    messages = (
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    )
    examples = "".join(f"{call}\n" for call in visible_calls(tests, stub.name)[:MAX_EXAMPLES])
    prefix = (
        f"{context}{stub.prompt_text.rstrip()}\n    pass\n\n\n# example calls\n"
        f"{examples}{base_continuation(stub.name)}"
    )
    return Prompt(messages=messages, prefix=prefix)


def base_continuation(name: str) -> str:
    """What a base model's input prompt ends with; its completion continues this text."""
    return f"{name}("


def _standalone(call: ast.Call) -> bool:
    """Whether the call's arguments read no name but builtins and names they bind."""
    bound = {a.arg for n in ast.walk(call) if isinstance(n, ast.Lambda) for a in n.args.args}
    names = [n for n in ast.walk(call) if isinstance(n, ast.Name)]
    bound |= {n.id for n in names if isinstance(n.ctx, ast.Store)}
    return all(n.id in _BUILTINS or n.id in bound for n in names if n is not call.func)


def _one_call(node: ast.AST, name: str) -> str | None:
    """The normal form of ``node`` when it is a standalone call of ``name``, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    if node.func.id != name or not _standalone(node):
        return None
    return ast.unparse(node)


def _calls_in(tree: ast.AST, name: str, found: dict[str, None]) -> None:
    for node in ast.walk(tree):
        call = _one_call(node, name)
        if call is not None:
            found.setdefault(call)


def parse_calls(text: str, name: str) -> list[str]:
    """The standalone calls of ``name`` on lines of ``text`` that parse on their own,
    normalised, in order, de-duplicated (fenced or not, indented or not; a statement over
    several lines is dropped). Small models often write ``assert f(x) == y`` although
    asked for calls only: the call is kept, the expected value is not."""
    found: dict[str, None] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if f"{name}(" not in line or len(line) > MAX_LINE:
            continue
        tree = parse_or_none(line)
        if tree is None:
            continue
        _calls_in(tree, name, found)
    return list(found)


def visible_calls(tests: str, name: str) -> list[str]:
    """Every standalone call of ``name`` in the visible tests, normalised, de-duplicated."""
    tree = parse_or_none(tests)
    if tree is None:
        return []
    found: dict[str, None] = {}
    _calls_in(tree, name, found)
    return list(found)


@dataclass(frozen=True)
class Inputs:
    """The calls to run, where each came from, and what asking for them cost."""

    calls: tuple[str, ...]
    origins: tuple[str, ...]  # "visible" or the proposing model's name, one per call
    sources: tuple[dict[str, Any], ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model what came back, and what asking for inputs cost."""
        return {
            "visible": self.origins.count("visible"),
            "proposed": len(self.calls) - self.origins.count("visible"),
            "sources": list(self.sources),
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost": round(self.cost, 9),
        }


def collect_inputs(ctx: Context, n: int, samples: int) -> Inputs:
    """The visible calls, then the new calls the models propose: each model is asked for
    ``n`` in ``samples`` completions and at most ``n`` of its calls are kept (small models
    often write many more), at most ``MAX_INPUTS`` in all; none when ``n`` is 0.

    Seeds start at the run seed, so the same seed and models give the same inputs (and an
    identical request is served from the log). A model that fails here is noted only: it
    may still be fine for candidates.
    """
    seen = dict.fromkeys(visible_calls(ctx.tests, ctx.stub.name), "visible")
    if n == 0:
        return Inputs(tuple(seen), tuple(seen.values()))
    name = ctx.stub.name
    prompt = prompt_for_inputs(ctx.problem, ctx.stub, ctx.tests, n)
    asked = ask_every_model(
        ctx, prompt, "inputs", samples, lambda text: parse_calls(text, name),
        base_continuation(name),
    )  # fmt: skip
    cap = len(seen) + MAX_INPUTS
    kept = dict.fromkeys(asked.lines, 0)
    # Round robin over the models: a prolific model cannot crowd the others out.
    for row in itertools.zip_longest(*asked.lines.values()):
        for model, call in zip(asked.lines, row, strict=True):
            if call is None or call in seen or kept[model] == n or len(seen) == cap:
                continue
            seen[call] = model
            kept[model] += 1
    sources = tuple(
        s | {"kept": kept[s["model"]]} if "error" not in s else s for s in asked.sources
    )
    return Inputs(
        tuple(seen),
        tuple(seen.values()),
        sources,
        asked.input_tokens,
        asked.output_tokens,
        asked.cost,
    )
