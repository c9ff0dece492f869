"""The warm pool: bounded parallelism and one result per candidate, in the real engine."""

from __future__ import annotations

import threading
import time

import docker
import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import LABEL, DockerSandbox, _owner
from codeens.sandbox.results import Limits
from codeens.sandbox.runner import run_all
from codeens.sandbox.testfile import parse_test_suite
from conftest import eventually

pytestmark = pytest.mark.docker


def test_workers_bound_the_containers_and_every_candidate_gets_a_result(
    sandbox_image: str,
) -> None:
    suite = parse_test_suite("assert slow(3) == 3\n")
    candidates = [
        Candidate(
            f"c{i}.py",
            "import time\ndef slow(x):\n    time.sleep(0.4)\n"
            f"    return x{'' if i % 2 else ' + 1'}\n",
        )
        for i in range(6)
    ]
    seen: list[int] = []
    stop = threading.Event()
    client = docker.from_env()

    owner_filter = {"label": f"{LABEL}.owner={_owner()}"}
    # Other pools of this process (session fixtures) may be alive: count only new ones.
    # One listing call each time (containers.list also inspects each one, and fails when
    # one is removed in between).
    before = {c["Id"] for c in client.api.containers(all=True, filters=owner_filter)}

    def watch() -> None:
        while not stop.is_set():
            mine = client.api.containers(filters=owner_filter)
            seen.append(len({c["Id"] for c in mine} - before))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with DockerSandbox(Limits(timeout=5), workers=3, image=sandbox_image) as box:
            results = list(run_all(box, candidates, suite))
    finally:
        stop.set()
        watcher.join()
    assert sorted(r.candidate for r in results) == sorted(c.label for c in candidates)
    verdicts = {r.candidate: r.verdict for r in results}
    assert [verdicts[f"c{i}.py"] for i in range(6)] == ["failed", "passed"] * 3
    assert max(seen) == 3  # parallel, and never more containers than workers

    def remaining() -> set[str]:
        return {c["Id"] for c in client.api.containers(all=True, filters=owner_filter)}

    # Closing the pool kills its containers; the engine removes them.
    assert eventually(lambda: remaining() == before), remaining() - before
    client.close()


def test_check_style_tests_bind_each_candidate_to_its_entry_point(sandbox_image: str) -> None:
    suite = parse_test_suite(
        "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n"
    )
    with DockerSandbox(Limits(timeout=5), workers=2, image=sandbox_image) as box:
        results = {
            r.candidate: r
            for r in run_all(
                box,
                [
                    Candidate(
                        "square.py",
                        "def helper(x):\n    return x\ndef square(x):\n    return x * x\n",
                    ),
                    Candidate("double.py", "def double(x):\n    return x + x\n"),
                ],
                suite,
            )
        }
    assert results["square.py"].verdict == "passed"
    assert results["double.py"].tests_passed == 1
    assert results["double.py"].tests_total == 2
