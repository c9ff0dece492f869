"""Task-vector methods: task arithmetic, TIES, DARE (linear and TIES), one parameterised class.

For each input i: T_i = W_i - W_base, optionally sparsified (TIES trims to the top
``density`` share by magnitude; DARE keeps each entry with probability ``density`` = 1 - p),
then weighted by ``weight``. With sign election (TIES, DARE-TIES) only the entries whose
sign agrees with the sign of sum_i w_i T_i count. The sum is divided by the summed weights
of the counted entries when ``normalize`` is on, scaled by ``lambda`` and added to the base.

Defaults follow mergekit: ``normalize`` is on for TIES only; ``rescale`` is on for DARE.
``rescale`` after a random drop divides the kept entries by ``density`` (the DARE paper's
1 / (1 - p)); after a magnitude trim it restores the task vector's L1 norm, as mergekit
does. (Current mergekit also restores the L1 norm after a random drop; both are unbiased
rescalings and agree in expectation.) ``int8_mask`` is accepted and changes nothing: it
only saves memory in mergekit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from codeens.merging.base import MergeMethod, ParameterDef, TensorInputs

if TYPE_CHECKING:
    import torch

Sparsify = Literal["magnitude", "random"] | None


class TaskArithmetic(MergeMethod):
    """One of the task-vector methods, chosen by its sparsification and sign election."""

    base = "required"
    model_parameters = (
        ParameterDef("weight", required=True),
        ParameterDef("density", default=1.0),
    )

    def __init__(self, name: str, sparsify: Sparsify, elect_sign: bool, normalize: bool) -> None:
        self.name = name
        self.sparsify = sparsify
        self.elect_sign = elect_sign
        self.parameters = (
            ParameterDef("normalize", default=normalize),
            ParameterDef("rescale", default=sparsify == "random"),
            ParameterDef("lambda", default=1.0),
            ParameterDef("int8_mask", default=False),
        )

    def merge(self, inputs: TensorInputs) -> torch.Tensor:
        import torch

        base = inputs.base
        assert base is not None
        rescale = bool(inputs.params["rescale"])
        deltas = []
        for tensor, params in zip(inputs.tensors, inputs.model_params, strict=True):
            delta = tensor - base
            density = float(params["density"])
            if self.sparsify == "magnitude":
                delta = trim(delta, density, rescale)
            elif self.sparsify == "random":
                delta = drop(delta, density, rescale, inputs.generator)
            deltas.append(delta)
        stacked = torch.stack(deltas)
        weights = torch.tensor([float(p["weight"]) for p in inputs.model_params])
        weights = weights.view((-1,) + (1,) * (stacked.dim() - 1))
        weighted = stacked * weights
        if self.elect_sign:
            # Ties in the vote (a zero sum) count as positive, as in mergekit.
            elected = torch.where(weighted.sum(dim=0) >= 0, 1.0, -1.0)
            agree = (torch.sign(weighted) == elected).to(weighted.dtype)
            merged = (weighted * agree).sum(dim=0)
            divisor = (weights * agree).sum(dim=0)
            divisor[divisor == 0] = 1.0
        else:
            merged = weighted.sum(dim=0)
            divisor = weights.sum(dim=0).expand_as(merged).clone()
            divisor[divisor.abs() < 1e-8] = 1.0
        if inputs.params["normalize"]:
            merged = merged / divisor
        return base + float(inputs.params["lambda"]) * merged


def trim(delta: torch.Tensor, density: float, rescale: bool) -> torch.Tensor:
    """Keep the ``density`` share of entries with the largest magnitude, zero the rest."""
    import torch

    if density >= 1:
        return delta
    keep = int(density * delta.numel())
    if keep <= 0:
        raise ValueError(f"density {density} keeps no entry of a {delta.numel()}-entry tensor")
    mask = torch.zeros(delta.numel(), dtype=delta.dtype)
    mask[torch.argsort(delta.abs().flatten(), descending=True)[:keep]] = 1.0
    kept = delta * mask.view_as(delta)
    if rescale:
        before, after = delta.abs().sum(), kept.abs().sum()
        if before > 1e-7 and after > 1e-7:
            kept = kept * (before / after)
    return kept


def drop(
    delta: torch.Tensor, density: float, rescale: bool, generator: torch.Generator
) -> torch.Tensor:
    """DARE: keep each entry with probability ``density``; divide the kept by ``density``."""
    import torch

    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    mask = torch.bernoulli(torch.full_like(delta, density), generator=generator)
    kept = delta * mask
    return kept / density if rescale else kept


TASK_ARITHMETIC = TaskArithmetic("task_arithmetic", None, elect_sign=False, normalize=False)
TIES = TaskArithmetic("ties", "magnitude", elect_sign=True, normalize=True)
DARE_LINEAR = TaskArithmetic("dare_linear", "random", elect_sign=False, normalize=False)
DARE_TIES = TaskArithmetic("dare_ties", "random", elect_sign=True, normalize=False)
