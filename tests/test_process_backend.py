"""The process backend: same driver and verdicts as docker, weaker isolation, said so."""

from __future__ import annotations

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite

TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
CASES = {
    "correct": ("def add(a, b):\n    return a + b\n", "passed"),
    "wrong": ("def add(a, b):\n    return a - b\n", "failed"),
    "import error": ("import no_such_module_xyz\n", "error"),
    "infinite loop": ("def add(a, b):\n    while True:\n        pass\n", "timeout"),
    "memory bomb": (
        "def add(a, b):\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 24))\n",
        "memory",
    ),
    "flood": (
        "import sys\ndef add(a, b):\n    while True:\n        sys.stdout.write('x' * 4096)\n",
        "output_limit",
    ),
    "sys.exit before asserts": ("import sys\ndef add(a, b):\n    sys.exit(0)\n", "failed"),
    "os._exit at import": ("import os\nos._exit(0)\n", "failed"),
    "always equal": (
        "class A:\n    __eq__ = lambda s, o: True\ndef add(a, b):\n    return A()\n",
        "failed",
    ),
    "printed PASSED": ("print('PASSED')\ndef add(a, b):\n    return 0\n", "failed"),
}


@pytest.fixture(scope="module")
def box() -> ProcessSandbox:
    return ProcessSandbox(Limits(timeout=2.0, memory_mb=256), workers=1)


@pytest.mark.parametrize("name", list(CASES))
def test_process_verdicts(name: str, box: ProcessSandbox) -> None:
    source, verdict = CASES[name]
    result = box.run(Candidate(f"{name}.py", source), parse_test_suite(TESTS))
    assert result.verdict == verdict, (result.message, result.tests)
    assert "weaker isolation" in result.isolation
    assert result.backend == "process"


def test_process_backend_keeps_test_messages(box: ProcessSandbox) -> None:
    result = box.run(
        Candidate("c.py", "def add(a, b):\n    return a * b\n"), parse_test_suite(TESTS)
    )
    assert [t.outcome for t in result.tests] == ["failed", "failed"]
    assert "6 == 5 is false" in result.tests[0].message
