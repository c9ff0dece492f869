"""``[strategies.rank-fuse]``: the options of ``rank-fuse``, read by its steps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeens.strategies.comparators import COMPARATORS
from codeens.strategies.pairrank import Aggregate

DEFAULT_COMPARATORS = ("execution", "judge", "logprob")


class RankFuseOptions(BaseModel):
    """``[strategies.rank-fuse]`` in codeens.toml."""

    model_config = ConfigDict(extra="forbid")

    comparators: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COMPARATORS),
        min_length=1,
        description="Pairwise comparators applied in order until one decides "
        "(names of the `codeens.comparators` registry).",
    )
    aggregate: Aggregate = Field(
        "full", description="full: every pair, ranked by wins; bubble: one pass, n-1 pairs."
    )
    max_candidates: int = Field(
        8, ge=1, le=64, description="Candidates ranked, best visible pass rate first."
    )
    judge_samples: int = Field(
        1, ge=1, le=20, description="Judge answers per chat model, pair and order."
    )
    fuse: bool = Field(True, description="Fuse the top candidates (false: the ranked winner).")
    fuse_top_k: int = Field(3, ge=1, le=16, description="Ranked candidates shown to the fuser.")
    fuser: str | None = Field(
        None, description="Model name (default: the most expensive selected model, then the last)."
    )
    max_chars: int = Field(
        1200, ge=100, le=50_000, description="Code shown to the fuser per program."
    )
    generated_tests: int = Field(
        10, ge=0, le=100, description="Tests asked of each model to check the fused program."
    )
    test_samples: int = Field(1, ge=1, le=20, description="Test-writing completions per model.")

    @field_validator("comparators")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return COMPARATORS.check(names)
