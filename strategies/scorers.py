"""Per-candidate scorers for ``score-ensemble``, and how their scores are normalised and combined.

Each scorer returns one raw value per candidate (None: no score for that candidate) and a
note saying why it was skipped or how it was computed. :func:`normalise` maps a scorer's
raw values to [0, 1] across the candidates (min-max); :func:`combine` merges one
candidate's normalised scores as Coste et al.'s reward-model ensembles do: the mean, the
worst case (min), or the uncertainty-weighted mean - beta x std.
"""

from __future__ import annotations

import importlib
import math
import re
import statistics
from collections.abc import Sequence
from typing import Literal

from codeens.errors import first_line
from codeens.models.base import Prompt
from codeens.strategies.behaviour import behaviour_key, group_sizes
from codeens.strategies.interface import Candidate, Context, Question

Raw = list[float | None]
Rule = Literal["mean", "min", "uncertainty"]
JUDGE_QUESTION = "Is this implementation correct? Answer yes or no."
JUDGE_MAX_TOKENS = 16
_WORD = re.compile(r"[a-z]+")


def pass_rates(candidates: Sequence[Candidate]) -> Raw:
    """The share of visible tests each candidate passes (0 when it did not run)."""
    return [c.result.pass_rate if c.result is not None else 0.0 for c in candidates]


def agreement(candidates: Sequence[Candidate]) -> Raw:
    """The share of the other samples whose program behaves the same on the visible tests.

    A simple execution-agreement score (CodeT without generated tests): a candidate's own
    duplicate samples count as agreeing, as in ``vote``'s behaviour groups.
    """
    sizes = group_sizes(candidates)
    total = sum(max(1, len(c.samples)) for c in candidates)
    if total < 2:
        return [0.0 for _ in candidates]
    return [(sizes[behaviour_key(c)] - 1) / (total - 1) for c in candidates]


def mean_logprob(candidates: Sequence[Candidate]) -> Raw:
    """The mean token log-probability over a candidate's samples, where the backend gave one."""
    out: Raw = []
    for candidate in candidates:
        values = [s.mean_logprob for s in candidate.samples if s.mean_logprob is not None]
        out.append(sum(values) / len(values) if values else None)
    return out


def codebertscore(candidates: Sequence[Candidate]) -> tuple[Raw, str]:
    """CodeBERTScore consensus (each code against the others); skipped when unavailable."""
    try:
        module = importlib.import_module("codeens.strategies.codebertscore")
        consensus = module.consensus_scores
    except (ImportError, AttributeError) as exc:
        return [None] * len(candidates), f"skipped: consensus_scores not available ({exc})"
    try:
        scores = consensus([c.code for c in candidates])
    except Exception as exc:  # an encoder that cannot load here must not stop the run
        return [None] * len(candidates), f"skipped: {first_line(exc)}"
    return [float(s) for s in scores], ""


def judge_prompt(spec: str, code: str) -> Prompt:
    """The question put to each chat model about one candidate."""
    user = (
        f"Specification:\n```python\n{spec.strip()}\n```\n\n"
        f"Implementation:\n```python\n{code.strip()}\n```\n\n{JUDGE_QUESTION}"
    )
    messages = (
        {"role": "system", "content": "You review Python code. Answer with one word."},
        {"role": "user", "content": user},
    )
    return Prompt(messages=messages, prefix="")


def read_answer(text: str) -> bool | None:
    """Yes (True), no (False), or neither: the first of the two words in the answer."""
    for word in _WORD.findall(text.lower()):
        if word in ("yes", "no"):
            return bool(word == "yes")
    return None


def judge(
    ctx: Context, candidates: Sequence[Candidate], samples: int
) -> tuple[Raw, str, dict[str, float]]:
    """P(yes) per candidate over ``samples`` answers of every chat model; logged.

    Answers that say neither yes nor no are left out; a candidate with no usable answer
    has no score. Returns the scores, a note, and the judge's tokens and cost.
    """
    chat = [m for m in ctx.models if m.chat and m.name not in ctx.failures]
    spent: dict[str, float] = {"generations": 0, "tokens": 0, "cost": 0.0}
    if not chat:
        return [None] * len(candidates), "skipped: no chat model to ask", spent
    yes = [0] * len(candidates)
    answered = [0] * len(candidates)
    notes = []
    for model in chat:
        params = model.sampling.model_copy(update={"max_tokens": JUDGE_MAX_TOKENS})
        for i, candidate in enumerate(candidates):
            prompt = judge_prompt(ctx.stub.prompt_text, candidate.code)
            answers = ctx.ask(model, Question(prompt, "judge", samples, params))
            if answers.error == "out of time":
                notes.append("out of time: some candidates not judged")
                break
            if answers.error:  # a judge that cannot answer is skipped, not fatal
                notes.append(f"{model.name} failed: {answers.error}")
                break
            got = answers.samples
            spent["generations"] += len(got)
            spent["tokens"] += sum(s.tokens for s in got)
            spent["cost"] += sum(s.cost for s in got)
            for sample in got:
                answer = read_answer(sample.text)
                if answer is not None:
                    answered[i] += 1
                    yes[i] += answer
    scores: Raw = [y / n if n else None for y, n in zip(yes, answered, strict=True)]
    note = f"asked {', '.join(m.name for m in chat)} x{samples}"
    return scores, "; ".join([note, *notes]), spent


def normalise(raw: Raw) -> tuple[list[float | None], bool]:
    """Min-max to [0, 1] across candidates; False when the values do not differ.

    A scorer that gives every scored candidate the same value carries no information and
    is left out of the combination rather than mapped to an arbitrary constant.
    """
    present = [v for v in raw if v is not None and math.isfinite(v)]
    if len(present) < 2 or max(present) == min(present):
        return [None] * len(raw), False
    low, span = min(present), max(present) - min(present)
    return [None if v is None or not math.isfinite(v) else (v - low) / span for v in raw], True


def combine(values: Sequence[float], rule: Rule, beta: float) -> float | None:
    """One candidate's combined score from its normalised scores (None: none to combine)."""
    if not values:
        return None
    if rule == "min":
        return min(values)
    mean = statistics.fmean(values)
    if rule == "mean":
        return mean
    return mean - beta * statistics.pstdev(values)
