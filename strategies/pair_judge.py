"""The pairwise judge of ``rank-fuse``: which of two programs is correct, A or B?

Each chat model sees the specification and both programs, each with how it fared on the
visible tests (pass count and failing assertions with the compared values, as ``moa``
shows them), and is asked for one letter. LLM judges favour a position, so every pair is
asked in both orders (the first program as A, then as B) and votes are counted per program,
not per letter: a judge that always answers "A" gives each program one vote and decides
nothing. A model's votes count only when it answered in both orders, so that one order's
failure cannot bring the bias back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from codeens.models.base import Prompt
from codeens.strategies.interface import Candidate, Context, Question
from codeens.strategies.moa_prompts import failures, status_line

QUESTION = (
    "Which program is a correct implementation of the specification? "
    "Answer with one letter: A or B."
)
SYSTEM = "You review Python code. Answer with one letter."
MAX_TOKENS = 8
MAX_FAILURES_SHOWN = 4
PURPOSE = "pair-judge"
_WORD = re.compile(r"[A-Za-z]+")


def _block(letter: str, candidate: Candidate) -> str:
    parts = [
        f"Program {letter} (visible tests: {status_line(candidate.result)}):",
        f"```python\n{candidate.code.strip()}\n```",
    ]
    failed = failures(candidate.result)[:MAX_FAILURES_SHOWN]
    if failed:
        parts.append("Failing visible tests:\n" + "\n".join(f"- {line}" for line in failed))
    return "\n".join(parts)


def judge_prompt(spec: str, first: Candidate, second: Candidate) -> Prompt:
    """The question about one ordered pair: ``first`` is shown as A, ``second`` as B."""
    user = "\n\n".join(
        [
            f"Specification:\n```python\n{spec.strip()}\n```",
            _block("A", first),
            _block("B", second),
            QUESTION,
        ]
    )
    messages = (
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
    )
    return Prompt(messages=messages, prefix="")


def read_letter(text: str) -> Literal["A", "B"] | None:
    """The first word of the answer that is the capital letter A or B, else None."""
    for word in _WORD.findall(text):
        if word == "A":
            return "A"
        if word == "B":
            return "B"
    return None


@dataclass(frozen=True)
class Votes:
    """What the judges said about the pair (a, b): votes per program, answers that named
    neither letter, models that could not answer, and what the asking cost."""

    a: int = 0
    b: int = 0
    unreadable: int = 0
    errors: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    generations: int = 0
    tokens: int = 0
    cost: float = 0.0


def judge_pair(ctx: Context, a: Candidate, b: Candidate, samples: int) -> Votes:
    """Ask every usable chat model ``samples`` times in each order; count votes per program."""
    votes_a = votes_b = unreadable = generations = tokens = 0
    cost = 0.0
    errors: list[str] = []
    asked: list[str] = []
    for model in ctx.models:
        if not model.chat or model.name in ctx.failures:
            continue
        params = model.sampling.model_copy(update={"max_tokens": MAX_TOKENS})
        mine = {"a": 0, "b": 0, "unreadable": 0}
        failed = ""
        for first, second in ((a, b), (b, a)):
            prompt = judge_prompt(ctx.stub.prompt_text, first, second)
            answers = ctx.ask(model, Question(prompt, PURPOSE, samples, params))
            if answers.error:
                failed = answers.error
                break
            generations += len(answers.samples)
            tokens += sum(s.tokens for s in answers.samples)
            cost += sum(s.cost for s in answers.samples)
            for sample in answers.samples:
                letter = read_letter(sample.text)
                if letter is None:
                    mine["unreadable"] += 1
                    continue
                shown = first if letter == "A" else second
                mine["a" if shown == a else "b"] += 1
        if failed:
            errors.append(f"{model.name}: {failed}")
            continue
        asked.append(model.name)
        votes_a += mine["a"]
        votes_b += mine["b"]
        unreadable += mine["unreadable"]
    return Votes(
        votes_a, votes_b, unreadable, tuple(errors), tuple(asked), generations, tokens, cost
    )
