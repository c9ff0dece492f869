"""The merge recipe: the subset of mergekit's YAML that codeens runs.

Accepted keys: ``merge_method``, ``base_model``, ``models`` (each ``model`` plus optional
``parameters``), global ``parameters``, ``dtype``, ``out_dtype``, and ``slices`` when it is
one output slice whose sources all span every layer (the common spelling of a whole-model
slerp), which is the same as ``models``. Any other key is an error that names it.

A parameter value follows mergekit: a scalar; a list of numbers, a gradient interpolated
over the layers (layer i of L reads position i / (L - 1); tensors outside the layers read
position 0); or a list of ``{filter, value}`` entries, the first whose filter is a
substring of the tensor name (or is absent or ``*``) applying.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.validation import load_yaml, parse_yaml

Scalar = float | int | bool | str
Gradient = list[float]


class Conditional(BaseModel):
    """One entry of a filtered parameter: applies to tensors whose name contains ``filter``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Scalar | Gradient
    filter: str | None = None


Setting = Scalar | Gradient | list[Conditional]


class ModelEntry(BaseModel):
    """One input model and its per-model parameters (``weight``, ``density``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Checkpoint directory, GGUF file or package:... reference.")
    parameters: dict[str, Setting] = Field(default_factory=dict)


class SliceSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Setting] = Field(default_factory=dict)


class OutputSlice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[SliceSource]


DType = Literal["float32", "bfloat16", "float16"]


class Recipe(BaseModel):
    """A validated merge recipe (mergekit-compatible for the supported methods)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merge_method: str
    base_model: str | None = None
    models: list[ModelEntry] | None = None
    slices: list[OutputSlice] | None = None
    parameters: dict[str, Setting] = Field(default_factory=dict)
    dtype: DType | None = Field(None, description="Dtype of the output weights.")
    out_dtype: DType | None = Field(None, description="Overrides dtype for the output.")

    def entries(self, num_layers: int | None = None) -> list[ModelEntry]:
        """The input models, from ``models`` or from a single whole-model slice."""
        if self.models is not None:
            if self.slices is not None:
                raise RecipeError("give either 'models' or 'slices', not both")
            return list(self.models)
        if not self.slices:
            raise RecipeError("the recipe lists no models ('models' or 'slices')")
        if len(self.slices) != 1:
            raise RecipeError("unsupported: more than one output slice in 'slices'")
        entries = []
        for source in self.slices[0].sources:
            first, last = source.layer_range
            if first != 0 or (num_layers is not None and last != num_layers):
                raise RecipeError(
                    f"unsupported: slices.sources.layer_range {list(source.layer_range)} "
                    f"for {source.model} (only whole models, [0, {num_layers}])"
                )
            entries.append(ModelEntry(model=source.model, parameters=source.parameters))
        return entries

    @property
    def output_dtype(self) -> DType | None:
        return self.out_dtype or self.dtype


class RecipeError(ValueError):
    """The recipe cannot be used; the message is one line naming the problem."""


def load_recipe(path: Path) -> tuple[Recipe, str]:
    """(validated recipe, its text) from a YAML file; :class:`RecipeError` if unusable."""
    return load_yaml(path, Recipe, RecipeError)


def parse_recipe(text: str, source: str = "recipe") -> Recipe:
    return parse_yaml(text, Recipe, source, RecipeError)


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_position(tensor_name: str, num_layers: int) -> float:
    """Where a tensor sits for gradients: i / (L - 1) for layer i, 0 outside the layers."""
    match = _LAYER.search(tensor_name)
    if match is None:
        return 0.0
    if num_layers <= 1:
        return 1.0
    return int(match.group(1)) / (num_layers - 1)


def evaluate(setting: Setting, tensor_name: str, position: float) -> Any:
    """The value of one parameter setting for one tensor, or None when no filter matches."""
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if all(isinstance(e, Conditional) for e in setting):
        for entry in setting:
            assert isinstance(entry, Conditional)
            if entry.filter in (None, "*") or (entry.filter and entry.filter in tensor_name):
                return evaluate(entry.value, tensor_name, position)
        return None
    values = [float(e) for e in setting if not isinstance(e, Conditional)]
    if not values:
        return None
    scaled = position * (len(values) - 1)
    low = int(scaled)
    high = min(len(values) - 1, low + 1)
    frac = scaled - low
    return (1 - frac) * values[low] + frac * values[high]


def lookup(
    name: str,
    tensor_name: str,
    position: float,
    *scopes: dict[str, Setting],
) -> Any:
    """The first scope (per-model, then global) that gives ``name`` a value, else None."""
    for scope in scopes:
        if name in scope:
            value = evaluate(scope[name], tensor_name, position)
            if value is not None:
                return value
    return None
