"""The same eval slice run serially and on Ray, side by side, on this machine.

Members are replay models (recorded answers: ``good`` gives HumanEval's canonical solution,
``bad`` a function returning None), so the work per problem is the pipeline itself: the
sample pass from the recordings, two strategies, the visible and hidden executions in the
real Docker sandbox. Three modes, alternating, ``--reps`` times each:

* serial: ``codeens eval`` as usual;
* ray-local: ``--ray`` alone, a local Ray instance started (and stopped) by the run;
* ray-cluster: ``--ray ADDRESS``, a head node started once by this script (``ray start``),
  so cluster start-up is not counted.

It prints wall time, seconds per problem, what the run's own ``ray:`` line reports (time
inside the tasks and overhead per task) and whether the results equal the serial run's.
On two cores no speed-up is expected: the point is that the results are the same and what
a task costs.

Usage: .venv/bin/python benchmarks/eval_ray.py [--limit 20] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from codeens.evals import runner
from codeens.evals.benchmarks import BENCHMARKS, select
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.prompts import solve_prompt

BIN = Path(sys.executable).parent


def recordings(root: Path, limit: int, samples: int) -> Path:
    """Replay recordings answering every prompt of the slice, and a config naming them."""
    path = root / "recording.jsonl"
    problems = select(BENCHMARKS.get("humaneval")().load("test", None), limit=limit)
    for item in problems:
        problem = runner.as_problem(item, "humaneval")
        stub = problem.stubs[0]
        prompt = solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)
        answers = {
            "good": item.canonical,
            "bad": f"def {item.entry_point}(*args):\n    return None\n",
        }
        for name, code in answers.items():
            for seed in range(samples):
                completion = Completion(f"```python\n{code}```\n", 100, 10 + seed)
                record(path, name, prompt, seed, completion)
    config = root / "codeens.toml"
    lines = ["[sandbox]\nworkers = 2\n"]
    for price, name in enumerate(("good", "bad"), start=1):
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\nlocation = "{path}"\n'
            f"price_output_per_mtok = {price}.0\n"
        )
    config.write_text("\n".join(lines))
    return config


def run(root: Path, config: Path, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    db = root / f"run-{time.monotonic_ns()}.db"
    command = [str(BIN / "codeens"), "eval", *args, "--config", str(config), "--db", str(db)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    stats = re.search(r"([\d.]+) s inside tasks.*?(\d+) ms overhead per task", done.stderr)
    return {
        "wall": wall,
        "summary": json.loads(done.stdout),
        "inside": float(stats.group(1)) if stats else None,
        "overhead_ms": int(stats.group(2)) if stats else None,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20, help="The first N HumanEval problems.")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="codeens-eval-ray-"))
    config = recordings(root, options.limit, options.samples)
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    cluster_env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    port = free_port()
    address = f"127.0.0.1:{port}"
    subprocess.run(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={root / 'ray'}"],
        env=cluster_env, check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    base = ["humaneval", "--limit", str(options.limit), "--samples", str(options.samples)]
    base += ["--strategies", "majority,cascade"]
    modes = {
        "serial": (base, env),
        "ray-local": ([*base, "--ray"], env),
        "ray-cluster": ([*base, "--ray", address], cluster_env),
    }
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        for rep in range(options.reps):
            for mode, (args, mode_env) in modes.items():
                results[mode].append(run(root, config, args, mode_env))
                print(f"rep {rep + 1} {mode}: {results[mode][-1]['wall']:.1f} s", file=sys.stderr)
    finally:
        subprocess.run(
            [str(BIN / "ray"), "stop", "--force"], env=cluster_env, capture_output=True, check=False
        )
    reference = results["serial"][0]["summary"]
    print(
        f"HumanEval first {options.limit}, {options.samples} samples x 2 replay members, "
        f"strategies majority,cascade, docker sandbox, {os.cpu_count()} CPUs, "
        f"{options.reps} reps alternating (medians)"
    )
    print(
        f"{'mode':<12} {'wall s':>7} {'s/problem':>9} {'in tasks s':>10} "
        f"{'overhead ms/task':>16} {'ratio':>6}  same results"
    )
    serial_wall = statistics.median(r["wall"] for r in results["serial"])
    for mode, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        inside = [r["inside"] for r in runs if r["inside"] is not None]
        overhead = [r["overhead_ms"] for r in runs if r["overhead_ms"] is not None]
        same = all(
            r["summary"]["per_task"] == reference["per_task"]
            and all(
                r["summary"][k][n]["pass@1"] == reference[k][n]["pass@1"]
                for k in ("models", "strategies")
                for n in reference[k]
            )
            for r in runs
        )
        print(
            f"{mode:<12} {wall:>7.1f} {wall / options.limit:>9.2f} "
            f"{statistics.median(inside) if inside else float('nan'):>10.1f} "
            f"{statistics.median(overhead) if overhead else float('nan'):>16.0f} "
            f"{wall / serial_wall:>6.2f}  {'yes' if same else 'NO'}"
        )


if __name__ == "__main__":
    main()
