"""``route``: pick one model before generating, from how models did on similar past problems.

kNN correctness routing (Shnitzer et al.): the stub's signature and docstring are embedded
with the sentence encoder (MiniLM); the k most similar past (problem, function) pairs in
the log are its neighbours. A model's P(success) is the mean over the neighbours where it
ran of the fraction of its samples that passed their visible tests (a sample that yielded
no code counts as a failure; one whose candidate never ran is left out). The chosen model
maximises lambda * P - cost (RouterBench), cost being its expected cost per sample from
its configured prices and its mean past tokens and latency (0 without any). Only that
model generates; the rest is the pass-rate vote. With fewer than k neighbours, or a model
that has no samples on them, routing falls back: to the cheapest model, or to all of them.
Past runs of the very same problem count as history; the current run never does.
"""

from __future__ import annotations

import ast
import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.encoders import MINILM, EncoderUnavailable, load_encoder
from codeens.strategies.base import Decision, Strategy, StrategyCannotRun
from codeens.strategies.interface import Context, LogReader
from codeens.strategies.vote import rank_by_pass_rate

if TYPE_CHECKING:
    from codeens.models.base import ModelConfig


class RouteOptions(BaseModel):
    """The options of ``route`` (``[strategies.route]`` in codeens.toml)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, description="Neighbours (past problems) to look at.")
    willingness_to_pay: float = Field(1.0, ge=0.0, description="lambda: cost per unit of P.")
    # "all" by default: the kNN estimate needs every model's record on past problems, and a
    # cheapest-only fallback would never give the other models one.
    fallback: Literal["cheapest", "all"] = Field(
        "all", description="Without enough history: all models (default), or the cheapest."
    )


@dataclass(frozen=True)
class Neighbour:
    """A past (problem, function) and its similarity to the query."""

    problem_path: str
    problem_hash: str
    target: str
    similarity: float


@dataclass(frozen=True)
class Estimate:
    """One model's estimated success, expected cost per sample and routing score."""

    model: str
    p: float | None
    cost: float
    score: float | None
    neighbours: int  # neighbours on which the model has samples


@dataclass
class Plan:
    """Which models to ask, and why."""

    neighbours: list[Neighbour]
    estimates: list[Estimate]
    order: list[str]  # the models by preference
    chosen: list[str]  # the models to ask
    fallback: str | None  # why there was no routing, when there was none


