"""``codeens sandbox``: build the image, run candidates against tests, clean up."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import click

from codeens.errors import InputError


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
@click.option("--image", default=None, help="Image tag (default: codeens-sandbox:2).")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
def build(base: str, image: str | None, force: bool) -> None:
    """Build the sandbox image without any container registry if need be."""
    from codeens.sandbox.image import DEFAULT_IMAGE, ImageBuildError, build_image

    try:
        how = build_image(image or DEFAULT_IMAGE, base=base, force=force, log=_log)
    except ImageBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    _log(f"sandbox image {image or DEFAULT_IMAGE}: {how}")


@sandbox.command()
@click.argument("candidates", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tests", "tests_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--timeout",
    type=click.FloatRange(0.01, 3600.0),
    callback=lambda _ctx, _param, value: _finite(value),
    default=10.0,
    show_default=True,
    help="Seconds per candidate.",
)
@click.option(
    "--memory", type=click.IntRange(32, 65536), default=512, show_default=True, help="Megabytes."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Parallel runs."
)
@click.option("--backend", default="docker", show_default=True, help="docker or process.")
@click.option("--entry-point", default=None, help="Function that check(candidate) receives.")
@click.option("--image", default=None, help="Sandbox image tag (docker backend).")
@click.option("--db", type=click.Path(path_type=Path), default=None, help="SQLite log file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per candidate.")
@click.pass_context
def run(
    ctx: click.Context,
    candidates: tuple[Path, ...],
    tests_path: Path,
    timeout: float,
    memory: int,
    workers: int,
    backend: str,
    entry_point: str | None,
    image: str | None,
    db: Path | None,
    as_json: bool,
) -> None:
    """Run each CANDIDATE file against the tests; exit 0 only if every one passed."""
    from codeens.recorder import Recorder
    from codeens.registry import UnknownName
    from codeens.sandbox.backends.base import SANDBOXES, Candidate
    from codeens.sandbox.errors import SandboxInputError
    from codeens.sandbox.results import Limits, Verdict
    from codeens.sandbox.runner import run_all
    from codeens.sandbox.testfile import check_candidate_source, load_test_suite, read_python_source
    from codeens.storage import Store

    try:
        factory = SANDBOXES.get(backend)
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

    limits = Limits(timeout=timeout, memory_mb=memory)
    kwargs = {"image": image} if image and backend == "docker" else {}
    run_id = uuid.uuid4().hex[:12]
    recorder = Recorder(Store(db), run_id)
    all_passed = True
    with factory(limits, workers, **kwargs) as box:
        if backend == "process":
            from codeens.sandbox.backends.process import host_warning

            click.echo(host_warning(), err=True)
        for result in run_all(box, items, suite, entry_point):
            recorder.execution(result)
            all_passed &= result.verdict is Verdict.PASSED
            if as_json:
                data = result.to_json()
                data["run_id"] = run_id
                click.echo(json.dumps(data))
            else:
                _print_human(result)
    ctx.exit(0 if all_passed else 1)


@sandbox.command()
def clean() -> None:
    """Remove sandbox containers left behind by codeens processes that died."""
    import docker

    from codeens.sandbox.backends.docker import reap_stale

    client = docker.from_env()
    _log(f"removed {reap_stale(client)} stale sandbox container(s)")


def _print_human(result: object) -> None:
    from codeens.sandbox.results import ExecutionResult

    assert isinstance(result, ExecutionResult)
    line = (
        f"{result.verdict.upper():<12} {result.candidate}  "
        f"{result.tests_passed}/{result.tests_total} tests  {result.duration:.2f}s"
    )
    click.echo(line)
    if result.message:
        click.echo(f"    {result.message}")
    for test in result.tests:
        if test.outcome != "passed":
            last = test.message.strip().splitlines()[-1:] or [""]
            click.echo(f"    {test.outcome}: {test.name}: {last[0]}")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter("must be a finite number of seconds")
    return value


def _log(message: str) -> None:
    if os.environ.get("CODEENS_QUIET") != "1":
        click.echo(message, err=True)
