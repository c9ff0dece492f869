"""The merge-method extension point: one small class per family of methods.

A method turns the K input tensors of one parameter name (plus the base model's, for
methods built on task vectors) into one output tensor. It declares the parameters it reads;
the engine evaluates them per tensor (gradients, filters) and hands them over as plain
values, so a method never sees the recipe. Methods register under the entry-point group
``codeens.merge_methods`` (built-ins too) and are found by :data:`METHODS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from codeens.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ParameterDef:
    """A parameter a method reads: from the recipe's ``parameters`` (global) or a model's."""

    name: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class TensorInputs:
    """Everything one output tensor is made from.

    ``tensors`` are the inputs in recipe order (float32, one shape); ``base`` is the base
    model's tensor for methods with ``base == "required"``, else None; ``model_params`` holds
    one mapping per input; ``generator`` is seeded from the run's seed and the tensor's name,
    so random methods give the same result whatever order tensors are merged in.
    """

    name: str
    tensors: Sequence[torch.Tensor]
    base: torch.Tensor | None
    model_params: Sequence[Mapping[str, Any]]
    params: Mapping[str, Any]
    generator: torch.Generator


class MergeMethod(ABC):
    """One named way of merging tensors of the same shape."""

    name: str
    base: Literal["required", "unused"] = "unused"
    """"required": the base model is separate from the inputs (task vectors are taken
    against it, or it is slerp's start point); "unused": the inputs are the listed models."""
    parameters: tuple[ParameterDef, ...] = ()
    model_parameters: tuple[ParameterDef, ...] = ()

    @abstractmethod
    def merge(self, inputs: TensorInputs) -> torch.Tensor:
        """The merged tensor (float32, the inputs' shape)."""

    def check(self, inputs: int, has_base: bool) -> None:
        """Raise ValueError (one line) when the recipe's model count cannot work."""
        if self.base == "required" and not has_base:
            raise ValueError(f"{self.name} needs base_model")
        if inputs < 1:
            raise ValueError(f"{self.name} needs at least one model besides the base")


METHODS: Registry[MergeMethod] = Registry("codeens.merge_methods", "merge method")
