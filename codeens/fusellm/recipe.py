"""The FuseLLM recipe: sources, target, corpus and training settings, validated from YAML.

Unknown keys are errors that name the key, as in merge recipes. ``lambda`` weighs the plain
language-model loss against the fusion loss: ``lambda * CE_lm + (1 - lambda) * CE(fused)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.validation import load_yaml, parse_yaml


class FuseRecipe(BaseModel):
    """A validated knowledge-fusion recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sources: list[str] = Field(
        min_length=1, description="Source models: embedded names, GGUF files or checkpoints."
    )
    target: str = Field(description="The model trained: an embedded name, GGUF or checkpoint.")
    data: str | None = Field(
        None,
        description="A folder of .py files or a JSONL file; default: MBPP train solutions.",
    )
    text_field: str = Field("text", description="The JSONL field holding each text.")
    lambda_: float = Field(0.9, alias="lambda", ge=0.0, le=1.0)
    fusion: Literal["minCE", "avgCE"] = "minCE"
    top_k: int = Field(10, ge=1, le=100, description="Source probabilities kept per position.")
    steps: int | None = Field(None, ge=1, description="Optimizer steps; default one epoch.")
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(2e-5, gt=0.0)
    warmup_steps: int = Field(5, ge=0)
    max_seq_len: int = Field(256, ge=8, description="Target tokens per text (longer is cut).")
    limit: int | None = Field(None, ge=1, description="Use only the first N texts.")
    save_every: int = Field(25, ge=1, description="Steps between resumable checkpoints.")
    seed: int = 0

    def digest(self) -> str:
        """Identifies the training run: a resumed run must have been started by this recipe."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class FuseRecipeError(ValueError):
    """The recipe cannot be used; the message is one line naming the problem."""


def load_fuse_recipe(path: Path) -> tuple[FuseRecipe, str]:
    return load_yaml(path, FuseRecipe, FuseRecipeError)


def parse_fuse_recipe(text: str, source: str = "recipe") -> FuseRecipe:
    return parse_yaml(text, FuseRecipe, source, FuseRecipeError)
