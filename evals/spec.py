"""What an eval run is: recorded with the run so that ``--resume`` needs nothing else."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from codeens.config import Config


class EvalSpec(BaseModel):
    """The benchmark slice, the members and the strategies of one eval run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: str
    split: str
    data: str | None = Field(None, description="Local data path given with --data.")
    task_ids: tuple[str, ...]
    models: tuple[str, ...]
    strategies: tuple[str, ...]
    samples: int = Field(ge=1)
    config: Config
