"""Peers' hostile programs (the hostile suite's cases with a named source) on the process
backend as root, next to docker's verdicts.

Where the process backend ends differently, the difference is listed here with its reason
and asserted as it is, so a change either way shows up; the README's table of guarantees
names the same limits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hostile_cases import CASES as OWN_CASES
from hostile_cases import Case
from hostile_peers import PEER_CASES

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite

CASES = OWN_CASES + PEER_CASES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the contained mode needs root")

# case name -> (verdicts on the process backend, why it differs from docker)
DIFFERS = {
    "os.system rm -rf /": (
        ("passed", "timeout"),
        "the slot uid may walk the whole host file system (it deletes nothing it does not "
        "own), which can outlast the deadline on a loaded machine",
    ),
    "shutil.rmtree and os.remove on the image": (
        ("passed", "timeout"),
        "the slot uid walks the host's whole /usr/lib (deleting nothing it does not own), "
        "which can outlast the deadline on a loaded machine; CI saw it time out once",
    ),
    "a user namespace to regain capabilities": (
        ("failed",),
        "no seccomp filter: unshare(CLONE_NEWUSER) succeeds (capabilities inside the new "
        "namespace only, none over host resources)",
    ),
    "locked directories, odd names and special files left behind": (
        ("error",),
        "the case writes to /work, the docker work area; the host has no such directory",
    ),
    "nothing hidden by the previous runs": (
        ("failed",),
        "world-readable host files are readable: the probe walks the host's /work and finds "
        "this repository's copy of the marker",
    ),
    "no process or file from the peers' programs": (
        ("failed",),
        "the probe expects docker's process list and work areas",
    ),
}

PEERS = [case for case in CASES if case.source != "codeens"]


@pytest.fixture(scope="module")
def box() -> Iterator[ProcessSandbox]:
    sandbox = ProcessSandbox(Limits(timeout=3.0, memory_mb=256), workers=1)
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("case", PEERS, ids=[c.name for c in PEERS])
def test_peer_program_on_the_process_backend(case: Case, box: ProcessSandbox) -> None:
    candidate = case.candidate.replace("HOSTPORT", "127.0.0.1:9").replace("HOSTFILE", "/etc/shadow")
    result = box.run(Candidate("candidate.py", candidate), parse_test_suite(case.tests))
    verdicts = DIFFERS.get(case.name, ((case.verdict,), ""))[0]
    assert result.verdict in verdicts, (result.verdict, result.message, result.tests)
    if case.name not in DIFFERS:
        assert case.message in result.message, result.message


def test_every_difference_is_a_peer_case() -> None:
    assert set(DIFFERS) <= {c.name for c in PEERS}