def stub_text(source: str, name: str) -> str | None:
    """The function's signature and docstring, as the router embeds them; None if absent."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            head = f"def {name}({ast.unparse(node.args)}){returns}:"
            return f"{head}\n{ast.get_docstring(node) or ''}".strip()
    return None


def _embed(texts: list[str]) -> list[list[float]]:
    return load_encoder(MINILM).sentence_vectors(texts)


@dataclass
class _History:
    """Per (problem hash, target), per model: each past sample's correctness (1/0); per
    problem: path and source; per model: mean (input tokens, output tokens, latency)."""

    outcomes: dict[tuple[str, str], dict[str, list[float]]]
    problems: dict[str, tuple[str, str]]
    usage: dict[str, tuple[float, float, float]]


def _history(store: LogReader, exclude_run: str | None) -> _History:
    problems, visible = {}, {}
    for h, row in store.problems().items():
        problems[h] = (row.path, row.source)
        visible[h] = hashlib.sha256(row.visible_tests.encode()).hexdigest()
    verdicts: dict[tuple[str | None, str, str], list[tuple[str, str]]] = defaultdict(list)
    for e in store.executions(limit=None, oldest_first=True):
        verdicts[(e.run_id, e.target, e.code_hash[:12])].append((e.tests_hash, e.verdict))
    problem_of = {r.id: r.problem_hash for r in store.runs(limit=None, children=True)}
    outcomes: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(dict)
    for g in store.generations_of(None):
        problem_hash = problem_of.get(g.run_id or "")
        if g.run_id == exclude_run or problem_hash not in problems:
            continue
        target, model, code_hash = g.target, g.model, g.code_hash
        if code_hash is None:  # the model answered but gave no usable code: a failure
            outcomes[(problem_hash, target)].setdefault(model, []).append(0.0)
            continue
        runs = verdicts.get((g.run_id, target, code_hash[:12]))
        if not runs:  # never executed (a strategy stopped early): unknown, not wrong
            continue
        # The visible-test run: the one on the problem's whole visible tests, else the
        # first (strategies run the visible tests before any generated ones).
        verdict = next((v for h, v in runs if h == visible[problem_hash]), runs[0][1])
        outcomes[(problem_hash, target)].setdefault(model, []).append(float(verdict == "passed"))
    return _History(dict(outcomes), problems, store.model_usage(exclude_run))


def expected_cost(model: ModelConfig, usage: tuple[float, float, float] | None) -> float:
    """Expected cost of one sample from the configured prices and mean past usage."""
    if usage is None:
        return 0.0
    tokens_in, tokens_out, seconds = usage
    return (
        tokens_in * model.price_input_per_mtok / 1e6
        + tokens_out * model.price_output_per_mtok / 1e6
        + seconds * model.price_per_second
    )


def plan_route(
    store: LogReader,
    models: list[ModelConfig],
    source: str,
    target: str,
    options: RouteOptions,
    *,
    exclude_run: str | None = None,
) -> Plan:
    """Neighbours, per-model estimates and the preferred order of ``models``.

    Raises EncoderUnavailable when the sentence encoder cannot be loaded.
    """
    history = _history(store, exclude_run)
    names = {m.name for m in models}
    examples = [  # past (problem, function) pairs on which a configured model ran
        (key, body)
        for key, by_model in sorted(history.outcomes.items())
        if names & set(by_model) and (body := stub_text(history.problems[key[0]][1], key[1]))
    ]
    texts = [stub_text(source, target) or target, *(b for _, b in examples)]
    query, *vectors = _embed(texts) if examples else [[]]  # no history: no encoder needed
    near = sorted(
        (
            Neighbour(history.problems[h][0], h, t, round(_dot(query, v), 6))
            for ((h, t), _), v in zip(examples, vectors, strict=True)
        ),
        key=lambda n: (-n.similarity, n.problem_path, n.target, n.problem_hash),
    )[: options.k]
    estimates = [_estimate(m, near, history, options.willingness_to_pay) for m in models]
    # Cheapest first: expected cost, then the configured prices, then config order.
    cheapest = sorted(
        range(len(models)),
        key=lambda i: (
            estimates[i].cost,
            models[i].price_input_per_mtok + models[i].price_output_per_mtok,
            models[i].price_per_second,
            i,
        ),
    )
    order = [models[i].name for i in cheapest]
    unknown = [e.model for e in estimates if e.p is None]
    fallback = None
    if len(near) < options.k:
        fallback = f"{len(examples)} past problem(s) with history, k={options.k}"
    elif unknown:
        fallback = f"no history for {', '.join(unknown)} on the {options.k} neighbours"
    else:  # a stable sort: equal scores go to the cheaper model
        order = [models[i].name for i in sorted(cheapest, key=lambda i: -(estimates[i].score or 0))]
    n_chosen = len(models) if fallback is not None and options.fallback == "all" else 1
    return Plan(near, estimates, order, order[:n_chosen], fallback)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors: the cosine


def _estimate(model: ModelConfig, near: list[Neighbour], history: _History, lam: float) -> Estimate:
    """g_m(x): the mean over the neighbours where the model ran of its success rate there."""
    rates = [
        sum(ys) / len(ys)
        for n in near
        if (ys := history.outcomes[(n.problem_hash, n.target)].get(model.name))
    ]
    p = sum(rates) / len(rates) if rates else None
    cost = expected_cost(model, history.usage.get(model.name))
    return Estimate(model.name, p, cost, None if p is None else lam * p - cost, len(rates))


class Route(Strategy):
    """Ask only the model predicted to succeed at the best price; vote on its samples."""

    name = "route"
    summary = "kNN routing on past problems: one model chosen by lambda * P(success) - cost"
    Options = RouteOptions
    options: RouteOptions

    def solve(self, ctx: Context) -> Decision:
        try:
            plan = plan_route(
                ctx.history, list(ctx.models), ctx.problem.source, ctx.stub.name, self.options,
                exclude_run=ctx.run_id,
            )  # fmt: skip
        except EncoderUnavailable as exc:
            raise StrategyCannotRun(str(exc)) from exc
        if plan.fallback is not None:
            ctx.note(f"route: no history ({plan.fallback}); using {fallback_words(plan)}")
        by_name = {m.name: m for m in ctx.models}
        asked: list[str] = []
        # The preferred model first, the next only when it failed outright (all: every one).
        for name in plan.chosen if len(plan.chosen) > 1 else plan.order:
            asked.append(name)
            got = ctx.generate(by_name[name], ctx.samples)
            if len(plan.chosen) == 1 and (got or name not in ctx.failures):
                break
        candidates = ctx.execute(ctx.candidates())
        ranked = rank_by_pass_rate(candidates)
        trace = {
            "routed_to": plan.chosen,
            "asked": asked,
            "fallback": plan.fallback,
            "k": self.options.k,
            "willingness_to_pay": self.options.willingness_to_pay,
            "neighbours": [asdict(n) for n in plan.neighbours],
            "models": [asdict(e) for e in plan.estimates],
            "scores": [{k: v for k, v in r.items() if k != "record"} for r in ranked],
        }
        return Decision(ranked[0]["record"] if ranked else None, trace)


def fallback_words(plan: Plan) -> str:
    """What a plan without routing falls back to, in words."""
    if len(plan.chosen) != 1:
        return f"all models ({', '.join(plan.chosen)})"
    return f"the cheapest model, {plan.chosen[0]}"
