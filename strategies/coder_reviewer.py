"""``coder-reviewer``: rerank by how well code and specification explain each other.

Coder-Reviewer reranking (Zhang et al. 2022) scores a program y for an instruction x by
``alpha x log p(y | x) + (1 - alpha) x log p(x | y)``: the coder term prefers what a model
would write for the specification; the reviewer term prefers code from which the
specification can be recovered, which penalises degenerate programs (the shortest, the
most generic) that the coder term alone favours. Here x is the stub's docstring and y the
candidate's body (:mod:`codeens.strategies.coder_reviewer_texts` builds both texts).

Both terms come from one scoring model (``scorer``, a member that can score text: llama.cpp
today), not each term from the model that wrote the candidate: log-probabilities of
different models are on different scales, so only one model's make candidates of several
members comparable. By default each term is the mean log-probability per token
(``normalize``): a sum charges every token, so short programs win whatever they do (the
length bias of the paper's unnormalised coder). The reviewer continuation is the same
docstring for every candidate, so its ranking does not depend on this choice; the coder's
and the mix with alpha do.

Visible tests come first, as in the other strategies: by default only candidates with the
best visible pass rate are scored and can be chosen (``visible_first``). When the scorer
cannot score (no llama.cpp model to load, a window too small...), the trace says why and
the choice falls back to visible pass rate, behaviour-group size, duplicates, shorter code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.config import ConfigError
from codeens.models.base import MODELS, ModelConfig, TokenScore
from codeens.registry import UnknownName
from codeens.strategies.base import Decision, Strategy, StrategyCannotRun
from codeens.strategies.behaviour import behaviour_key, group_sizes
from codeens.strategies.coder_reviewer_texts import texts
from codeens.strategies.interface import Candidate, Context

if TYPE_CHECKING:
    from codeens.strategies.score_ensemble import Scored, ScoreEnsemble


@dataclass(frozen=True)
class Terms:
    """One candidate's two log-probabilities and their combination (None: not scored)."""

    coder: TokenScore
    reviewer: TokenScore | None
    score: float


class CoderReviewerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scorer: str | None = Field(
        None,
        description="The model that scores both terms (a configured or embedded model whose "
        "backend can score text, llama.cpp); default: the first such member, then the first "
        "such configured model.",
    )
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of the coder term log p(code | spec)."
    )
    normalize: bool = Field(
        True,
        description="Mean log-probability per token (true) or the sum (false), which "
        "favours short programs.",
    )
    visible_first: bool = Field(
        True,
        description="Score and choose only among candidates with the best visible pass rate.",
    )


def scoring_model(ctx: Context, name: str | None) -> ModelConfig:
    """The model named ``name``, or the first member (then configured model) that can score
    text; StrategyCannotRun with one line when there is none or it cannot score."""
    if name is None:
        for model in (*ctx.models, *ctx.config.models):
            if _can_score(model):
                return model
        raise StrategyCannotRun(
            "no model can score text (a llama.cpp model): configure one or name it with "
            "[strategies.coder-reviewer] scorer"
        )
    members = {m.name: m for m in ctx.models}
    try:
        model = members.get(name) or ctx.config.model(name)
    except ConfigError as exc:
        raise StrategyCannotRun(f"scorer: {exc}") from None
    if not _can_score(model):
        raise StrategyCannotRun(
            f"scorer {name!r}: the {model.backend} backend cannot score text (use llama.cpp)"
        )
    return model


def _can_score(model: ModelConfig) -> bool:
    try:
        return MODELS.get(model.backend).can_score
    except UnknownName:
        return False


def score_candidates(
    ctx: Context,
    model: ModelConfig,
    candidates: Sequence[Candidate],
    alpha: float,
    normalize: bool,
) -> tuple[list[Terms], str]:
    """Each candidate's terms, in order; or none and one line why (the scorer failed)."""
    out: list[Terms] = []
    for candidate in candidates:
        pair = texts(ctx.problem, ctx.stub, candidate.code)
        coder = ctx.score(model, *pair.coder)
        if coder.score is None:
            return [], f"{model.name} cannot score: {coder.error}"
        reviewer = None
        if pair.reviewer is not None:
            got = ctx.score(model, *pair.reviewer)
            if got.score is None:
                return [], f"{model.name} cannot score: {got.error}"
            reviewer = got.score
        value = _term(coder.score, normalize)
        if reviewer is not None:
            value = alpha * value + (1 - alpha) * _term(reviewer, normalize)
        out.append(Terms(coder.score, reviewer, value))
    return out, ""


def _term(score: TokenScore, normalize: bool) -> float:
    return score.mean if normalize else score.logprob


