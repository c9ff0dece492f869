"""The values one request's work is done with: what all requests share, and its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codeens.config import Config
from codeens.generation import Generator
from codeens.models.base import ModelConfig
from codeens.progress import Progress
from codeens.sandbox.backends.base import Sandbox
from codeens.serve.catalog import Route
from codeens.serve.protocol import ChatRequest
from codeens.storage import Store


@dataclass(frozen=True)
class Shared:
    """Open for the server's lifetime: the log, the loaded models (a generator whose
    models every request's run shares), one sandbox, and an empty folder that problems
    are named in (so that no sibling ``test_*.py`` is ever picked up)."""

    store: Store
    generator: Generator
    sandbox: Sandbox
    workdir: Path


@dataclass(frozen=True)
class Job:
    """One accepted request: its run id, the config with its seed, the asked members
    with its sampling parameters, where progress goes, and the seconds it has left."""

    run_id: str
    request: ChatRequest
    route: Route
    config: Config
    members: tuple[ModelConfig, ...]
    progress: Progress
    budget_s: float | None
