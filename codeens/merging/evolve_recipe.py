"""The recipe of ``codeens merge evolve``: a merge recipe whose parameters are searched.

Beside the merge keys (``merge_method``, ``base_model``, ``models``, fixed ``parameters``,
``dtype``, ``out_dtype``) it says what to search (``search``: bounds per parameter the
method reads, ``layer_groups`` control points per parameter, a gradient over the layers),
how to score a merge (``fitness``: ``kind`` plus that fitness's options), when to stop
(``budget``) and how CMA-ES starts (``cma``). Every section forbids unknown keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from codeens.merging.recipe import DType, ModelEntry, RecipeError, Setting
from codeens.validation import first_error, load_yaml, parse_yaml

Bounds = tuple[float, float]


class FitnessSpec(BaseModel):
    """``fitness``: the registered fitness ``kind`` and its options, validated by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "pass-rate"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _options(cls, data: Any) -> Any:
        """The keys beside ``kind`` are the fitness's options, checked by its Options."""
        from codeens.merging.fitness import FITNESS

        if not isinstance(data, dict):
            return data
        kind = str(data.get("kind", "pass-rate"))
        FITNESS.check([kind])
        rest = {k: v for k, v in data.items() if k != "kind"}
        try:
            options = FITNESS.get(kind).Options.model_validate(rest)
        except ValidationError as exc:
            raise ValueError(f"{kind}: {first_error(exc)}") from None
        return {"kind": kind, "options": options.model_dump(mode="json")}


class Budget(BaseModel):
    """When the search stops: after ``evaluations`` genomes or ``wall_s`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evaluations: int = Field(12, ge=1, description="Genomes measured (sources not counted).")
    wall_s: float = Field(3600.0, gt=0, description="Seconds for the whole search.")


class CmaSettings(BaseModel):
    """How CMA-ES starts: step size on the unit box, population, seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sigma0: float = Field(0.25, gt=0, le=1, description="Initial step size (unit box).")
    popsize: int | None = Field(None, ge=2, description="Genomes per generation.")
    seed: int = Field(0, ge=0, description="Seed of the search (and of DARE's masks).")


class EvolveRecipe(BaseModel):
    """A validated evolve recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merge_method: str
    base_model: str | None = None
    models: list[ModelEntry] = Field(min_length=1)
    parameters: dict[str, Setting] = Field(default_factory=dict)
    dtype: DType | None = None
    out_dtype: DType | None = None
    layer_groups: int = Field(1, ge=1, le=64, description="Control points per parameter.")
    search: dict[str, Bounds] = Field(min_length=1, description="Bounds per searched name.")
    fitness: FitnessSpec = Field(default_factory=FitnessSpec)
    budget: Budget = Field(default_factory=Budget)
    cma: CmaSettings = Field(default_factory=CmaSettings)
    baselines: bool = Field(True, description="Also measure each source model alone.")

    @model_validator(mode="after")
    def _searchable(self) -> EvolveRecipe:
        from codeens.merging.base import METHODS
        from codeens.registry import UnknownName

        try:
            method = METHODS.get(self.merge_method)
        except UnknownName as exc:
            raise ValueError(str(exc)) from None
        numeric = {
            p.name
            for p in method.parameters + method.model_parameters
            if not isinstance(p.default, bool)
        }
        for name, (low, high) in self.search.items():
            if name not in numeric:
                reads = ", ".join(sorted(numeric)) or "nothing numeric"
                raise ValueError(f"search.{name}: {method.name} reads {reads}")
            if not low < high:
                raise ValueError(f"search.{name}: bounds [{low}, {high}] must be [low, high]")
            fixed = [("parameters", self.parameters)]
            fixed += [(f"models.{i}.parameters", m.parameters) for i, m in enumerate(self.models)]
            for where, scope in fixed:
                if name in scope:
                    raise ValueError(f"{where}.{name}: searched, so it cannot also be fixed")
        return self


def load_evolve_recipe(path: Path) -> tuple[EvolveRecipe, str]:
    """(validated recipe, its text); :class:`RecipeError` with one line if unusable."""
    return load_yaml(path, EvolveRecipe, RecipeError)


def parse_evolve_recipe(text: str, source: str = "recipe") -> EvolveRecipe:
    return parse_yaml(text, EvolveRecipe, source, RecipeError)
