"""Shared fixtures: a real Docker engine, the real sandbox image, real SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.image import DEFAULT_IMAGE, build_image
from codeens.sandbox.results import ExecutionResult, Limits
from codeens.sandbox.testfile import parse_test_suite

CODEENS = Path(sys.executable).parent / "codeens"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test logs to its own SQLite file, never the user's."""
    path = tmp_path / "codeens.db"
    monkeypatch.setenv("CODEENS_DB", str(path))
    return path


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The real sandbox image; built once if missing. No engine is a failure, not a skip."""
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail("no Docker engine answers: run `bash scripts/bootstrap.sh test`")
    build_image(DEFAULT_IMAGE, log=lambda _line: None)
    return DEFAULT_IMAGE


@pytest.fixture(scope="session")
def docker_box(sandbox_image: str) -> Iterator[DockerSandbox]:
    """One warm container shared by the hostile suite, so leftovers would show up."""
    box = DockerSandbox(Limits(timeout=3.0, memory_mb=256), workers=1, image=sandbox_image)
    warm = run_box(box, "def f():\n    return 1\n", "assert f() == 1\n")
    assert warm.verdict == "passed", warm
    yield box
    box.close()


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Whether ``check`` holds within ``seconds``: a closed pool's containers are killed
    at once and then removed by the engine (``auto_remove``), a moment later."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def run_box(box: DockerSandbox, candidate: str, tests: str) -> ExecutionResult:
    return box.run(Candidate("candidate.py", candidate), parse_test_suite(tests))


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``codeens`` executable for real, outside the checkout."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [str(CODEENS), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
