"""The real ``codeens`` executable: bad input, help, and the shipped example end to end."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Execution, Store
from conftest import REPO, run_cli

EXAMPLES = REPO / "examples" / "sandbox"
GOOD = EXAMPLES / "candidate_good.py"
BAD = EXAMPLES / "candidate_bad.py"
TESTS = EXAMPLES / "test_add.py"
OK_CANDIDATE = "def add(a, b):\n    return a + b\n"
OK_TESTS = "def test_add():\n    assert add(1, 2) == 3\n"
RESULT_KEYS = {
    "candidate",
    "verdict",
    "tests_total",
    "tests_passed",
    "tests",
    "duration",
    "exit_status",
    "resources",
}
TEST_KEYS = {"name", "outcome", "message", "duration", "isolation", "limit"}


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


# Each builder writes its files under the folder it gets and returns (args, word): the
# arguments after ``sandbox run`` and a word the one error line must contain.
Builder = Callable[[Path], tuple[list[str], str]]


def _bad_candidate(name: str, data: str | bytes) -> Builder:
    def build(d: Path) -> tuple[list[str], str]:
        cand = _write(d / name, data)
        tests = _write(d / "tests_ok.py", OK_TESTS)
        return [str(cand), "--tests", str(tests)], name

    return build


def _missing_candidate(d: Path) -> tuple[list[str], str]:
    tests = _write(d / "tests_ok.py", OK_TESTS)
    return [str(d / "ghost_candidate.py"), "--tests", str(tests)], "ghost_candidate.py"


def _directory_candidate(d: Path) -> tuple[list[str], str]:
    folder = d / "a_folder"
    folder.mkdir()
    tests = _write(d / "tests_ok.py", OK_TESTS)
    return [str(folder), "--tests", str(tests)], "a_folder"


def _one_bad_among_good(d: Path) -> tuple[list[str], str]:
    good = _write(d / "fine.py", OK_CANDIDATE)
    broken = _write(d / "broken_second.py", "def add(a, b:\n    return a + b\n")
    tests = _write(d / "tests_ok.py", OK_TESTS)
    return [str(good), str(broken), "--tests", str(tests)], "broken_second.py"


def _bad_tests(name: str, data: str | bytes) -> Builder:
    def build(d: Path) -> tuple[list[str], str]:
        cand = _write(d / "cand.py", OK_CANDIDATE)
        tests = _write(d / name, data)
        return [str(cand), "--tests", str(tests)], name

    return build


def _missing_tests_file(d: Path) -> tuple[list[str], str]:
    cand = _write(d / "cand.py", OK_CANDIDATE)
    return [str(cand), "--tests", str(d / "ghost_tests.py")], "ghost_tests.py"


def _with_options(*options: str, word: str) -> Builder:
    def build(d: Path) -> tuple[list[str], str]:
        cand = _write(d / "cand.py", OK_CANDIDATE)
        tests = _write(d / "tests_ok.py", OK_TESTS)
        return [str(cand), "--tests", str(tests), *options], word

    return build


def _no_tests_option(d: Path) -> tuple[list[str], str]:
    cand = _write(d / "cand.py", OK_CANDIDATE)
    return [str(cand)], "--tests"


def _no_candidates(d: Path) -> tuple[list[str], str]:
    tests = _write(d / "tests_ok.py", OK_TESTS)
    return ["--tests", str(tests)], "CANDIDATES"


def _check_without_function(d: Path) -> tuple[list[str], str]:
    cand = _write(d / "no_function.py", "VALUE = 3\n")
    tests = _write(d / "he.py", "def check(candidate):\n    assert candidate(1) == 2\n")
    return [str(cand), "--tests", str(tests)], "no_function.py"


DEEP = "x = " + "-" * 100_000 + "1\n"

BAD_INPUTS: dict[str, Builder] = {
    "missing-candidate": _missing_candidate,
    "candidate-is-a-directory": _directory_candidate,
    "empty-candidate": _bad_candidate("empty_cand.py", ""),
    "blank-candidate": _bad_candidate("blank_cand.py", "  \n\n\t\n"),
    "binary-candidate": _bad_candidate("binary_cand.py", b"def add(a, b):\x00\n    return 1\n"),
    "syntax-error-candidate": _bad_candidate("syntax_cand.py", "def add(a, b:\n    return a\n"),
    "non-utf8-candidate": _bad_candidate("latin1_cand.py", b"s = 'caf\xe9'\ndef add(a, b): ...\n"),
    "one-bad-among-good": _one_bad_among_good,
    "tests-without-tests": _bad_tests("no_tests_here.py", "import math\nX = math.pi\n"),
    "tests-syntax-error": _bad_tests("syntax_tests.py", "def test_x(:\n    assert 1\n"),
    "tests-binary": _bad_tests("binary_tests.py", b"assert 1\x00\n"),
    "tests-file-missing": _missing_tests_file,
    "missing-tests-option": _no_tests_option,
    "no-candidates": _no_candidates,
    "unknown-backend": _with_options("--backend", "nosuch", word="nosuch"),
    "zero-timeout": _with_options("--timeout", "0", word="--timeout"),
    "non-numeric-timeout": _with_options("--timeout", "soon", word="--timeout"),
    "zero-workers": _with_options("--workers", "0", word="--workers"),
    "tiny-memory": _with_options("--memory", "1", word="--memory"),
    "check-without-entry-point": _check_without_function,
}

BAD_INPUTS.update(
    {
        # compile()/ast.parse raise RecursionError or MemoryError on deeply nested source.
        "deeply-nested-candidate": _bad_candidate("deep_cand.py", DEEP),
        "deeply-nested-tests": _bad_tests("deep_tests.py", "assert " + "-" * 100_000 + "1\n"),
        "nan-timeout": _with_options("--timeout", "nan", "--backend", "process", word="--timeout"),
        "infinite-timeout": _with_options("--timeout", "inf", word="--timeout"),
    }
)


def _populated_db(path: Path) -> list[tuple[int, str, str]]:
    Store(path).write(
        *(
            Execution(
                run_id="earlier",
                candidate=f"old_{i}.py",
                candidate_hash=f"h{i}",
                tests_hash="t",
                backend="process",
                verdict="passed" if i % 2 else "failed",
                tests_total=2,
                tests_passed=2 * (i % 2),
                duration_s=0.1,
            )
            for i in range(3)
        )
    )
    return _rows(path)


def _rows(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, candidate, verdict FROM executions ORDER BY id").fetchall()
    finally:
        conn.close()


def _assert_one_error_line(proc: object, word: str) -> None:
    assert hasattr(proc, "returncode") and hasattr(proc, "stderr") and hasattr(proc, "stdout")
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    assert proc.returncode == 2, both
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and len(lines[0]) > len("Error: ")
    assert word in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    before = _populated_db(db)
    args, word = BAD_INPUTS[case](tmp_path)
    proc = run_cli("sandbox", "run", *args, "--db", str(db), cwd=tmp_path, timeout=60)
    _assert_one_error_line(proc, word)
    assert _rows(db) == before, "a rejected invocation must leave the log as it was"
    assert Store(db).integrity_ok()


def test_help_lists_the_sandbox_command(tmp_path: Path) -> None:
    top = run_cli("--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert "sandbox" in top.stdout.split("Commands:", 1)[-1]
    sub = run_cli("sandbox", "run", "--help", cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr
    for option in ("--tests", "--timeout", "--memory", "--workers", "--backend", "--json"):
        assert option in sub.stdout
    unknown = run_cli("nosuchcommand", cwd=tmp_path)
    _assert_one_error_line(unknown, "nosuchcommand")


def _run_example(tmp_path: Path, *extra: str) -> tuple[list[dict[str, object]], Path]:
    db = tmp_path / "example.db"
    proc = run_cli(
        "sandbox",
        "run",
        str(GOOD),
        str(BAD),
        "--tests",
        str(TESTS),
        "--json",
        "--db",
        str(db),
        *extra,
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return lines, db


def _check_example(results: list[dict[str, object]], db: Path, backend: str) -> None:
    suite = parse_test_suite(TESTS.read_text(encoding="utf-8"), str(TESTS))
    expected_names = [c.name for c in suite.cases]
    by_path = {r["candidate"]: r for r in results}
    assert sorted(by_path) == sorted([str(GOOD), str(BAD)])
    for result in results:
        assert set(result) >= RESULT_KEYS, set(result)
        assert result["backend"] == backend
        assert result["tests_total"] == len(suite.cases)
        assert result["tests_hash"] == suite.tests_hash
        tests = result["tests"]
        assert isinstance(tests, list)
        assert [t["name"] for t in tests] == expected_names
        for test in tests:
            assert set(test) == TEST_KEYS
            assert isinstance(test["duration"], float) and test["duration"] >= 0
        assert result["tests_passed"] == sum(t["outcome"] == "passed" for t in tests)
        assert isinstance(result["resources"], dict)
        assert isinstance(result["duration"], float) and result["duration"] > 0
    good, bad = by_path[str(GOOD)], by_path[str(BAD)]
    assert good["verdict"] == "passed"
    assert good["tests_passed"] == good["tests_total"] == len(suite.cases)
    assert all(r["exit_status"] is None or isinstance(r["exit_status"], int) for r in results)
    assert bad["verdict"] == "failed"
    assert bad["tests_passed"] < bad["tests_total"]
    assert all(t["message"] for t in bad["tests"] if t["outcome"] != "passed")  # type: ignore[union-attr]
    assert len({r["run_id"] for r in results}) == 1

    rows = Store(db).executions()
    assert len(rows) == 2
    for row in rows:
        reported = by_path[row.candidate]
        assert row.verdict == reported["verdict"]
        assert row.tests_passed == reported["tests_passed"]
        assert row.tests_total == reported["tests_total"]
        assert row.run_id == reported["run_id"]
        assert row.backend == backend
        assert row.tests_hash == suite.tests_hash
        source = Path(row.candidate).read_bytes()
        assert row.candidate_hash == hashlib.sha256(source).hexdigest()
        assert [t["name"] for t in json.loads(row.tests_json)] == expected_names


@pytest.mark.docker
def test_example_in_docker(tmp_path: Path, sandbox_image: str) -> None:
    results, db = _run_example(tmp_path)
    _check_example(results, db, "docker")
    assert all("docker" in str(r["isolation"]) for r in results)


def test_example_with_the_process_backend(tmp_path: Path) -> None:
    results, db = _run_example(tmp_path, "--backend", "process")
    _check_example(results, db, "process")
    for result in results:
        assert "weaker" in str(result["isolation"])


def test_human_output_and_warning(tmp_path: Path) -> None:
    proc = run_cli(
        "sandbox",
        "run",
        str(GOOD),
        str(BAD),
        "--tests",
        str(TESTS),
        "--backend",
        "process",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "weaker" in proc.stderr, "the process backend must warn on the terminal"
    verdict_of = {
        line.split()[1]: line.split()[0] for line in proc.stdout.splitlines() if line[:1] != " "
    }
    assert verdict_of == {str(GOOD): "PASSED", str(BAD): "FAILED"}
    # the default database (CODEENS_DB) got the rows
    assert sorted(r.verdict for r in Store().executions()) == ["failed", "passed"]


def test_all_passing_exits_0(tmp_path: Path) -> None:
    proc = run_cli(
        "sandbox", "run", str(GOOD), "--tests", str(TESTS), "--backend", "process", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    candidate = tmp_path / "bom.py"
    candidate.write_bytes(b"\xef\xbb\xbfdef add(a, b):\n    return a + b\n")
    tests = tmp_path / "t.py"
    tests.write_text("assert add(1, 2) == 3\n")
    proc = run_cli(
        "sandbox", "run", str(candidate), "--tests", str(tests), "--backend", "process",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PASSED")
