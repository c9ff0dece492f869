"""Asking every member for lines of code that are not candidates (tests, inputs).

Each usable model gets the same prompt through ``ctx.ask`` (logged, seeded, served from the
log when identical); a base model's answer continues the prompt's last line, so that line's
start is put back before parsing. The logged code of an answer is the lines kept from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codeens.models.base import Prompt
from codeens.strategies.interface import Context, Question


@dataclass
class Asked:
    """Per model, its distinct parsed lines in the order given; per model, what came back
    (samples, or the error); and what the asking cost."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


def ask_every_model(
    ctx: Context,
    prompt: Prompt,
    purpose: str,
    samples: int,
    parse: Callable[[str], list[str]],
    continuation: str,
) -> Asked:
    """``samples`` answers of every model not failed so far, parsed into lines by ``parse``;
    ``continuation`` is what a base model's answer continues (prepended before parsing).
    A model that fails here is noted in ``sources`` only: it may be fine for candidates."""
    asked = Asked()
    for model in ctx.models:
        if model.name in ctx.failures:
            continue
        prefix = "" if model.chat else continuation

        def keep(text: str, prefix: str = prefix) -> str | None:
            return "\n".join(parse(prefix + text)) or None

        answers = ctx.ask(model, Question(prompt, purpose, samples, keep=keep))
        if answers.error:
            asked.sources.append({"model": model.name, "samples": 0, "error": answers.error})
            continue
        mine: dict[str, None] = {}
        for sample in answers.samples:
            mine.update(dict.fromkeys((sample.code or "").splitlines()))
            asked.input_tokens += sample.generated.input_tokens
            asked.output_tokens += sample.generated.output_tokens
            asked.cost += sample.cost
        asked.lines[model.name] = list(mine)
        asked.sources.append({"model": model.name, "samples": len(answers.samples)})
    return asked
