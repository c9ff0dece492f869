"""The MoE recipe: mergekit-moe's YAML format, validated by one frozen pydantic model.

```yaml
base_model: path/or/package:location      # attention, norms and embeddings come from here
gate_mode: hidden                         # hidden | cheap_embed | random
dtype: bfloat16                           # float32 | float16 | bfloat16 (default: base's)
experts_per_token: 2                      # top-k experts per token
experts:
  - source_model: path/to/expert_1        # its MLPs become expert 0 of every layer
    positive_prompts: ["def add(a, b):"]
    negative_prompts: ["Once upon a time"]  # optional
  - source_model: path/to/expert_2
    positive_prompts: ["Once upon a time"]
```

Two keys go beyond mergekit: ``architecture`` (only ``mixtral`` is written today) and
``seed`` (for ``random`` gates). Any other key is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codeens.validation import load_yaml, parse_yaml


class MoEError(ValueError):
    """A recipe or a source model that cannot be built from; the message is one line."""


class Expert(BaseModel):
    """One expert: the dense model whose MLPs it takes, and the prompts that should reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_model: str = Field(description="Location of the dense model (directory or GGUF).")
    positive_prompts: tuple[str, ...] = Field(
        (), description="Text this expert should receive (needed unless gate_mode is random)."
    )
    negative_prompts: tuple[str, ...] = Field(
        (), description="Text this expert should not receive; subtracted from the gate."
    )


class Recipe(BaseModel):
    """A whole ``codeens moe build`` recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(description="Model giving attention, norms and embeddings.")
    experts: tuple[Expert, ...] = Field(min_length=2, description="Two or more experts.")
    gate_mode: Literal["hidden", "cheap_embed", "random"] = Field(
        "hidden", description="How router weights are initialised."
    )
    dtype: Literal["float32", "float16", "bfloat16"] | None = Field(
        None, description="Output dtype; default the base model's."
    )
    experts_per_token: int = Field(2, ge=1, description="Experts each token is routed to.")
    architecture: Literal["mixtral"] = Field("mixtral", description="Output layout.")
    seed: int = Field(0, description="Seed for random gates.")

    @model_validator(mode="after")
    def _coherent(self) -> Recipe:
        if self.experts_per_token > len(self.experts):
            raise ValueError(
                f"experts_per_token is {self.experts_per_token} but there are only "
                f"{len(self.experts)} experts"
            )
        if self.gate_mode == "random":
            return self
        for index, expert in enumerate(self.experts):
            if not expert.positive_prompts:
                raise ValueError(
                    f"experts[{index}] has no positive_prompts (needed by gate_mode "
                    f"{self.gate_mode}; use gate_mode random to build without prompts)"
                )
        first = self.experts[0]
        if all(
            (e.positive_prompts, e.negative_prompts)
            == (first.positive_prompts, first.negative_prompts)
            for e in self.experts[1:]
        ):
            # Identical prompts give identical gate rows: every token would tie.
            raise ValueError("every expert has the same prompts; the router could not choose")
        return self


def parse_recipe(text: str, where: str = "recipe") -> Recipe:
    """Validate YAML ``text``; raise :class:`MoEError` with one line naming the problem."""
    return parse_yaml(text, Recipe, where, MoEError)


def load_recipe(path: Path) -> tuple[Recipe, str]:
    """Read and validate the recipe file; returns it with its text (kept for lineage)."""
    return load_yaml(path, Recipe, MoEError)
