"""Evolutionary merging (Akiba et al. 2024): CMA-ES over a merge recipe's parameters.

The genome lives in the unit box (:mod:`codeens.merging.genome` scales it to the bounds);
CMA-ES proposes a generation, each genome is merged into a scratch directory, scored by
the recipe's fitness and logged (one ``evolve_steps`` row), and the generation's scores
go back to CMA-ES (which minimises, so it is told minus the fitness). The search stops
after ``budget.evaluations`` genomes or ``budget.wall_s`` seconds, whichever comes first,
with at least one genome measured. Each source model alone is measured first (unless
``baselines: false``): the figures a merge has to beat.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codeens.merging.engine import LINEAGE_FILE, merge
from codeens.merging.evolve_recipe import EvolveRecipe
from codeens.merging.fitness import Candidate, Fitness
from codeens.merging.genome import GenomeSpace, genome_space
from codeens.merging.recipe import RecipeError
from codeens.merging.scratch import checkpoint_bytes, scratch_dir, scratch_root
from codeens.models.base import ModelUnavailable
from codeens.models.checkpoint import checkpoint_dir
from codeens.storage import EvolveStep, Store

# What CMA-ES is told for a genome whose fitness is not a number (a merge of all-zero
# weights): worse than anything measured.
PENALTY = 1e9


@dataclass(frozen=True)
class Measurement:
    """One scored model: a genome (``role='genome'``) or a source alone (``'source'``)."""

    step: int
    role: str
    source: str
    genome: tuple[float, ...]
    parameters: dict[str, Any]
    fitness: float | None
    seconds: float
    eval_run_id: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """The measurements in order, the best genome and why the search stopped."""

    measurements: tuple[Measurement, ...]
    best: Measurement
    stopped: str
    space: GenomeSpace = field(repr=False)

    @property
    def evaluations(self) -> list[Measurement]:
        return [m for m in self.measurements if m.role == "genome"]

    def sources(self) -> dict[str, float | None]:
        return {m.source: m.fitness for m in self.measurements if m.role == "source"}

    def summary(self) -> dict[str, Any]:
        """What the lineage file and row say about the search."""
        return {
            "best_genome": list(self.best.genome),
            "best_fitness": self.best.fitness,
            "best_parameters": self.best.parameters,
            "sources_fitness": self.sources(),
            "evaluations": len(self.evaluations),
            "fitness_per_evaluation": [m.fitness for m in self.evaluations],
            "stopped": self.stopped,
        }


def search(
    recipe: EvolveRecipe,
    fitness: Fitness,
    *,
    store: Store,
    run_id: str,
    log: Callable[[str], None] = lambda _line: None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Run the search; every measurement is in the log as soon as it is made.

    A :class:`~codeens.merging.recipe.RecipeError` from the engine (models that do not
    fit together) propagates from the first merge.
    """
    import cma

    started = clock()
    space = genome_space(recipe)
    budget = recipe.budget
    measured: list[Measurement] = []

    def record(m: Measurement) -> None:
        measured.append(m)
        store.write(
            EvolveStep(
                run_id=run_id,
                step=m.step,
                role=m.role,
                source=m.source,
                genome_json=json.dumps(list(m.genome)),
                parameters_json=json.dumps(m.parameters),
                fitness=m.fitness,
                seconds=m.seconds,
                eval_run_id=m.eval_run_id,
            )
        )

    if recipe.baselines:
        for index, source in enumerate(_sources(recipe)):
            record(_score_source(fitness, source, run_id, index))
            log(f"source {source}: fitness {_fmt(measured[-1].fitness)}")
    # cma reads seed 0 as "from the clock": shift by one so that 0 is a fixed seed too.
    options = {"bounds": [0.0, 1.0], "seed": recipe.cma.seed + 1, "verbose": -9}
    if recipe.cma.popsize is not None:
        options["popsize"] = recipe.cma.popsize
    es = cma.CMAEvolutionStrategy([0.5] * space.size, recipe.cma.sigma0, options)
    root = scratch_root(_estimate_bytes(recipe))
    best: Measurement | None = None
    stopped = "evaluations"
    done = 0
    while done < budget.evaluations:
        asked = es.ask()
        population = [tuple(min(1.0, max(0.0, float(u))) for u in x) for x in asked]
        losses: list[float] = []
        for genome in population:
            if done >= budget.evaluations:
                break
            if done > 0 and clock() - started >= budget.wall_s:
                stopped = "wall_s"
                break
            done += 1
            m = _score_genome(fitness, space, genome, run_id, done, root, recipe.cma.seed)
            record(m)
            losses.append(PENALTY if m.fitness is None else -m.fitness)
            if best is None or _better(m, best):
                best = m
            log(
                f"evaluation {done}/{budget.evaluations}: fitness {_fmt(m.fitness)} "
                f"(best {_fmt(best.fitness)}, {m.seconds:.1f} s)"
            )
        if stopped == "wall_s":
            break
        if len(losses) == len(population):
            es.tell(asked, losses)  # the arrays asked for: cma recognises its own
    assert best is not None  # at least one genome is always measured
    return SearchResult(tuple(measured), best, stopped, space)


