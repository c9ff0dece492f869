"""``moa``: Mixture-of-Agents refinement grounded in execution (Wang et al.).

Layer 1's proposers answer the plain problem prompt. Each later layer's proposers see the
problem plus up to ``max_references`` candidates of the layer before, each with its results
on the visible tests (verdict, pass count, failing assertions with the compared values, the
error or "timed out"), and are asked to evaluate them critically and write one corrected
function (prompts: :mod:`codeens.strategies.moa_prompts`). A final aggregator does the same
from the last layer's candidates. Every layer's output runs on the visible tests; with
``early_stop`` the run stops at the first layer with a candidate that passes them all.

The answer is chosen among the candidates of every layer by visible pass rate, ties broken
by the later layer (the aggregator counts as the last), then by the size of the group of
samples that behave identically on the tests, duplicates, shorter code, and the hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.models.base import ModelConfig, Prompt
from codeens.sandbox.results import Verdict
from codeens.strategies.base import Decision, Strategy, StrategyCannotRun
from codeens.strategies.behaviour import behaviour_key, group_sizes
from codeens.strategies.interface import Candidate, Context
from codeens.strategies.moa_prompts import Reference, layer_prompt


class MoaOptions(BaseModel):
    """``[strategies.moa]`` in codeens.toml."""

    model_config = ConfigDict(extra="forbid")

    layers: int = Field(2, ge=1, le=10, description="Proposer layers before the aggregator.")
    proposers: list[str] | None = Field(
        None, min_length=1, description="Model names (default: every selected model)."
    )
    aggregator: str | None = Field(
        None, description="Model name (default: the most expensive selected model, then the last)."
    )
    samples_per_proposer: int = Field(
        1, ge=1, le=50, description="Samples per proposer in layers 2+ (layer 1: --samples)."
    )
    max_references: int = Field(4, ge=1, le=16, description="Candidates shown to a layer.")
    max_chars: int = Field(1200, ge=100, le=50_000, description="Code shown per candidate.")
    early_stop: bool = Field(True, description="Stop once a candidate passes every test.")


def passes_all(candidate: Candidate) -> bool:
    result = candidate.result
    return result is not None and result.verdict is Verdict.PASSED and result.tests_total > 0


def _rate(candidate: Candidate) -> float:
    return candidate.result.pass_rate if candidate.result is not None else 0.0


def select_references(candidates: Sequence[Candidate], limit: int) -> list[Candidate]:
    """Up to ``limit`` candidates, best pass rate first, ties in the order they were made.

    Programs are distinct already; among programs that behave identically on the tests the
    first one is preferred, and repeats fill only the slots other behaviours leave free.
    """
    ordered = sorted(candidates, key=lambda c: -_rate(c))  # stable: production order
    seen: set[tuple[object, ...]] = set()
    distinct: list[Candidate] = []
    repeats: list[Candidate] = []
    for candidate in ordered:
        key = behaviour_key(candidate)
        (repeats if key in seen else distinct).append(candidate)
        seen.add(key)
    chosen = set((distinct + repeats)[:limit])
    return [c for c in ordered if c in chosen]


def default_aggregator(models: Sequence[ModelConfig]) -> ModelConfig:
    """The most expensive model by token price, then by price per second, then the last."""
    ranked = sorted(
        enumerate(models),
        key=lambda im: (
            im[1].price_input_per_mtok + im[1].price_output_per_mtok,
            im[1].price_per_second,
            im[0],
        ),
    )
    return ranked[-1][1]


def named_or_strongest(ctx: Context, name: str | None, where: str) -> ModelConfig:
    """The model called ``name`` (a member or any configured model), or with no name the
    strongest member (:func:`default_aggregator`); one line naming ``where`` otherwise."""
    if name is None:
        if not ctx.models:
            raise StrategyCannotRun("no models to ask")
        return default_aggregator(ctx.models)
    known = {m.name: m for m in ctx.config.models} | {m.name: m for m in ctx.models}
    if name not in known:
        raise StrategyCannotRun(
            f"unknown model {name!r} in {where} (configured: {', '.join(known)})"
        )
    return known[name]


def _summary(candidate: Candidate) -> dict[str, Any]:
    result = candidate.result
    return {
        "candidate": candidate.hash[:12],
        "pass_rate": round(_rate(candidate), 6),
        "verdict": str(result.verdict) if result is not None else "not run",
        "origin": candidate.origin,
        "models": candidate.models,
    }


def _latest(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    """The newest values of ``candidates`` (a later layer may have added samples)."""
    newest = {c.hash: c for c in ctx.candidates()}
    return [newest.get(c.hash, c) for c in candidates]


class MixtureOfAgents(Strategy):
    """Layers of models refine earlier candidates shown with their test results."""

    name = "moa"
    summary = "Mixture-of-Agents: layers refine earlier candidates shown with their test results"
    Options = MoaOptions
    options: MoaOptions

    def _resolve(self, ctx: Context) -> tuple[list[ModelConfig], ModelConfig]:
        """Proposer and aggregator configs; every unknown name reported in one error."""
        known = {m.name: m for m in ctx.config.models} | {m.name: m for m in ctx.models}
        wanted = list(self.options.proposers or [])
        if self.options.aggregator is not None:
            wanted.append(self.options.aggregator)
        unknown = sorted({n for n in wanted if n not in known})
        if unknown:
            raise StrategyCannotRun(
                f"unknown model(s) {', '.join(map(repr, unknown))} in [strategies.moa] "
                f"(configured: {', '.join(known)})"
            )
        if self.options.proposers is not None:
            proposers = [known[n] for n in dict.fromkeys(self.options.proposers)]
        else:
            proposers = list(ctx.models)
        if not proposers:
            raise StrategyCannotRun("no models to ask")
        if self.options.aggregator is not None:
            return proposers, known[self.options.aggregator]
        return proposers, default_aggregator(ctx.models or proposers)

    def _prompt(self, ctx: Context, shown: list[Candidate]) -> Prompt | None:
        if not shown:  # nothing to refine (every model failed or was rejected): ask afresh
            return None
        references = [Reference(c.code, c.result) for c in shown]
        return layer_prompt(ctx.problem, ctx.stub, ctx.tests, references, self.options.max_chars)

    def _run_layer(
        self,
        ctx: Context,
        models: list[ModelConfig],
        n: int,
        shown: list[Candidate],
        origin: str,
    ) -> list[Candidate]:
        prompt = self._prompt(ctx, shown)
        produced: list[Candidate] = []
        for model in models:
            produced.extend(ctx.generate(model, n, prompt, origin=origin))
        return ctx.execute(list(dict.fromkeys(produced)))

    def solve(self, ctx: Context) -> Decision:
        options = self.options
        proposers, aggregator = self._resolve(ctx)
        layer_of: dict[Candidate, int] = {}  # the latest layer that produced each
        layers: list[dict[str, Any]] = []
        previous: list[Candidate] = []
        stopped = False
        for number in range(1, options.layers + 1):
            previous = _latest(ctx, previous)
            shown = select_references(previous, options.max_references) if number > 1 else []
            n = ctx.samples if number == 1 else options.samples_per_proposer
            produced = self._run_layer(ctx, proposers, n, shown, f"moa-layer-{number}")
            layer_of.update(dict.fromkeys(produced, number))
            stopped = options.early_stop and any(passes_all(c) for c in produced)
            layers.append(
                {
                    "layer": number,
                    "models": [m.name for m in proposers],
                    "samples_per_model": n,
                    "references": [c.hash[:12] for c in shown],
                    "candidates": [_summary(c) for c in produced],
                    "failed_models": sorted(m.name for m in proposers if m.name in ctx.failures),
                    "stopped_early": stopped,
                }
            )
            # A layer that produced nothing leaves the last useful candidates in place.
            previous = produced or previous
            if stopped:
                break
        aggregation = self._aggregate(ctx, aggregator, _latest(ctx, previous), stopped, layer_of)
        latest = {c: layer_of[c] for c in _latest(ctx, list(layer_of))}
        return self._decide(latest, layers, aggregation, stopped)

    def _aggregate(
        self,
        ctx: Context,
        aggregator: ModelConfig,
        previous: list[Candidate],
        stopped: bool,
        layer_of: dict[Candidate, int],
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"model": aggregator.name}
        if stopped:
            return info | {"status": "skipped: a candidate already passes every visible test"}
        shown = select_references(previous, self.options.max_references)
        produced = self._run_layer(ctx, [aggregator], 1, shown, "moa-aggregator")
        layer_of.update(dict.fromkeys(produced, self.options.layers + 1))
        info["references"] = [c.hash[:12] for c in shown]
        info["candidates"] = [_summary(c) for c in produced]
        if aggregator.name in ctx.failures:
            info["status"] = f"model failed: {ctx.failures[aggregator.name]}"
        elif not produced:
            info["status"] = "rejected: no function could be extracted"
        else:
            info["status"] = info["candidates"][0]["verdict"]
        return info

    def _decide(
        self,
        layer_of: dict[Candidate, int],
        layers: list[dict[str, Any]],
        aggregation: dict[str, Any],
        stopped: bool,
    ) -> Decision:
        records = list(layer_of)
        sizes = group_sizes(records)
        rows: list[dict[str, Any]] = [
            {
                "candidate": c.hash[:12],
                "pass_rate": round(_rate(c), 6),
                "layer": layer_of[c],
                "group_size": sizes[behaviour_key(c)],
                "duplicates": len(c.samples),
                "length": len(c.code),
                "origin": c.origin,
                "record": c,
            }
            for c in records
        ]
        rows.sort(
            key=lambda r: (
                -r["pass_rate"],
                -r["layer"],
                -r["group_size"],
                -r["duplicates"],
                r["length"],
                r["record"].hash,
            )
        )
        trace: dict[str, Any] = {
            "layers": layers,
            "aggregator": aggregation,
            "stopped_early": stopped,
            "scores": [{k: v for k, v in r.items() if k != "record"} for r in rows],
        }
        return Decision(rows[0]["record"] if rows else None, trace)
