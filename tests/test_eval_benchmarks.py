"""HumanEval and MBPP loaders: counts, splits, the stub, and what stays hidden."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from codeens.evals.benchmarks import BENCHMARKS, BenchmarkError, select
from codeens.evals.mbpp import BUNDLED, DATA_ENV
from codeens.evals.runner import as_problem
from conftest import run_cli
from eval_fixtures import MBPP_DATA, SHARED_MBPP


def _asserts(source: str) -> set[str]:
    return {ast.unparse(n) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assert)}


def test_humaneval_has_164_problems_each_a_codeens_problem() -> None:
    problems = BENCHMARKS.get("humaneval")().load("test")
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[-1].task_id == "HumanEval/163"
    with_visible = 0
    for item in problems:
        problem = as_problem(item, "humaneval")
        assert [s.name for s in problem.stubs] == [item.entry_point]
        assert "def check(" not in item.source and "METADATA" not in item.source
        with_visible += bool(problem.tests_for(item.entry_point))
    assert with_visible >= 130, "doctests and prose examples give most problems visible tests"


def test_humaneval_visible_tests_are_the_docstring_examples() -> None:
    problems = {p.task_id: p for p in BENCHMARKS.get("humaneval")().load("test")}
    doctest_style = as_problem(problems["HumanEval/0"], "humaneval")
    assert _asserts(doctest_style.tests_for("has_close_elements")) == {
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) is False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) is True",
    }
    prose_style = as_problem(problems["HumanEval/117"], "humaneval")
    assert "assert select_words('simple white space', 2) == []" in _asserts(
        prose_style.tests_for("select_words")
    )
    moved_import = as_problem(problems["HumanEval/115"], "humaneval")
    assert moved_import.source.startswith("import math\n")


@pytest.mark.parametrize(
    ("split", "count", "first", "last"),
    [
        ("full", 974, "1", "974"),
        ("prompt", 10, "1", "10"),
        ("test", 500, "11", "510"),
        ("validation", 90, "511", "600"),
        ("train", 374, "601", "974"),
        ("sanitized", 427, "2", "809"),
    ],
)
def test_mbpp_splits(split: str, count: int, first: str, last: str) -> None:
    problems = BENCHMARKS.get("mbpp")().load(split, MBPP_DATA)
    assert len(problems) == count
    assert (problems[0].task_id, problems[-1].task_id) == (first, last)


def test_mbpp_shows_the_first_assert_and_hides_the_rest() -> None:
    for split in ("full", "sanitized"):
        for item in BENCHMARKS.get("mbpp")().load(split, MBPP_DATA):
            problem = as_problem(item, "mbpp")
            visible = _asserts(problem.tests_for(item.entry_point))
            hidden = _asserts(item.hidden_tests)
            assert len(visible) == 1 and visible <= hidden, item.task_id
            for test in hidden - visible:
                assert test not in _asserts(item.source), item.task_id


def test_mbpp_stub_takes_the_canonical_signature() -> None:
    problems = select(BENCHMARKS.get("mbpp")().load("test", MBPP_DATA), ids=["11"])
    problem = as_problem(problems[0], "mbpp")
    assert problem.stubs[0].signature == "def remove_Occ(s, ch):"
    assert "first and last occurrence" in problem.stubs[0].docstring


def test_mbpp_data_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(MBPP_DATA))
    assert len(BENCHMARKS.get("mbpp")().load("prompt")) == 10
    monkeypatch.setenv(DATA_ENV, str(MBPP_DATA / "nothing-here.jsonl"))
    with pytest.raises(BenchmarkError, match="no such file"):
        BENCHMARKS.get("mbpp")().load("test")


def test_selection_by_id_and_limit() -> None:
    problems = BENCHMARKS.get("humaneval")().load("test")
    assert [p.task_id for p in select(problems, limit=3)] == [f"HumanEval/{i}" for i in range(3)]
    chosen = select(problems, ids=["HumanEval/7", "2"])
    assert [p.task_id for p in chosen] == ["HumanEval/7", "HumanEval/2"]
    with pytest.raises(BenchmarkError, match="HumanEval/999"):
        select(problems, ids=["HumanEval/999"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "mbpp", "--data", "/nonexistent/mbpp"], "no such file"),
        (["eval", "humaneval", "--split", "train"], "no split 'train'"),
        (["eval", "nobench"], "nobench"),
        (["eval", "humaneval", "--problems", "HumanEval/999"], "HumanEval/999"),
        (["eval", "humaneval", "--strategies", "nostrategy"], "nostrategy"),
        (["eval", "humaneval", "--models", "nomodel"], "nomodel"),
        (["eval", "humaneval", "--limit", "2", "--problems", "1"], "not both"),
        (["eval", "--resume", "feedbeef"], "no eval run"),
        (["eval"], "BENCHMARK"),
    ],
)
def test_bad_eval_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_cli(*args, cwd=tmp_path, env={DATA_ENV: ""})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "digest"),
    [
        ("mbpp.jsonl", "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f"),
        ("sanitized-mbpp.json", "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9"),
    ],
)
def test_the_shipped_mbpp_is_the_upstream_file(name: str, digest: str) -> None:
    assert hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest() == digest
    if SHARED_MBPP.is_dir():
        assert (BUNDLED / name).read_bytes() == (SHARED_MBPP / name).read_bytes()


def test_mbpp_defaults_to_the_shipped_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert len(BENCHMARKS.get("mbpp")().load("test")) == 500
