"""``score-ensemble``: several per-candidate scorers, normalised and combined.

Following the reward-model ensembles of Coste et al., K scorers R_i rate each candidate;
each scorer is min-max normalised to [0, 1] across the candidates, and a candidate's
scores are combined by the mean (1/K) sum R_i, the worst case min_i R_i, or the
uncertainty-weighted mean - beta x std. The scorers (:mod:`codeens.strategies.scorers`):

* ``pass_rate``: the share of visible tests passed;
* ``agreement``: the share of the other samples that behave the same on the visible tests;
* ``codebertscore``: CodeBERTScore consensus against the other candidates;
* ``logprob``: the model's mean token log-probability, where the backend reports it;
* ``judge``: P(yes) when each chat model is asked whether the implementation is correct.

A scorer with no value for a candidate is left out of that candidate's combination; a
scorer that cannot run, or gives every candidate the same value, is left out entirely.
The trace says which and why. Ties go to pass rate, behaviour-group size, duplicates,
shorter code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeens.registry import Registry
from codeens.strategies import scorers
from codeens.strategies.base import Decision, Strategy
from codeens.strategies.behaviour import behaviour_key, group_sizes
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.scorers import Rule

DEFAULT_SCORERS = ("pass_rate", "agreement", "codebertscore", "logprob", "judge")
"""The scorers used when the options name none, in the order the trace lists them."""


@dataclass(frozen=True)
class Scored:
    """One scorer's raw value per candidate (None: skipped), a note, and what it spent."""

    values: scorers.Raw | None
    note: str = ""
    spent: dict[str, float] = field(default_factory=dict)


Scorer = Callable[["Context", Sequence["Candidate"], "ScoreEnsemble.Options"], Scored]
"""A per-candidate scorer: registered under the entry-point group ``codeens.scorers``."""

SCORERS: Registry[Scorer] = Registry("codeens.scorers", "scorer")


class ScoreEnsemble(Strategy):
    """Normalised scores from several scorers, combined by mean, min or mean - beta x std."""

    name = "score-ensemble"
    summary = "combine pass rate, agreement, CodeBERTScore, logprob and an LLM judge"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        scorers: list[str] = Field(
            default_factory=lambda: list(DEFAULT_SCORERS),
            min_length=1,
            description="Which scorers to combine (names of the `codeens.scorers` registry).",
        )
        combine: Rule = Field("mean", description="mean, min or uncertainty.")
        beta: float = Field(1.0, ge=0.0, description="Weight of the std for `uncertainty`.")
        judge: bool = Field(True, description="Ask the chat models (false: skip the judge).")
        judge_samples: int = Field(3, ge=1, le=20, description="Answers per model and code.")

        @field_validator("scorers")
        @classmethod
        def _known(cls, names: list[str]) -> list[str]:
            return SCORERS.check(names)

    options: Options

    def solve(self, ctx: Context) -> Decision:
        pool = ctx.sample_all()
        candidates = [c for c in pool if c.result is not None] or pool
        raw, notes, extra = self._score(ctx, candidates)
        normalised: dict[str, list[float | None]] = {}
        status: dict[str, dict[str, Any]] = {}
        for name, values in raw.items():
            spread = False
            if values is not None:
                normalised[name], spread = scorers.normalise(values)
            ok = values is not None and spread
            reason = notes.get(name, "")
            if not ok and not reason.startswith("skipped"):
                why = "no usable value" if values is None else "every candidate scored alike"
                reason = f"skipped: {why}" + (f" ({reason})" if reason else "")
            status[name] = {"used": ok, "note": reason}
        used = [n for n in raw if status[n]["used"]]
        rows = []
        sizes = group_sizes(candidates)
        for i, candidate in enumerate(candidates):
            mine = [v for n in used if (v := normalised[n][i]) is not None]
            combined = scorers.combine(mine, self.options.combine, self.options.beta)
            rows.append((_order(candidate, combined, sizes), candidate, i, combined))
        rows.sort(key=lambda row: row[0])
        trace: dict[str, Any] = {
            "combine": self.options.combine,
            "beta": self.options.beta,
            "scorers": status,
            "candidates": [
                {
                    "candidate": c.hash[:12],
                    "models": c.models,
                    "scores": {n: _round(v[i]) for n, v in raw.items() if v is not None},
                    "normalised": {n: _round(normalised[n][i]) for n in used},
                    "combined": _round(combined),
                }
                for _, c, i, combined in rows
            ],
            "chosen": rows[0][1].hash[:12] if rows else None,
        }
        trace.update(extra)
        return Decision(rows[0][1] if rows else None, trace)

    def _score(
        self, ctx: Context, candidates: list[Candidate]
    ) -> tuple[dict[str, scorers.Raw | None], dict[str, str], dict[str, Any]]:
        """Raw scores per scorer (None: skipped), notes, and the judge's spending."""
        raw: dict[str, scorers.Raw | None] = {}
        notes: dict[str, str] = {}
        extra: dict[str, Any] = {}
        for name in dict.fromkeys(self.options.scorers):
            scored = SCORERS.get(name)(ctx, candidates, self.options)
            values = scored.values
            if values is not None and all(v is None for v in values):
                values = None
            raw[name], notes[name] = values, scored.note
            if scored.spent:
                extra[name] = scored.spent
        return raw, notes, extra


def _order(
    candidate: Candidate, combined: float | None, sizes: dict[tuple[object, ...], int]
) -> tuple[float, float, int, int, int, str]:
    """Sort key, best first: combined score, then pass rate, group size, duplicates, length."""
    rate = candidate.result.pass_rate if candidate.result is not None else 0.0
    return (
        -(combined if combined is not None else float("-inf")),
        -rate,
        -sizes[behaviour_key(candidate)],
        -len(candidate.samples),
        len(candidate.code),
        candidate.hash,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# The built-in scorers, registered in pyproject.toml like a plugin's would be. Each adapts
# one function of :mod:`codeens.strategies.scorers` to the common signature.


def score_pass_rate(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """The share of visible tests passed."""
    return Scored(scorers.pass_rates(candidates))


def score_agreement(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """The share of the other samples that behave the same on the visible tests."""
    return Scored(scorers.agreement(candidates))


def score_logprob(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """The model's mean token log-probability, where the backend reports it."""
    values = scorers.mean_logprob(candidates)
    if all(v is None for v in values):
        return Scored(values, "skipped: the backends reported no log-probabilities")
    return Scored(values)


def score_codebertscore(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """CodeBERTScore consensus against the other candidates."""
    values, note = scorers.codebertscore(candidates)
    return Scored(values, note)


def score_judge(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """P(yes) when each chat model is asked whether the implementation is correct."""
    if not options.judge:
        return Scored(None, "skipped: disabled (judge = false)")
    values, note, spent = scorers.judge(ctx, candidates, options.judge_samples)
    return Scored(values, note, spent)
