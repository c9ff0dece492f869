"""Genomes: points of the unit box that stand for the searched merge parameters.

Each searched parameter gets ``layer_groups`` genes, the control points of a gradient
over the layers (one gene is a scalar): per input model for a parameter the method reads
per model (``weight``, ``density``), once for a global one (``t``, ``lambda``). A gene
``u`` in [0, 1] is the value ``low + u * (high - low)`` of that parameter's bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeens.merging.evolve_recipe import EvolveRecipe
from codeens.merging.recipe import ModelEntry, Recipe, Setting


@dataclass(frozen=True)
class Gene:
    """One coordinate: control point ``group`` of ``parameter``, of input ``model`` (its
    index in ``models``) or global when ``model`` is None."""

    parameter: str
    model: int | None
    group: int


@dataclass(frozen=True)
class GenomeSpace:
    """The genes of one evolve recipe and the map from a genome to a merge recipe."""

    recipe: EvolveRecipe
    genes: tuple[Gene, ...]

    @property
    def size(self) -> int:
        return len(self.genes)

    def values(self, genome: Sequence[float]) -> dict[tuple[str, int | None], list[float]]:
        """Per (parameter, model index or None), its control points scaled to the bounds."""
        if len(genome) != self.size:
            raise ValueError(f"a genome of this recipe has {self.size} genes, not {len(genome)}")
        out: dict[tuple[str, int | None], list[float]] = {}
        for gene, u in zip(self.genes, genome, strict=True):
            low, high = self.recipe.search[gene.parameter]
            clipped = min(1.0, max(0.0, float(u)))
            out.setdefault((gene.parameter, gene.model), []).append(low + clipped * (high - low))
        return out

    def to_recipe(self, genome: Sequence[float]) -> Recipe:
        """The ordinary merge recipe this genome stands for."""
        r = self.recipe
        searched: dict[tuple[str, int | None], Setting] = {
            key: points[0] if len(points) == 1 else points
            for key, points in self.values(genome).items()
        }
        models = [
            ModelEntry(
                model=entry.model,
                parameters={
                    **entry.parameters,
                    **{name: v for (name, i), v in searched.items() if i == index},
                },
            )
            for index, entry in enumerate(r.models)
        ]
        parameters = {**r.parameters, **{n: v for (n, i), v in searched.items() if i is None}}
        return Recipe(
            merge_method=r.merge_method,
            base_model=r.base_model,
            models=models,
            parameters=parameters,
            dtype=r.dtype,
            out_dtype=r.out_dtype,
        )

    def parameters(self, genome: Sequence[float]) -> dict[str, Any]:
        """The searched values as the lineage shows them: global, then per model."""
        out: dict[str, Any] = {"global": {}, "models": {}}
        for (name, index), points in self.values(genome).items():
            value: Any = points[0] if len(points) == 1 else points
            if index is None:
                out["global"][name] = value
            else:
                out["models"].setdefault(self.recipe.models[index].model, {})[name] = value
        return out


def genome_space(recipe: EvolveRecipe) -> GenomeSpace:
    """The genes of ``recipe``: searched parameters in the order written, per-model ones
    for every input (the base model of a task-vector method is not an input)."""
    from codeens.merging.base import METHODS

    method = METHODS.get(recipe.merge_method)
    per_model = {p.name for p in method.model_parameters}
    inputs = [
        i
        for i, entry in enumerate(recipe.models)
        if method.base != "required" or entry.model != recipe.base_model
    ]
    genes: list[Gene] = []
    for name in recipe.search:
        owners: list[int | None] = list(inputs) if name in per_model else [None]
        for owner in owners:
            genes.extend(Gene(name, owner, g) for g in range(recipe.layer_groups))
    return GenomeSpace(recipe, tuple(genes))
