"""MBPP (974 problems; the sanitized subset has 427): the copy shipped in ``data/mbpp``
(unmodified upstream files, CC BY 4.0), another local copy, or the ``datasets`` hub.

Convention: the stub is the canonical solution's signature (the function the first assert
calls) with the task text as its docstring. Visible: the first assert of ``test_list``, with
the task's setup code and imports. Hidden: every assert of ``test_list`` (the first one
included, as in the usual MBPP scoring); ``challenge_test_list`` is not used.

Splits of the full set follow the paper's task-id ranges: prompt 1-10, test 11-510,
validation 511-600, train 601-974. ``sanitized`` is the whole 427-problem subset.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

from codeens.errors import first_line
from codeens.evals.benchmarks import Benchmark, BenchmarkError, BenchmarkProblem, docstring_literal

RANGES = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
DATA_ENV = "CODEENS_MBPP_DATA"
FULL_FILE = "mbpp.jsonl"
SANITIZED_FILE = "sanitized-mbpp.json"


class MBPP(Benchmark):
    name = "mbpp"
    splits = ("test", "validation", "train", "prompt", "full", "sanitized")
    default_split = "test"
    visible_rule = "first assert visible; every assert of test_list hidden"

    def load(self, split: str, data: Path | None = None) -> list[BenchmarkProblem]:
        self.check_split(split)
        records = read_records(split == "sanitized", data)
        if split in RANGES:
            low, high = RANGES[split]
            records = [r for r in records if low <= int(r["task_id"]) <= high]
        try:
            return [to_problem(r) for r in records]
        except (KeyError, IndexError) as exc:
            raise BenchmarkError(f"MBPP data: a record lacks {exc}") from exc


BUNDLED = Path(__file__).resolve().parent / "data" / "mbpp"
HUB = "hub"


def read_records(sanitized: bool, data: Path | None) -> list[dict[str, Any]]:
    """The records from ``data`` (a folder or file; ``hub`` for the datasets library),
    else ``$CODEENS_MBPP_DATA``, else the copy shipped in this package."""
    where = data or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else BUNDLED)
    if str(where) == HUB:
        return _from_hub(sanitized)
    path = where / (SANITIZED_FILE if sanitized else FULL_FILE) if where.is_dir() else where
    if not path.is_file():
        raise BenchmarkError(f"MBPP data {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            records: list[dict[str, Any]] = json.loads(text)
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"MBPP data {path}: cannot read ({exc})") from exc
    return sorted(records, key=lambda r: int(r["task_id"]))


def _from_hub(sanitized: bool) -> list[dict[str, Any]]:
    try:
        import datasets  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise BenchmarkError(
            "MBPP: --data hub needs the datasets package; leave --data out to use the "
            "copy shipped with codeens"
        ) from exc
    try:
        loaded = datasets.load_dataset("mbpp", "sanitized" if sanitized else "full")
    except Exception as exc:  # any hub failure (offline, missing) is one line
        raise BenchmarkError(f"MBPP from the datasets hub: {first_line(exc)}") from exc
    rows = [dict(row) for part in loaded.values() for row in part]
    return sorted(rows, key=lambda r: int(r["task_id"]))


def to_problem(record: dict[str, Any]) -> BenchmarkProblem:
    tests: list[str] = [t.replace("\r\n", "\n").strip() for t in record["test_list"]]
    code = record["code"].replace("\r\n", "\n")
    setup = (record.get("test_setup_code") or "").replace("\r\n", "\n").strip()
    imports = "\n".join(record.get("test_imports") or [])
    text = record.get("text") or record.get("prompt") or ""
    name, params = signature(code, tests[0])
    preamble = "\n".join(p for p in (imports, setup) if p)
    stub = f"def {name}({params}):\n{docstring_literal(text)}"
    if preamble:
        body = "\n".join("    " + line for line in f"{preamble}\n{tests[0]}".splitlines())
        visible = f"def test_example():\n{body}\n"
    else:
        visible = tests[0] + "\n"
    hidden = "\n".join(p for p in (preamble, *tests) if p) + "\n"
    return BenchmarkProblem(
        task_id=str(record["task_id"]),
        entry_point=name,
        source=f"{stub}\n\n{visible}",
        hidden_tests=hidden,
        canonical=code.strip() + "\n",
    )


def signature(code: str, first_test: str) -> tuple[str, str]:
    """The tested function's name and parameter list, from the canonical code when it
    defines that function, else from the call in the test (``arg0, arg1, ...``)."""
    call = _first_call(first_test, code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == call[0]:
            return node.name, ast.unparse(node.args)
    return call[0], ", ".join(f"arg{i}" for i in range(call[1]))


def _first_call(test: str, code: str) -> tuple[str, int]:
    try:
        defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
    except SyntaxError:
        defined = set()
    calls = [
        node
        for node in ast.walk(ast.parse(test))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    for node in calls:
        assert isinstance(node.func, ast.Name)
        if node.func.id in defined:
            return node.func.id, len(node.args)
    for node in calls:  # a builtin wrapper such as set(f(x)): the innermost user call
        assert isinstance(node.func, ast.Name)
        if node.func.id not in dir(__builtins__) and node.func.id not in {"set", "sorted"}:
            return node.func.id, len(node.args)
    raise BenchmarkError(f"MBPP: cannot tell which function this test calls: {test[:80]}")
