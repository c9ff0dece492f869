"""The process backend: same driver and verdicts as docker, weaker isolation, said so."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.confine import interpreter_for, kill_uid, user_tasks
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
from conftest import REPO

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
    # issue 19: reported "memory" before; it is an error that names the signal
    "SIGKILL to itself": (
        "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        "error",
    ),
}


@pytest.fixture(scope="module")
def box() -> ProcessSandbox:
    return ProcessSandbox(Limits(timeout=2.0, memory_mb=256), workers=1)


@pytest.mark.parametrize("name", list(CASES))
def test_process_verdicts(name: str, box: ProcessSandbox) -> None:
    source, verdict = CASES[name]
    result = box.run(Candidate(f"{name}.py", source), parse_test_suite(TESTS))
    assert result.verdict == verdict, (result.message, result.tests)
    if name == "SIGKILL to itself":
        assert "killed by SIGKILL (not at the memory limit)" in result.message
    assert "weaker isolation" in result.isolation
    assert result.backend == "process"


def test_process_backend_keeps_test_messages(box: ProcessSandbox) -> None:
    result = box.run(
        Candidate("c.py", "def add(a, b):\n    return a * b\n"), parse_test_suite(TESTS)
    )
    assert [t.outcome for t in result.tests] == ["failed", "failed"]
    assert "6 == 5 is false" in result.tests[0].message


def test_a_run_the_driver_never_reported_is_a_failure_or_the_hosts_timeout(
    box: ProcessSandbox,
) -> None:
    # What every backend returns when the driver's report is missing: a failure, or when
    # the host's deadline passed first, a timeout the host enforced; timed from the start.
    suite = parse_test_suite(TESTS)
    candidate = Candidate("c.py", CASES["correct"][0])
    started = time.monotonic() - 1.5
    late = box.report(b"", candidate, suite, started, timed_out=True, isolation="held: x")
    assert late.verdict == "timeout"
    assert late.message == "deadline exceeded (enforced by the host)"
    assert (late.backend, late.isolation, late.tests_total) == ("process", "held: x", 2)
    assert 1.5 <= late.duration < 60
    silent = box.report(b"", candidate, suite, started)
    assert silent.verdict == "failed" and "no report from the test driver" in silent.message
    assert silent.isolation == box.isolation


def test_isolation_names_what_the_mode_contains(box: ProcessSandbox) -> None:
    result = box.run(Candidate("c.py", CASES["correct"][0]), parse_test_suite(TESTS))
    assert result.verdict == "passed"
    if os.geteuid() == 0:
        assert "uid 199" in result.isolation and "no network" in result.isolation
    else:
        assert "runs as the invoking user" in result.isolation
        assert "the network" in result.isolation


@pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as another uid needs root")
def testuser_tasks_counts_the_processes_of_a_uid() -> None:
    # the count RLIMIT_NPROC is set from when codeens does not run as root
    uid = 1_989_999  # below the slot range: no sandbox run uses it
    sleepers = [
        subprocess.Popen(["sleep", "30"], user=uid, group=uid, extra_groups=[]) for _ in range(3)
    ]
    try:
        assert user_tasks(uid) == 3
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()
    assert user_tasks(uid) == 0


# Runs ProcessSandbox as an unprivileged user: the checkout's packages are pure standard
# library, so a system Python can import them once codeens.sandbox maps to sandbox/.
AS_USER = """
import json, sys
sys.path.insert(0, {repo!r})
import codeens
codeens.__path__.append({repo!r})
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox, host_warning
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
box = ProcessSandbox(Limits(timeout=3.0, memory_mb=256), workers=1)
result = box.run(Candidate("c.py", sys.stdin.read()), parse_test_suite({tests!r}))
print(json.dumps({{"verdict": result.verdict, "message": result.message,
                  "isolation": result.isolation, "warning": host_warning()}}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming an unprivileged user needs root")
def test_without_root_a_fork_bomb_meets_the_process_limit() -> None:
    # bigcode-evaluation-harness evil programs (fork bomb), run by a user that is not root
    uid = 1_989_997  # below the slot range: no sandbox run uses it
    python = interpreter_for(uid)
    if python is None:
        pytest.skip("no Python interpreter an unprivileged user can run")
    bomb = "import os\ndef add(a, b):\n    while True:\n        os.fork()\n"
    try:
        done = subprocess.run(
            [python, "-I", "-c", AS_USER.format(repo=str(REPO), tests=TESTS)],
            input=bomb, capture_output=True, text=True, user=uid, group=uid,
            extra_groups=[], cwd="/", env={"PATH": os.defpath}, timeout=60, check=False,
        )  # fmt: skip
    finally:
        kill_uid(uid)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "failed", report
    assert "process limit reached" in report["message"]
    assert "runs as the invoking user" in report["isolation"]
    assert "not contained: the user's files, the network, /tmp" in report["isolation"]
    assert "not running as root" in report["warning"]
