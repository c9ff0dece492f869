"""The pre-commit hook: real git repositories, the real `pre-commit` tool, the real sandbox.

The suggesting model is a `replay` recording named in the repository's codeens.toml, so the
suggestion is deterministic; everything else (test discovery, the Docker sandbox, the log,
pre-commit's own install of this checkout) is real.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.precommit import related_tests
from codeens.problem import load_problem
from codeens.prompts import solve_prompt
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker

STUBBED = '''def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    ...


def untested(n: int) -> int:
    """Return n squared."""
    raise NotImplementedError


def done() -> int:
    return 1
'''
TESTS = (
    "from mathy import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    "    assert add(-1, 1) == 0\n"
)
ANSWERS = {
    "add": "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```",
    "untested": "```python\ndef untested(n):\n    return n * n\n```",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a staged stub file, its test, a clean file, and a config."""
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "dev@example.invalid")
    _git(root, "config", "user.name", "dev")
    (root / "mathy.py").write_text(STUBBED)
    (root / "tests" / "test_mathy.py").write_text(TESTS)
    (root / "clean.py").write_text("def double(x):\n    return 2 * x\n")
    recording = tmp_path / "answers.jsonl"
    problem = load_problem(root / "mathy.py")
    problem = load_problem(root / "mathy.py", related_tests(root / "mathy.py", ["add"]))
    for stub in problem.stubs:
        prompt = solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)
        for seed in range(2):
            record(recording, "recorded", prompt, seed, Completion(ANSWERS[stub.name], 40, 12))
    (root / "codeens.toml").write_text(
        "samples = 2\n[sandbox]\ntimeout = 5\n\n"
        f'[[models]]\nname = "recorded"\nbackend = "replay"\nlocation = "{recording}"\n'
    )
    _git(root, "add", ".")
    return root


def test_the_tests_of_the_repository_are_found(repo: Path) -> None:
    (repo / "tests" / "test_unrelated.py").write_text("def test_x():\n    assert 1 == 1\n")
    (repo / "tests" / "test_calls.py").write_text("def test_y():\n    assert add(1, 1) == 2\n")
    found = {p.name for p in related_tests(repo / "mathy.py", ["add"])}
    assert found == {"test_mathy.py", "test_calls.py"}
    problem = load_problem(repo / "mathy.py", related_tests(repo / "mathy.py", ["add"]))
    assert "assert add(2, 3) == 5" in problem.tests_for("add")
    assert problem.tests_for("untested").strip() == ""


def test_a_verified_diff_is_printed_and_nothing_changes(repo: Path) -> None:
    proc = run_cli("precommit", "mathy.py", "clean.py", "--quiet", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "codeens: mathy.py: add: verified suggestion (1/1 tests, recorded)" in proc.stdout
    assert "UNVERIFIED suggestion (no tests found" in proc.stdout
    assert "+    return a + b" in proc.stdout and "-    ..." in proc.stdout
    assert (repo / "mathy.py").read_text() == STUBBED
    db = Path(os.environ["CODEENS_DB"])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT kind, status FROM runs").fetchall() == [
            ("precommit", "unverified")
        ]
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 4


def test_write_applies_only_verified_suggestions_and_exits_1(repo: Path) -> None:
    proc = run_cli("precommit", "--write", "mathy.py", "--quiet", cwd=repo)
    assert proc.returncode == 1, proc.stderr
    assert "codeens: wrote add into mathy.py" in proc.stdout
    written = (repo / "mathy.py").read_text()
    assert "    return a + b\n" in written
    # The untested stub was suggested but never written.
    assert "raise NotImplementedError" in written and "n * n" not in written


def test_files_without_stubs_load_no_model(repo: Path) -> None:
    code = (
        "import sys\nfrom codeens.cli import main\n"
        "try:\n    main(['precommit', 'clean.py', 'missing.txt'])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "heavy = [m for m in ('llama_cpp', 'torch', 'docker', 'codeens.solve') "
        "if m in sys.modules]\nprint(code, heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "0 []"


# pre-commit builds its own environment for the hook: this checkout and all its
# dependencies (the model packages, torch from the local wheel, llama.cpp from the cache).
@pytest.mark.timeout(1800)
def test_pre_commit_try_repo_runs_the_hook(repo: Path, tmp_path: Path) -> None:
    """The real pre-commit installs this checkout as the hook and runs it on staged files."""
    links = " ".join(
        filter(
            None,
            [
                os.environ.get("PIP_FIND_LINKS", ""),
                os.environ.get(
                    "CODEENS_WHEEL_CACHE", str(Path.home() / ".cache" / "codeens" / "wheels")
                ),
            ],
        )
    )
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"), "PIP_FIND_LINKS": links}
    pre_commit = Path(sys.executable).parent / "pre-commit"
    proc = subprocess.run(
        [str(pre_commit), "try-repo", str(REPO), "codeens-suggest", "--verbose",
         "--files", "mathy.py", "clean.py"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "codeens: mathy.py: add: verified suggestion (1/1 tests, recorded)" in output
    assert "+    return a + b" in output
    assert (repo / "mathy.py").read_text() == STUBBED
    assert "codeens suggest implementations for stubs" in output and "Passed" in output