class CoderReviewer(Strategy):
    """alpha x log p(code | spec) + (1 - alpha) x log p(spec | code), under one model."""

    name = "coder-reviewer"
    summary = "rerank by log p(code | docstring) and log p(docstring | code) (Coder-Reviewer)"
    Options = CoderReviewerOptions
    options: CoderReviewerOptions

    def solve(self, ctx: Context) -> Decision:
        options = self.options
        model = scoring_model(ctx, options.scorer)  # before sampling: fail fast
        pool = ctx.sample_all()
        best = max((_rate(c) for c in pool), default=0.0)
        shortlist = [c for c in pool if _rate(c) == best] if options.visible_first else pool
        trace: dict[str, Any] = {
            "scorer": model.name,
            "alpha": options.alpha,
            "normalize": options.normalize,
            "visible_first": options.visible_first,
            "best_pass_rate": best if pool else None,
        }
        terms: list[Terms] = []
        if len(shortlist) > 1:
            terms, failed = score_candidates(
                ctx, model, shortlist, options.alpha, options.normalize
            )
            if failed:
                ctx.note(f"coder-reviewer: {failed}; ranked by visible pass rate")
                trace["fallback"] = failed
        if terms and all(t.reviewer is None for t in terms):
            trace["note"] = "the stub has no docstring: coder term only"
        scored = dict(zip(shortlist, terms, strict=False))
        sizes = group_sizes(pool)
        ranked = sorted(pool, key=lambda c: _order(c, scored.get(c), sizes))
        rows = [_row(c, scored.get(c), c in shortlist, best, options.normalize) for c in ranked]
        trace["candidates"] = rows
        chosen = ranked[0] if ranked else None
        trace["chosen"] = chosen.hash[:12] if chosen else None
        trace["reason"] = _reason(pool, shortlist, scored, options.alpha)
        return Decision(chosen, trace)


def _rate(candidate: Candidate) -> float:
    return candidate.result.pass_rate if candidate.result is not None else 0.0


def _order(
    candidate: Candidate, terms: Terms | None, sizes: dict[tuple[object, ...], int]
) -> tuple[float, float, int, int, int, str]:
    """Best first: visible pass rate, score (when scored), behaviour-group size, duplicate
    samples, shorter code."""
    return (
        -_rate(candidate),
        -(terms.score if terms is not None else float("-inf")),
        -sizes[behaviour_key(candidate)],
        -len(candidate.samples),
        len(candidate.code),
        candidate.hash,
    )


def _row(
    candidate: Candidate, terms: Terms | None, listed: bool, best: float, normalize: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "candidate": candidate.hash[:12],
        "models": candidate.models,
        "pass_rate": round(_rate(candidate), 6),
    }
    if terms is not None:
        row["coder"] = _dump(terms.coder, normalize)
        row["reviewer"] = _dump(terms.reviewer, normalize) if terms.reviewer else None
        row["score"] = round(terms.score, 6)
        row["why"] = "scored"
    elif not listed:
        row["why"] = f"not scored: visible pass rate below the best ({best:g})"
    else:
        row["why"] = "not scored: ranked without scores"
    return row


def _dump(score: TokenScore, normalize: bool) -> dict[str, Any]:
    used = score.mean if normalize else score.logprob
    return {"logprob": round(score.logprob, 6), "tokens": score.tokens, "term": round(used, 6)}


def _reason(
    pool: Sequence[Candidate],
    shortlist: Sequence[Candidate],
    scored: dict[Candidate, Terms],
    alpha: float,
) -> str:
    if not pool:
        return "no candidates"
    if scored:
        return (
            f"highest {alpha:g} x coder + {1 - alpha:g} x reviewer among "
            f"{len(scored)} scored candidate(s)"
        )
    if len(shortlist) == 1:
        return "the only candidate with the best visible pass rate: nothing to rerank"
    return "not scored: visible pass rate, behaviour-group size, duplicates, shorter code"


def score_coder_reviewer(
    ctx: Context, candidates: Sequence[Candidate], options: ScoreEnsemble.Options
) -> Scored:
    """score-ensemble's scorer: the Coder-Reviewer score under the default scoring model,
    alpha 0.5, per-token means."""
    from codeens.strategies.score_ensemble import Scored

    defaults = CoderReviewerOptions()
    try:
        model = scoring_model(ctx, None)
    except StrategyCannotRun as exc:
        return Scored(None, f"skipped: {exc}")
    terms, failed = score_candidates(ctx, model, candidates, defaults.alpha, defaults.normalize)
    if failed:
        return Scored(None, f"skipped: {failed}")
    return Scored([t.score for t in terms], f"scored by {model.name}")
