"""`codeens solve` with the embedded default models (llama.cpp) and the Docker sandbox.

No config and no network: the two Qwen2.5-Coder models that ship inside PyPI packages
generate the candidates. The solution is then checked against tests the run never saw.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

HIDDEN = (
    "assert add(123, 877) == 1000\nassert add(-5, -6) == -11\nassert add(2**40, 2**40) == 2**41\n"
)


def test_embedded_models_solve_the_bundled_example(tmp_path: Path, sandbox_image: str) -> None:
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    proc = run_cli("solve", str(problem), "--json", "--samples", "2", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "solved"
    assert {c["model"] for c in data["candidates"]} == {"qwen-coder-0.5b", "qwen-coder-1.5b"}
    assert data["tokens"]["output"] > 0
    with DockerSandbox(Limits(timeout=10), image=sandbox_image) as box:
        result = box.run(Candidate("solution.py", data["solution"]), parse_test_suite(HIDDEN))
    assert result.verdict == "passed", (result.message, result.tests)
