"""Running an eval: the solve pipeline on every benchmark problem, for every strategy.

For each problem, in order:

1. *Sample pass*: ``samples`` completions from every model, logged under the eval run.
   These are what per-model pass@k is computed on.
2. *One solve per strategy*, each a child run (``parent_id`` = the eval run) that goes
   through :func:`codeens.solve.solve` exactly as ``codeens solve`` does, on a problem
   file holding only the visible tests. The strategies' sample requests are the sample
   pass's requests, so they are served from the log (charged at their original cost, so
   each strategy is costed as if it had run alone); only a strategy's own extra calls
   (MoA rounds, generated tests) reach a model.
3. *Hidden pass*: every distinct program any of them produced runs against the hidden
   tests, once, logged under the eval run, each test limited to a multiple of the
   canonical solution's runtime (as ``codeens sandbox run --samples`` does). Strategies
   never see these results.

Everything is in SQLite as it happens, so an interrupted run resumes where it stopped:
a problem's finished child runs are kept, an unfinished one is redone under a new id
(its model calls come back from the log), and hidden runs are never repeated.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import Counter
from pathlib import Path

from codeens.context import Services, SolveContext
from codeens.evals.benchmarks import BENCHMARKS, BenchmarkProblem, select
from codeens.evals.spec import EvalSpec
from codeens.executions import ExecutionCache, Program
from codeens.generation import Generator
from codeens.models.base import ModelConfig
from codeens.problem import Problem, fill, parse_problem
from codeens.progress import Progress
from codeens.recorder import Recorder
from codeens.sandbox.backends.base import Candidate, Sandbox
from codeens.sandbox.batch import Job, run_batch
from codeens.sandbox.reference import ReferenceCache, default_cache_dir, measure
from codeens.sandbox.testfile import parse_test_suite
from codeens.sandbox.timelimits import TimeLimits, TimeRule
from codeens.solve import AllModelsFailed, load_strategy, open_sandbox, solve
from codeens.storage import Run, Store
from codeens.strategies.base import Strategy, StrategyCannotRun

FINISHED = {"solved", "unsolved", "unverified", "failed", "error"}


def load_problems(spec: EvalSpec) -> list[BenchmarkProblem]:
    """The spec's problems, in the spec's order (BenchmarkError when data is missing)."""
    benchmark = BENCHMARKS.get(spec.benchmark)()
    problems = benchmark.load(spec.split, Path(spec.data) if spec.data else None)
    return select(problems, ids=list(spec.task_ids))


def as_problem(item: BenchmarkProblem, benchmark: str) -> Problem:
    """The problem file a strategy works on: the entry point is the only target."""
    path = Path(f"<{benchmark}>") / (item.task_id.replace("/", "_") + ".py")
    problem = parse_problem(item.source, path)
    return dataclasses.replace(problem, stubs=(problem.stub(item.entry_point),))


def start(spec: EvalSpec, store: Store) -> Run:
    """Record a new eval run."""
    run = Run(
        id=uuid.uuid4().hex[:12],
        kind="eval",
        problem_path=f"{spec.benchmark}:{spec.split}",
        strategy=",".join(spec.strategies),
        models_json=json.dumps(list(spec.models)),
        config_json=spec.model_dump_json(),
        status="running",
    )
    store.write(run)
    return run


def spec_of(run: Run) -> EvalSpec:
    return EvalSpec.model_validate_json(run.config_json)


def execute(run: Run, store: Store, progress: Progress) -> Run:
    """Do (or finish) everything the run's spec asks for; return the run, marked done.

    KeyboardInterrupt marks it ``interrupted`` and propagates; nothing finished is lost.
    """
    spec = spec_of(run)
    config = spec.config
    models = [config.model(name) for name in spec.models]
    strategies = [load_strategy(name, config) for name in spec.strategies]
    problems = load_problems(spec)
    started = time.monotonic()
    run.status = "running"
    store.write(run)
    generator = Generator(store, run.id, charge_cached=True)
    # The strategies run the same sampled programs on the same visible tests: once each.
    executions = ExecutionCache()
    try:
        with open_sandbox(config) as sandbox:
            for index, item in enumerate(problems):
                progress.update(f"{item.task_id} ({index + 1}/{len(problems)})")
                one_problem(
                    run.id, index, item, spec, models, strategies,
                    store=store, generator=generator, sandbox=sandbox,
                    executions=executions, progress=progress,
                )  # fmt: skip
    except BaseException:
        run.status = "interrupted"
        raise
    else:
        run.status = "done"
    finally:
        generator.close()
        # Only this call's time: a resumed run adds to what the earlier calls spent.
        run.wall_s += time.monotonic() - started
        store.write(run)
    return run


def one_problem(
    run_id: str,
    index: int,
    item: BenchmarkProblem,
    spec: EvalSpec,
    models: list[ModelConfig],
    strategies: list[Strategy],
    *,
    store: Store,
    generator: Generator,
    sandbox: Sandbox,
    executions: ExecutionCache,
    progress: Progress,
) -> None:
    """Steps 1-3 for one problem, skipping whatever ``store`` shows as already done."""
    problem = as_problem(item, spec.benchmark)
    failed = sample_pass(run_id, item, problem, spec, models, generator, sandbox, store)
    for name, reason in failed.items():
        progress.note(f"{item.task_id}: model {name} failed: {reason}")
    for strategy in strategies:
        child_id = _child_id(run_id, index, strategy.name, store)
        if child_id is None:
            continue
        try:
            solve(
                problem,
                spec.config,
                models=models,
                strategy=strategy,
                samples=spec.samples,
                store=store,
                progress=progress,
                kind="eval-item",
                run_id=child_id,
                parent_id=run_id,
                sandbox=sandbox,
                generator=generator,
                executions=executions,
            )
        except (StrategyCannotRun, AllModelsFailed) as exc:
            _mark_error(store, child_id, str(exc))
    hidden_pass(run_id, index, item, problem, sandbox, store)


def sample_pass(
    run_id: str,
    item: BenchmarkProblem,
    problem: Problem,
    spec: EvalSpec,
    models: list[ModelConfig],
    generator: Generator,
    sandbox: Sandbox,
    store: Store,
) -> dict[str, str]:
    """``samples`` completions per model under the eval run, unless already there.

    The requests are the ones a strategy's first sampling round makes (same prompt, same
    seeds), so the strategies find them in the log. Returns the models that failed.
    """
    have = Counter(g.model for g in store.generations(run_id, item.task_id))
    stub = problem.stubs[0]
    services = Services(
        config=spec.config,
        generator=generator,
        sandbox=sandbox,
        recorder=Recorder(store, run_id),
        history=store,
        progress=Progress(enabled=False),
    )
    ctx = SolveContext(
        services,
        problem=problem,
        stub=stub,
        tests=problem.tests_for(stub.name),
        models=models,
        samples=spec.samples,
        target=item.task_id,
    )
    for model in models:
        if have[model.name] < spec.samples:
            ctx.generate(model, spec.samples)
    return dict(ctx.failures)


def hidden_pass(
    run_id: str,
    index: int,
    item: BenchmarkProblem,
    problem: Problem,
    sandbox: Sandbox,
    store: Store,
) -> None:
    """Run every program seen for this problem against the hidden tests, once each."""
    suite = parse_test_suite(item.hidden_tests, f"{item.task_id} hidden tests")
    done = {  # an infra_error (a sandbox that broke or was closed) is run again
        e.code_hash
        for e in store.executions(
            run_id, limit=None, tests_hash=suite.tests_hash, target=item.task_id
        )
        if e.verdict != "infra_error"
    }
    rows = list(store.generations(run_id, item.task_id))
    for child in children_of(store, run_id, index):
        rows.extend(store.generations(child.id))
    codes: dict[str, str] = {}
    for row in rows:
        if row.code and row.code_hash and row.code_hash not in done:
            codes.setdefault(row.code_hash, row.code)
    if not codes:
        return
    programs = []
    for digest, code in codes.items():
        try:
            source = fill(problem, {item.entry_point: code}, keep_tests=False)
        except ValueError:
            continue
        programs.append(Program(f"{item.task_id}#{digest[:12]}", source, digest))
    if not programs:
        return
    # The batch path of `codeens sandbox run --samples`: each test limited to a multiple
    # of the canonical solution's runtime (measured once per machine), the timeout the
    # ceiling.
    bound = suite.for_entry_point(item.entry_point)
    jobs = [Job(item.task_id, Candidate(p.label, p.source), bound) for p in programs]
    references = []
    if item.canonical.strip():
        reference = Candidate(f"{item.task_id}#reference", item.canonical)
        references.append(Job(item.task_id, reference, bound))
    measured = measure(sandbox, references, ReferenceCache(default_cache_dir()))
    limits = TimeLimits(TimeRule(sandbox.limits.timeout), measured)
    recorder = Recorder(store, run_id)
    for program, result in zip(programs, run_batch(sandbox, jobs, limits), strict=True):
        recorder.execution(result, target=item.task_id, code_hash=program.code_hash)


def children_of(store: Store, run_id: str, index: int) -> list[Run]:
    """The finished child runs of one problem, the newest per strategy."""
    latest: dict[str, Run] = {}
    for child in store.children(run_id, f"{run_id}-{index:04d}-"):
        if child.status in FINISHED:
            latest[child.strategy] = child
    return list(latest.values())


def _child_id(run_id: str, index: int, strategy: str, store: Store) -> str | None:
    """The id for this (problem, strategy) solve; None when one already finished."""
    base = f"{run_id}-{index:04d}-{strategy}"
    tries = [
        c for c in store.children(run_id, base) if c.id == base or c.id.startswith(base + "-r")
    ]
    if any(c.status in FINISHED for c in tries):
        return None
    for child in tries:  # interrupted: keep its rows, say so, and start a fresh attempt
        if child.status != "interrupted":
            child.status = "interrupted"
            store.write(child)
    return base if not tries else f"{base}-r{len(tries)}"


def _mark_error(store: Store, child_id: str, message: str) -> None:
    child = store.run(child_id)
    if child is not None:
        child.status = "error"
        child.summary_json = json.dumps({"error": (message.splitlines() or [""])[0]})
        store.write(child)
