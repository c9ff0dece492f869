"""Repeated calls with the Docker sandbox: a cold pool each call against parked containers.

Three commands a developer repeats in one shell session, each timed as a whole process:

* ``codeens precommit mathy.py`` in a git repository with one stub and its test file (the
  pre-commit hook's command);
* ``codeens solve solo.py``, the same stub with its test in the file;
* ``codeens sandbox run add.py --tests tests.py`` (one candidate).

The suggesting model is a ``replay`` recording (two samples), so generation takes no time
and the sandbox's share shows. Each command runs alternately with ``keep_warm = 0`` (every
call starts its two containers and kills them on exit; the engine removes them) and
``keep_warm = 60`` (a call claims the containers the previous call parked, and parks them
again); one untimed warm call first parks a pool. The table gives the median and every
wall time per mode and the ratio warm over cold; the last line is
``warm_over_cold precommit X solve Y sandbox_run Z``.

Usage: .venv/bin/python benchmarks/warm_pool.py [--reps N] [--out FILE]
(from outside the checkout, so that the installed package is imported).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.precommit import related_tests
from codeens.problem import load_problem
from codeens.prompts import solve_prompt

BIN = Path(sys.executable).parent
STUB = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n    ...\n'
TESTS = "from mathy import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
ANSWER = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
MODES = {"cold": 0, "warm": 60}


def repository(root: Path) -> Path:
    """A git repository with a staged stub, its test, and a replay recording answering
    both the solve prompt (the file alone) and the hook's (with the test file found)."""
    repo = root / "repo"
    (repo / "tests").mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "dev@example.invalid"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "config", "user.name", "dev"], cwd=repo, check=True)
    (repo / "mathy.py").write_text(STUB)
    (repo / "solo.py").write_text(STUB + "\n\n" + TESTS.split("\n\n\n", 1)[1])
    (repo / "tests" / "test_mathy.py").write_text(TESTS)
    (repo / "add.py").write_text(ANSWER.strip("`").removeprefix("python\n"))
    (repo / "tests.py").write_text("assert add(2, 3) == 5\n")
    recording = root / "answers.jsonl"
    path = repo / "mathy.py"
    for problem in (
        load_problem(repo / "solo.py"),
        load_problem(path, related_tests(path, ["add"])),
    ):
        for stub in problem.stubs:
            prompt = solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)
            for seed in range(2):
                record(recording, "recorded", prompt, seed, Completion(ANSWER, 40, 12))
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    return repo


def configure(repo: Path, recording: Path, keep_warm: int) -> None:
    (repo / "codeens.toml").write_text(
        f'samples = 2\n[sandbox]\nbackend = "docker"\nworkers = 2\nkeep_warm = {keep_warm}\n\n'
        f'[[models]]\nname = "recorded"\nbackend = "replay"\nlocation = "{recording}"\n'
    )


def commands(keep_warm: int) -> dict[str, list[str]]:
    codeens = str(BIN / "codeens")
    return {
        "precommit": [codeens, "precommit", "mathy.py", "--quiet"],
        "solve": [codeens, "solve", "solo.py", "--quiet"],
        "sandbox_run": [
            *(codeens, "sandbox", "run", "add.py", "--tests", "tests.py", "--json"),
            *("--workers", "2", "--keep-warm", str(keep_warm)),
        ],
    }


EXPECT = {"precommit": "verified", "solve": "solved", "sandbox_run": '"passed"'}


def timed(name: str, command: list[str], repo: Path) -> float:
    """Wall time of one call, which must have verified the answer."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    wall = time.perf_counter() - started
    if done.returncode != 0 or EXPECT[name] not in done.stdout + done.stderr:
        raise SystemExit(
            f"{name}: exit {done.returncode}: {done.stdout[-1000:]}{done.stderr[-2000:]}"
        )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    subprocess.run([str(BIN / "codeens"), "sandbox", "clean"], capture_output=True)
    with tempfile.TemporaryDirectory(prefix="codeens-warm-") as tmp:
        root = Path(tmp)
        repo = repository(root)
        walls: dict[str, dict[str, list[float]]] = {}
        for name in commands(0):
            walls[name] = {mode: [] for mode in MODES}
            configure(repo, root / "answers.jsonl", MODES["warm"])
            timed(name, commands(MODES["warm"])[name], repo)  # parks a pool, untimed
            for _ in range(args.reps):
                for mode, keep_warm in MODES.items():
                    configure(repo, root / "answers.jsonl", keep_warm)
                    walls[name][mode].append(timed(name, commands(keep_warm)[name], repo))
        subprocess.run([str(BIN / "codeens"), "sandbox", "clean"], capture_output=True)

    say(
        f"{args.reps} repetitions per mode, alternating; docker sandbox, 2 workers, replay "
        "member (2 samples); cold: keep_warm = 0, warm: keep_warm = 60 (the previous call's "
        "containers parked)"
    )
    say(f"{'command':<12} {'cold s':>7} {'warm s':>7} {'saved s':>8} {'warm/cold':>9}  all runs")
    ratios = {}
    for name, modes in walls.items():
        cold, warm = (statistics.median(modes[m]) for m in MODES)
        ratios[name] = warm / cold
        runs = "; ".join(f"{m} " + ", ".join(f"{w:.2f}" for w in modes[m]) for m in MODES)
        say(f"{name:<12} {cold:7.2f} {warm:7.2f} {cold - warm:8.2f} {warm / cold:9.2f}  {runs}")
    say("warm_over_cold " + " ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
