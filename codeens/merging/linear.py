"""Linear merging (model soups): W = sum_i w_i W_i, divided by sum_i w_i when normalising."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codeens.merging.base import MergeMethod, ParameterDef, TensorInputs

if TYPE_CHECKING:
    import torch


class Linear(MergeMethod):
    """mergekit's ``linear``: ``weight`` per model (required), ``normalize`` (default true)."""

    name = "linear"
    parameters = (ParameterDef("normalize", default=True),)
    model_parameters = (ParameterDef("weight", required=True),)

    def merge(self, inputs: TensorInputs) -> torch.Tensor:
        import torch

        weights = torch.tensor([float(p["weight"]) for p in inputs.model_params])
        stacked = torch.stack(list(inputs.tensors))
        shape = (-1,) + (1,) * (stacked.dim() - 1)
        merged = (stacked * weights.view(shape)).sum(dim=0)
        if inputs.params["normalize"]:
            merged = merged / weights.sum()
        return merged


LINEAR = Linear()
