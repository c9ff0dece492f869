"""Model backends: one interface, implementations chosen by name from config."""

from codeens.models.base import (
    MODELS,
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
)

__all__ = [
    "MODELS",
    "Completion",
    "Model",
    "ModelConfig",
    "ModelUnavailable",
    "Prompt",
    "SamplingParams",
]
