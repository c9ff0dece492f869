"""``codeens sandbox``: build the image, run candidates against tests, clean up."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import click

from codeens.commands.options import SANDBOXES, field_option, shared_options
from codeens.errors import InputError

DOCKER_OPTIONS = "codeens.sandbox.backends.docker:DockerSandbox.Options"


@click.group()
def sandbox() -> None:
    """Run candidate programs against tests in an isolated sandbox."""


@sandbox.command()
@click.option(
    "--base",
    type=click.Choice(["auto", "python-slim", "debootstrap"]),
    default="auto",
    show_default=True,
    help="python:3.11-slim needs a registry; debootstrap needs only a Debian mirror.",
)
@field_option("--image", model=DOCKER_OPTIONS, field="image", default="field")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
def build(base: str, image: str, force: bool) -> None:
    """Build the sandbox image without any container registry if need be."""
    from codeens.sandbox.image import ImageBuildError, build_image

    try:
        how = build_image(image, base=base, force=force, log=_log)
    except ImageBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    _log(f"sandbox image {image}: {how}")


@sandbox.command()
@click.argument("candidates", nargs=-1, type=click.Path(path_type=Path))
@click.option("--tests", "tests_path", type=click.Path(path_type=Path), help="The test file.")
@field_option("--timeout", field="sandbox.timeout", default="field")
@field_option("--memory", field="sandbox.memory_mb", default="field")
@field_option("--workers", field="sandbox.workers", default="field")
@field_option("--backend", field="sandbox.backend", default="field", names=SANDBOXES)
@click.option("--entry-point", default=None, help="Function that check(candidate) receives.")
@field_option(
    "--image", model=DOCKER_OPTIONS, field="image", help="Sandbox image tag (docker backend)"
)
@field_option(
    "--keep-warm",
    model=DOCKER_OPTIONS,
    field="keep_warm",
    help="Seconds the containers stay parked for the next run (docker backend; 0: removed)",
)
@click.option(
    "--samples",
    "samples_path",
    type=click.Path(path_type=Path),
    help="A JSONL of samples (task_id plus completion or solution), instead of CANDIDATES.",
)
@click.option(
    "--problems",
    default="humaneval",
    show_default=True,
    help="With --samples: a problems JSONL (task_id, prompt, test, entry_point), or a "
    "benchmark name (NAME or NAME:SPLIT).",
)
@click.option(
    "--time-factor",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="With --samples: each test may take this many times its reference runtime.",
)
@click.option(
    "--time-floor",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="With --samples: seconds each test may take at least (the timeout stays the ceiling).",
)
@click.option(
    "--results",
    "results_path",
    type=click.Path(path_type=Path),
    help="With --samples: write one JSON line per sample here, in input order.",
)
@shared_options("db", "json", json="One JSON object per candidate.")
@click.pass_context
def run(
    ctx: click.Context,
    candidates: tuple[Path, ...],
    tests_path: Path | None,
    samples_path: Path | None,
    problems: str,
    time_factor: float,
    time_floor: float,
    results_path: Path | None,
    timeout: float,
    memory: int,
    workers: int,
    backend: str,
    entry_point: str | None,
    image: str | None,
    keep_warm: float | None,
    db: Path | None,
    as_json: bool,
) -> None:
    """Run each CANDIDATE file against the tests; exit 0 only if every one passed.

    With --samples, judge every sample of a JSONL for many problems in one run (exit 0
    when it ran, whatever the verdicts)."""
    from pydantic import ValidationError

    from codeens.config import SandboxConfig
    from codeens.registry import UnknownName
    from codeens.sandbox.errors import SandboxInputError
    from codeens.validation import first_error

    if samples_path is not None and (candidates or tests_path is not None):
        raise InputError("--samples cannot be combined with CANDIDATES or --tests")
    if samples_path is None and not candidates:
        raise InputError("give CANDIDATES and --tests, or --samples")
    if samples_path is None and tests_path is None:
        raise InputError("CANDIDATES need --tests (or give --samples instead)")
    given = {"image": image, "keep_warm": keep_warm}
    own = {key: value for key, value in given.items() if value is not None}
    try:
        settings = SandboxConfig(
            backend=backend,
            workers=workers,
            timeout=timeout,
            memory_mb=memory,
            options={backend: own} if own else {},
        )
        warning = settings.warning()
        if samples_path is not None:
            from codeens.commands.sandbox_samples import SamplesRun, run_samples

            request = SamplesRun(
                samples_path, problems, time_factor, time_floor, results_path, as_json, db
            )
            run_samples(settings, request)
            return
        # Imported only here: --samples opens its pool before the log's modules load.
        from codeens.sandbox.backends.base import Candidate
        from codeens.sandbox.testfile import (
            check_candidate_source,
            load_test_suite,
            read_python_source,
        )

        assert tests_path is not None
        suite = load_test_suite(tests_path)
        items = []
        for path in candidates:
            source = read_python_source(path, "candidate")
            check_candidate_source(source, str(path))
            items.append(Candidate(str(path), source))
        if suite.entry_point_required and entry_point is None:
            for item in items:
                from codeens.sandbox.testfile import default_entry_point

                if default_entry_point(item.source) is None:
                    raise SandboxInputError(
                        f"{item.label}: defines no function for check(candidate); "
                        "pass --entry-point"
                    )
    except (SandboxInputError, UnknownName) as exc:
        raise InputError(str(exc)) from exc
    except ValidationError as exc:
        names = ", ".join("--" + key.replace("_", "-") for key in own)
        raise InputError(f"{names}: {first_error(exc)}") from exc

    from codeens.recorder import Recorder
    from codeens.sandbox.results import Verdict
    from codeens.sandbox.runner import run_all
    from codeens.storage import Store

    run_id = uuid.uuid4().hex[:12]
    recorder = Recorder(Store(db), run_id)
    all_passed = True
    with settings.open() as box:
        if warning is not None:
            click.echo(warning, err=True)
        for result in run_all(box, items, suite, entry_point):
            recorder.execution(result)
            all_passed &= result.verdict is Verdict.PASSED
            if as_json:
                data = result.to_json()
                data["run_id"] = run_id
                click.echo(json.dumps(data))
            else:
                from codeens.commands.sandbox_print import print_result

                print_result(result)
    ctx.exit(0 if all_passed else 1)


@sandbox.command()
def clean() -> None:
    """Remove sandbox containers left behind by codeens processes that died, and the
    containers parked warm for the next run."""
    import docker

    from codeens.sandbox.backends.docker import reap_stale

    client = docker.from_env()
    _log(f"removed {reap_stale(client, parked=True)} stale or parked sandbox container(s)")


def _log(message: str) -> None:
    if os.environ.get("CODEENS_QUIET") != "1":
        click.echo(message, err=True)