def _better(m: Measurement, best: Measurement) -> bool:
    return best.fitness is None or (m.fitness is not None and m.fitness > best.fitness)


def _score_genome(
    fitness: Fitness,
    space: GenomeSpace,
    genome: tuple[float, ...],
    run_id: str,
    step: int,
    root: Path,
    seed: int,
) -> Measurement:
    started = time.monotonic()
    recipe = space.to_recipe(genome)
    label = f"evolve-{run_id}-{step:04d}-{_digest(recipe, seed)}"
    with scratch_dir(root, label) as directory:
        merge(recipe, directory, seed=seed)
        score = fitness.score(Candidate(directory, label, genome))
    return Measurement(
        step=step,
        role="genome",
        source="",
        genome=genome,
        parameters=space.parameters(genome),
        fitness=_finite(score.value),
        seconds=round(time.monotonic() - started, 3),
        eval_run_id=score.eval_run_id,
    )


def _score_source(fitness: Fitness, source: str, run_id: str, index: int) -> Measurement:
    """A source model scored as it is (no merge: the exact model, not an approximation)."""
    started = time.monotonic()
    directory = checkpoint_dir(source)
    score = fitness.score(Candidate(directory, f"evolve-{run_id}-source{index}"))
    return Measurement(
        step=0,
        role="source",
        source=source,
        genome=(),
        parameters={"model": source, "path": str(directory)},
        fitness=_finite(score.value),
        seconds=round(time.monotonic() - started, 3),
        eval_run_id=score.eval_run_id,
    )


def check_sources(recipe: EvolveRecipe) -> dict[str, Path]:
    """Each source's checkpoint directory; :class:`RecipeError` naming one that is missing."""
    found = {}
    for source in _sources(recipe):
        try:
            found[source] = checkpoint_dir(source)
        except ModelUnavailable as exc:
            raise RecipeError(f"model {source!r}: {exc}") from exc
    return found


def _sources(recipe: EvolveRecipe) -> list[str]:
    """The base model (if any) and the listed models, each once."""
    names = ([recipe.base_model] if recipe.base_model else []) + [m.model for m in recipe.models]
    return list(dict.fromkeys(names))


def _estimate_bytes(recipe: EvolveRecipe) -> int:
    """The size of one merged checkpoint: that of its largest source (float32 at most
    doubles a 16-bit one)."""
    sizes = [checkpoint_bytes(checkpoint_dir(s)) for s in _sources(recipe)]
    factor = 2 if recipe.out_dtype == "float32" or recipe.dtype == "float32" else 1
    return factor * max(sizes, default=0)


def _digest(recipe: Any, seed: int) -> str:
    text = json.dumps([recipe.model_dump(mode="json"), seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write_best(
    result: SearchResult,
    out_dir: Path,
    *,
    seed: int,
    log: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Merge the best genome into ``out_dir``; its lineage file also tells the search."""
    merged = merge(result.space.to_recipe(result.best.genome), out_dir, seed=seed, log=log)
    lineage = {**asdict(merged), "method": f"evolve:{merged.method}", "evolve": result.summary()}
    (out_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n")
    return lineage
