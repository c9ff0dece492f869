"""``prompt-ensemble``: every model asked under several prompt variants, then a selector.

One model asked one way repeats its mistakes; asked to plan first, to write tests first, or
to solve the task differently from an answer it already gave, it explores other programs
(:mod:`codeens.strategies.prompt_variants`). This strategy is a front end to an existing
selector rather than a new way to choose: it runs the ``select`` strategy (``vote`` by
default, with its own ``[strategies.NAME]`` options) on a context whose first round
(``sample_all``) samples every model under each variant in ``variants``. Whatever else the
selector does (generated tests, judges) goes to the real context unchanged. Selectors that
do their own sampling instead of ``sample_all`` (cascade, route, moa) would ignore the
variants, so they cannot be chosen.

Every sample is logged with its variant as its origin (``prompt:plan``, in the
``generations.origin`` column), and the trace lists per variant what it yielded: samples,
extracted programs, distinct candidates and those passing every visible test, so each
variant's value can be measured. ``differently`` runs after the others and shows each
model the candidate sampled most often so far; with no candidate yet it is skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codeens.sandbox.results import ExecutionResult, Verdict
from codeens.strategies.base import STRATEGIES, Decision, Strategy, StrategyCannotRun
from codeens.strategies.interface import Candidate, Context, Sample
from codeens.strategies.prompt_variants import VARIANTS, Variant, variant_prompt
from codeens.validation import first_error

ORIGIN = "prompt:"
OWN_SAMPLING = ("prompt-ensemble", "cascade", "route", "moa")


def origin_of(variant: str) -> str:
    return ORIGIN + variant


class _Variants:
    """The solve's context, with a first round that samples under every variant."""

    def __init__(self, ctx: Context, variants: Sequence[Variant], samples: int) -> None:
        self._ctx = ctx
        self._variants = variants
        self._n = samples
        self.skipped: dict[str, dict[str, str]] = {v: {} for v in variants}
        self.shown: dict[str, str] = {}
        self._sampled = False

    def sample_all(self) -> list[Candidate]:
        if not self._sampled:
            self._sampled = True
            first = [v for v in self._variants if v != "differently"]
            for variant in first:
                self._round(variant, "")
            if "differently" in self._variants:
                self._differently()
        return self._ctx.execute(self._ctx.candidates())

    def _round(self, variant: Variant, shown: str) -> None:
        ctx = self._ctx
        prompt = variant_prompt(variant, ctx.problem, ctx.stub, ctx.tests, shown)
        direct = ctx.prompt()
        for model in ctx.models:
            if variant != "direct" and prompt.text_for(model.chat) == direct.text_for(model.chat):
                self.skipped[variant][model.name] = "a base model only continues the stub"
                continue
            ctx.generate(model, self._n, prompt, origin=origin_of(variant))

    def _differently(self) -> None:
        pool = self._ctx.candidates()
        if not pool:
            for model in self._ctx.models:
                self.skipped["differently"][model.name] = "no candidate to depart from"
            return
        common = min(pool, key=lambda c: (-len(c.samples), len(c.code), c.hash))
        self.shown = {"candidate": common.hash[:12]}
        self._round("differently", common.code)

    def __getattr__(self, name: str) -> Any:
        # Everything else is the solve's own context, whatever the protocol grows.
        return getattr(self._ctx, name)


def _passes(result: ExecutionResult | None) -> bool:
    return result is not None and result.verdict == Verdict.PASSED


def per_variant(
    variants: Sequence[Variant], drawn: Sequence[Sample], candidates: Sequence[Candidate]
) -> dict[str, dict[str, Any]]:
    """What each variant yielded: samples, programs, candidates, passing candidates."""
    by_hash = {c.hash: c for c in candidates}
    out: dict[str, dict[str, Any]] = {}
    for variant in variants:
        mine = [s for s in drawn if s.origin == origin_of(variant)]
        hashes = sorted({s.code_hash for s in mine if s.code_hash is not None})
        passing = [h for h in hashes if h in by_hash and _passes(by_hash[h].result)]
        out[variant] = {
            "samples": len(mine),
            "extracted": sum(1 for s in mine if s.code_hash is not None),
            "passing_samples": sum(1 for s in mine if s.code_hash in passing),
            "candidates": [h[:12] for h in hashes],
            "passing": [h[:12] for h in passing],
            "models": dict(Counter(s.model.name for s in mine)),
        }
    return out


class PromptEnsemble(Strategy):
    """Each model under several prompt variants; an existing strategy chooses."""

    name = "prompt-ensemble"
    summary = "every model asked under diverse prompts (direct, plan, tests-first, differently)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        variants: list[Variant] = Field(
            default_factory=lambda: list(VARIANTS),
            min_length=1,
            description="Prompt variants to sample: direct, plan, tests-first, differently.",
        )
        samples: int | None = Field(
            None,
            ge=1,
            le=200,
            description="Samples per model and variant; default: the run's samples per model "
            "shared among the variants (at least 1 each), so it costs what one prompt did.",
        )
        select: str = Field("vote", description="The strategy that chooses among them.")

        @field_validator("variants")
        @classmethod
        def _distinct(cls, variants: list[Variant]) -> list[Variant]:
            if len(set(variants)) != len(variants):
                raise ValueError("each variant once")
            return variants

        @field_validator("select")
        @classmethod
        def _selector(cls, name: str) -> str:
            if name in OWN_SAMPLING:
                raise ValueError(f"{name} does its own sampling; use vote, majority, ...")
            STRATEGIES.check([name])
            return name

    options: Options

    def solve(self, ctx: Context) -> Decision:
        opts = self.options
        try:
            selector = STRATEGIES.get(opts.select)(dict(ctx.config.strategies.get(opts.select, {})))
        except ValidationError as exc:
            raise StrategyCannotRun(f"[strategies.{opts.select}] {first_error(exc)}") from exc
        n = opts.samples or max(1, ctx.samples // len(opts.variants))
        variants = _Variants(ctx, opts.variants, n)
        decision = selector.solve(variants)
        table = per_variant(opts.variants, ctx.drawn, ctx.candidates())
        for variant, skipped in variants.skipped.items():
            if skipped:
                table[variant]["skipped"] = skipped
        if variants.shown:
            table["differently"]["shown"] = variants.shown["candidate"]
        chosen = decision.chosen
        trace: dict[str, Any] = {
            "samples_per_variant": n,
            "variants": table,
            "select": opts.select,
            "selection": dict(decision.trace),
        }
        if chosen is not None:
            trace["chosen_from"] = sorted(
                {s.origin.removeprefix(ORIGIN) for s in chosen.samples if s.origin}
            )
        trace["why"] = f"{opts.select} over {len(opts.variants)} prompt variant(s): " + str(
            decision.trace.get("why", "")
        )
        return Decision(chosen, trace)
