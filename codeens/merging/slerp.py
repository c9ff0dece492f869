"""Spherical linear interpolation between the base model (t = 0) and one other (t = 1).

Each tensor is treated as one vector. With unit directions u0, u1 and angle
theta = arccos(u0 . u1): W = sin((1 - t) theta) / sin(theta) W0 + sin(t theta) / sin(theta) W1.
Nearly parallel tensors (|u0 . u1| > 0.9995) fall back to linear interpolation, as in
mergekit. ``t`` may be a gradient over the layers or filtered by tensor name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from codeens.merging.base import MergeMethod, ParameterDef, TensorInputs

if TYPE_CHECKING:
    import torch

PARALLEL = 0.9995


class Slerp(MergeMethod):
    """mergekit's ``slerp``: exactly two models, one of them ``base_model``; global ``t``."""

    name = "slerp"
    base = "required"
    parameters = (ParameterDef("t", required=True),)

    def check(self, inputs: int, has_base: bool) -> None:
        if inputs != 1:
            raise ValueError("slerp merges exactly two models: base_model and one other")
        super().check(inputs, has_base)

    def merge(self, inputs: TensorInputs) -> torch.Tensor:
        assert inputs.base is not None
        return slerp(float(inputs.params["t"]), inputs.base, inputs.tensors[0])


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Interpolate from ``v0`` (t = 0) to ``v1`` (t = 1) along the great circle."""
    a, b = v0.double(), v1.double()
    na, nb = float(a.norm()), float(b.norm())
    ua = a / na if na > eps else a
    ub = b / nb if nb > eps else b
    dot = float((ua * ub).sum())
    if abs(dot) > PARALLEL:
        return ((1 - t) * a + t * b).to(v0.dtype)
    theta = math.acos(dot)
    s0 = math.sin(theta - theta * t) / math.sin(theta)
    s1 = math.sin(theta * t) / math.sin(theta)
    return (s0 * a + s1 * b).to(v0.dtype)


SLERP = Slerp()
