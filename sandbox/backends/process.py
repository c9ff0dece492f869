"""The process backend: the same trusted driver, started as a plain host process.

For machines without Docker. Each candidate gets its own process session, resource limits
(address space, CPU, file size), a fresh temporary work directory and an empty environment,
and a wall-clock deadline enforced here. It is weaker isolation: the candidate can reach the
network and read whatever the user can read. Every result says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from codeens.sandbox.backends.base import (
    Candidate,
    Sandbox,
    driver_input,
    driver_source,
    parse_report,
)
from codeens.sandbox.results import ExecutionResult, Verdict
from codeens.sandbox.testfile import TestSuite

GRACE_S = 2.0


class ProcessSandbox(Sandbox):
    """Run each candidate in a separate process group on the host."""

    name = "process"
    isolation = "process (weaker isolation: no container; network and host files reachable)"

    def run(self, candidate: Candidate, suite: TestSuite) -> ExecutionResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="codeens-run-") as workdir:
            payload = driver_input(
                candidate, suite, self.limits, workdir=workdir, sweep=False, once=True
            )
            env = {"PATH": os.defpath, "HOME": workdir, "LANG": "C.UTF-8", "TMPDIR": workdir}
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-c", driver_source()],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                return self.infra_error(candidate, suite, f"cannot start the driver: {exc}")
            try:
                out, _ = proc.communicate(payload, timeout=self.limits.timeout + GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_session(proc.pid)
                proc.communicate()
                result = parse_report(
                    b"", candidate, suite, self.name, self.isolation, time.monotonic() - started
                )
                result.verdict = Verdict.TIMEOUT
                result.message = "deadline exceeded (enforced by the host)"
                return result
            finally:
                _kill_session(proc.pid)
        return parse_report(
            out, candidate, suite, self.name, self.isolation, time.monotonic() - started
        )


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
