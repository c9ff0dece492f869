"""Split verdicts in real containers: expected values never enter the candidate's process.

Every split-able shape is run with an honest candidate (passes), a wrong one (fails), and
candidates that read the expected value by frame walking, inspect.stack(), code-object
constants, the garbage collector or the test file on disk (fail). The same attacks forge
passes on the in-process path, which shows that they are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from split_attacks import ATTACKS, HONEST, SHAPES, WRONG, attack

from codeens.sandbox import testfile
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Store
from conftest import run_cli

pytestmark = pytest.mark.docker


def _suite(shape: str) -> testfile.TestSuite:
    tests, entry = SHAPES[shape]
    suite = parse_test_suite(tests)
    return suite.for_entry_point(entry) if entry else suite


def _run(box: DockerSandbox, source: str, suite: testfile.TestSuite) -> ExecutionResult:
    return box.run(Candidate("candidate.py", source), suite)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_is_split(shape: str) -> None:
    assert {c.isolation for c in _suite(shape).cases} == {"split"}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_honest_passes_and_wrong_fails(shape: str, docker_box: DockerSandbox) -> None:
    suite = _suite(shape)
    honest = _run(docker_box, HONEST, suite)
    assert honest.verdict == "passed", honest.tests
    assert [t.isolation for t in honest.tests] == ["split"] * len(suite.cases)
    wrong = _run(docker_box, WRONG, suite)
    assert wrong.verdict == "failed", wrong.tests
    assert wrong.tests_passed == 0


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_reading_the_expected_value_fails(shape: str, name: str, docker_box: DockerSandbox) -> None:
    result = _run(docker_box, attack(name), _suite(shape))
    assert result.verdict == "failed", (result.message, result.tests)
    assert result.tests_passed == 0


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "test file on disk"])
def test_the_attacks_forge_passes_in_process(name: str, docker_box: DockerSandbox) -> None:
    """Control: with the expected values in its process, each attack passes some shapes."""
    forged = [
        shape
        for shape in SHAPES
        if _run(docker_box, attack(name), _suite(shape).in_process()).verdict == "passed"
    ]
    assert forged, f"{name} forged nothing in-process"


def test_unsplittable_tests_stay_in_process_and_say_so(docker_box: DockerSandbox) -> None:
    tests = (
        "assert f(3) == 22 or f(3) == 23\n"
        "def test_loop():\n    for x, y in [(3, 22), (4, 29)]:\n        assert f(x) == y\n"
        "assert f(3) == 22\n"
    )
    suite = parse_test_suite(tests)
    assert [c.isolation for c in suite.cases] == ["in-process", "in-process", "split"]
    result = _run(docker_box, HONEST, suite)
    assert result.verdict == "passed"
    assert [t.isolation for t in result.tests] == ["in-process", "in-process", "split"]
    forged = _run(docker_box, attack("frame walking"), suite)
    assert [t.outcome for t in forged.tests] == ["passed", "passed", "failed"]


def test_mutation_checks_compare_the_argument_after_the_call(docker_box: DockerSandbox) -> None:
    tests = (
        "def test_sort():\n    data = [3, 1, 2]\n    sort_in_place(data)\n"
        "    assert data == [1, 2, 3]\n"
    )
    suite = parse_test_suite(tests)
    assert suite.cases[0].isolation == "split"
    good = "def sort_in_place(xs):\n    xs.sort()\n"
    bad = "def sort_in_place(xs):\n    return sorted(xs)\n"
    assert _run(docker_box, good, suite).verdict == "passed"
    assert _run(docker_box, bad, suite).verdict == "failed"


def test_a_pass_claimed_by_the_candidate_process_is_refused(docker_box: DockerSandbox) -> None:
    """Only the driver passes a split test: a forged "passed" report with the right token
    (read from the child's own memory) is a violation."""
    forger = (
        "import gc, json, os, sys\n"
        "def f(x):\n"
        "    for obj in gc.get_objects():\n"
        "        if type(obj) is dict and obj.get('k') == 'test' and 'tok' in obj:\n"
        "            line = json.dumps({'k': 'test', 'i': obj['i'], 'tok': obj['tok'],"
        " 'outcome': 'passed'}) + '\\n'\n"
        "            for fd in range(3, 32):\n"
        "                try:\n"
        "                    os.write(fd, line.encode())\n"
        "                except OSError:\n"
        "                    pass\n"
        "    return -1\n"
    )
    result = _run(docker_box, forger, _suite("mbpp assert"))
    assert result.verdict == "failed"
    assert result.tests_passed == 0


def test_isolation_is_reported_and_recorded(
    tmp_path: Path, isolated_db: Path, sandbox_image: str
) -> None:
    """`codeens sandbox run --json` shows each test's isolation, and the log keeps it."""
    tests = tmp_path / "tests.py"
    tests.write_text("assert f(3) == 22\nassert f(3) == 22 or f(3) == 0\n")
    candidate = tmp_path / "f.py"
    candidate.write_text(HONEST)
    done = run_cli("sandbox", "run", str(candidate), "--tests", str(tests), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = [t["isolation"] for t in json.loads(done.stdout)["tests"]]
    assert shown == ["split", "in-process"]
    (row,) = Store(isolated_db).executions(limit=None)
    assert [t["isolation"] for t in json.loads(row.tests_json)] == ["split", "in-process"]
