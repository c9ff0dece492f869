"""Table definitions. Their DDL lives in migrations; a test checks the two agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class Execution(SQLModel, table=True):
    """One candidate run against one test suite in a sandbox."""

    __tablename__ = "executions"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    run_id: str | None = Field(default=None, index=True)
    candidate: str
    candidate_hash: str = Field(index=True)
    tests_hash: str = Field(index=True)
    backend: str
    verdict: str
    tests_total: int
    tests_passed: int
    duration_s: float
    exit_status: int | None = None
    message: str = ""
    tests_json: str = "[]"
    resources_json: str = "{}"
    # What was run, as columns rather than inside the ``candidate`` label: the function
    # (a stub name or benchmark task id) and the hash of the program's extracted code.
    target: str = Field(default="", index=True)
    code_hash: str = ""
    # Set when the result was reused from an earlier execution of the same program on the
    # same suite, limits and backend (the execution cache): that execution's id.
    cached_from: int | None = None


class Run(SQLModel, table=True):
    """One command invocation that produced candidates and a decision."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    kind: str = "solve"
    problem_hash: str | None = Field(default=None, index=True)
    problem_path: str = ""
    strategy: str = ""
    status: str = "running"
    models_json: str = "[]"
    config_json: str = "{}"
    wall_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    solution: str | None = None
    summary_json: str = "{}"
    parent_id: str | None = Field(default=None, index=True)


class Problem(SQLModel, table=True):
    """A problem file as it was when solved (by content hash)."""

    __tablename__ = "problems"

    hash: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    path: str = ""
    source: str = ""
    visible_tests: str = ""


class Generation(SQLModel, table=True):
    """One sampled completion: what was asked, what came back, what it cost."""

    __tablename__ = "generations"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    run_id: str | None = Field(default=None, index=True)
    target: str = ""
    model: str = Field(index=True)
    backend: str
    request_key: str = Field(index=True)
    prompt: str
    params_json: str
    seed: int
    raw_output: str
    code: str | None = None
    code_hash: str | None = Field(default=None, index=True)
    input_tokens: int = 0
    output_tokens: int = 0
    mean_logprob: float | None = None
    latency_s: float = 0.0
    cost: float = 0.0
    cached_from: int | None = None
    error: str = ""
    # What the strategy asked for: "sample", "prompt:plan", a MoA layer, a question's
    # purpose ("tests"); '' in rows logged before it was recorded.
    origin: str = ""
    # What the backend reported beside the text, as JSON ('' in older rows).
    extra_json: str = ""


class Decision(SQLModel, table=True):
    """A strategy's choice for one target function, with its trace."""

    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    run_id: str = Field(index=True)
    target: str
    strategy: str
    status: str
    chosen_hash: str | None = None
    trace_json: str = "{}"


class Lineage(SQLModel, table=True):
    """Where a built checkpoint (merge or MoE) came from: sources, method, parameters."""

    __tablename__ = "lineage"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    model_dir: str = Field(index=True)
    kind: str  # merge | moe
    method: str
    sources_json: str = "[]"
    parameters_json: str = "{}"
    recipe: str = ""


class EvolveStep(SQLModel, table=True):
    """One fitness measurement of an evolutionary merge search (``runs.kind = 'evolve'``).

    ``role`` is ``genome`` for a candidate the search proposed and ``source`` for one input
    model measured alone (the baseline); ``fitness`` is None when it was not a finite number.
    """

    __tablename__ = "evolve_steps"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)
    run_id: str = Field(index=True)
    step: int
    role: str = "genome"
    source: str = ""
    genome_json: str = "[]"
    parameters_json: str = "{}"
    fitness: float | None = None
    seconds: float = 0.0
    eval_run_id: str | None = None
