"""Parsing test files into named cases: the three styles, binding, rejection, hardening."""

from __future__ import annotations

import ast
import textwrap

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.results import Limits, Verdict
from codeens.sandbox.testfile import CMP_HELPER, TRUTH_HELPER, parse_test_suite

PYTEST_STYLE = textwrap.dedent(
    """
    import math

    LIMIT = 10

    def helper(x):
        return x * 2

    def test_small():
        assert add(2, 3) == 5

    def test_negative():
        assert add(-1, -1) == helper(-1)

    def test_with_fixture(tmp_path):
        assert False

    def not_a_test():
        assert False
    """
)

HUMANEVAL_STYLE = textwrap.dedent(
    '''
    METADATA = {"author": "x"}


    def check(candidate):
        """Docstrings are not cases."""
        base = 10
        assert candidate(1, 2) == 3
        assert candidate(base, 5) == 15
        assert candidate(-1, 1) == 0


    check(add)

    if __name__ == "__main__":
        check(add)
    '''
)

MBPP_STYLE = textwrap.dedent(
    """
    import math
    assert add(1, 1) == 2
    assert add(0, 0) == 0
    assert math.isclose(add(0.1, 0.2), 0.3)
    """
)


def _names(source: str) -> list[str]:
    return [case.name for case in parse_test_suite(source).cases]


def test_pytest_style_cases_are_argument_free_test_functions() -> None:
    suite = parse_test_suite(PYTEST_STYLE, "t.py")
    assert [c.name for c in suite.cases] == ["test_small", "test_negative"]
    assert [c.source for c in suite.cases] == ["test_small()", "test_negative()"]
    assert not suite.entry_point_required
    setup = ast.parse(suite.setup)
    defined = [s.name for s in setup.body if isinstance(s, ast.FunctionDef)]
    assert defined == ["helper", "test_small", "test_negative", "test_with_fixture", "not_a_test"]
    assert "import math" in suite.setup
    assert "LIMIT = 10" in suite.setup


def test_humaneval_check_is_split_into_one_case_per_assert() -> None:
    suite = parse_test_suite(HUMANEVAL_STYLE, "he.py")
    assert suite.entry_point_required
    assert [c.name for c in suite.cases] == [
        "check: assert candidate(1, 2) == 3",
        "check: assert candidate(base, 5) == 15",
        "check: assert candidate(-1, 1) == 0",
    ]
    for case in suite.cases:
        assert "base = 10" in case.source, "each case repeats the prelude"
        assert "__codeens_entry__" in case.source
    # The module-level check(add) call and the main guard are not setup: running them
    # would call check before the entry point is bound.
    tree = ast.parse(suite.setup)
    assert not any(isinstance(s, ast.Expr | ast.If) for s in tree.body)
    assert "METADATA" in suite.setup


@pytest.mark.parametrize(
    "body",
    [
        # a statement after the first assert
        """
        assert candidate(1, 2) == 3
        print("between")
        assert candidate(2, 2) == 4
        """,
        # asserts inside a loop only
        """
        for a, b in [(1, 2), (3, 4)]:
            assert candidate(a, b) == a + b
        """,
        # no assert at all
        """
        if candidate(1, 2) != 3:
            raise AssertionError
        """,
    ],
    ids=["statement-after-assert", "loop", "no-assert"],
)
def test_unsplittable_check_is_one_case(body: str) -> None:
    source = "def check(candidate):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    suite = parse_test_suite(source, "he.py")
    assert suite.entry_point_required
    assert [c.name for c in suite.cases] == ["check"]
    assert suite.cases[0].source == "check(__codeens_entry__)"
    assert "def check(candidate)" in suite.setup


def test_mbpp_bare_asserts_are_one_case_each() -> None:
    suite = parse_test_suite(MBPP_STYLE, "mbpp.py")
    assert [c.name for c in suite.cases] == [
        "assert add(1, 1) == 2",
        "assert add(0, 0) == 0",
        "assert math.isclose(add(0.1, 0.2), 0.3)",
    ]
    assert not suite.entry_point_required
    assert suite.setup.strip() == "import math"


def test_styles_mix() -> None:
    source = PYTEST_STYLE + MBPP_STYLE
    names = _names(source)
    assert names == _names(PYTEST_STYLE) + _names(MBPP_STYLE)


def test_long_assert_names_are_shortened() -> None:
    long_call = "add(" + ", ".join(str(i) for i in range(60)) + ")"
    (case,) = parse_test_suite(f"assert {long_call} == 1\n").cases
    assert len(case.name) <= 100
    assert case.name.endswith("...")


def test_for_entry_point_binds_the_function_name() -> None:
    suite = parse_test_suite(HUMANEVAL_STYLE, "he.py")
    bound = suite.for_entry_point("add_numbers")
    assert not bound.entry_point_required
    assert bound.tests_hash == suite.tests_hash
    assert [c.name for c in bound.cases] == [c.name for c in suite.cases]
    for case in bound.cases:
        assert "__codeens_entry__" not in case.source
        call = ast.parse(case.source).body[-1]
        assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
        assert ast.unparse(call.value.args[0]) == "add_numbers"
    with pytest.raises(SandboxInputError, match="entry-point"):
        suite.for_entry_point(None)
    plain = parse_test_suite(MBPP_STYLE)
    assert plain.for_entry_point(None) is plain


def test_split_cases_run_and_score_separately() -> None:
    """The split is real: a candidate wrong on one input fails exactly that case."""
    suite = parse_test_suite(HUMANEVAL_STYLE, "he.py").for_entry_point("add")
    wrong_on_negatives = "def add(a, b):\n    return abs(a) + abs(b)\n"
    right = "def add(a, b):\n    return a + b\n"
    with ProcessSandbox(Limits(timeout=5.0, memory_mb=256)) as box:
        good = box.run(Candidate("right.py", right), suite)
        bad = box.run(Candidate("wrong.py", wrong_on_negatives), suite)
    assert good.verdict is Verdict.PASSED
    assert good.tests_passed == good.tests_total == len(suite.cases)
    assert bad.verdict is Verdict.FAILED
    failed = [t.name for t in bad.tests if t.outcome != "passed"]
    assert failed == ["check: assert candidate(-1, 1) == 0"]
    assert bad.tests_passed == len(suite.cases) - 1


@pytest.mark.parametrize(
    "source",
    [
        "",
        "import math\nX = 1\n",
        "def helper():\n    assert True\n",
        "check(add)\n",
        "if __name__ == '__main__':\n    assert add(1, 1) == 2\n",
    ],
    ids=["empty", "setup-only", "helper-only", "check-call-only", "main-guard-only"],
)
def test_no_tests_is_an_input_error(source: str) -> None:
    with pytest.raises(SandboxInputError, match="no tests") as info:
        parse_test_suite(source, "empty_tests.py")
    assert "empty_tests.py" in str(info.value)


def test_syntax_error_is_an_input_error() -> None:
    with pytest.raises(SandboxInputError) as info:
        parse_test_suite("def test_x(:\n    assert 1\n", "broken.py")
    message = str(info.value)
    assert "broken.py" in message
    assert "line 1" in message


def test_comparisons_and_asserts_go_through_trusted_helpers() -> None:
    suite = parse_test_suite(MBPP_STYLE)
    for case in suite.cases:
        assert TRUTH_HELPER in case.source
    assert CMP_HELPER in suite.cases[0].source
    assert CMP_HELPER == "__codeens_cmp__"
    # No comparison survives the rewrite, in cases or in the setup (test functions).
    for source in (PYTEST_STYLE, HUMANEVAL_STYLE, MBPP_STYLE):
        parsed = parse_test_suite(source)
        bound = parsed.for_entry_point("add")
        for text in (parsed.setup, *(c.source for c in bound.cases)):
            tree = ast.parse(text)
            assert not any(isinstance(n, ast.Compare) for n in ast.walk(tree)), text
    pytest_suite = parse_test_suite(PYTEST_STYLE)
    assert "__codeens_cmp__(('==',), add(2, 3), 5)" in pytest_suite.setup
    chained = parse_test_suite("assert 1 < add(1, 1) <= 3\n").cases[0].source
    assert "__codeens_cmp__(('<', '<='), 1, add(1, 1), 3)" in chained


def test_tests_hash_identifies_the_source() -> None:
    first = parse_test_suite(MBPP_STYLE).tests_hash
    assert first == parse_test_suite(MBPP_STYLE, "other-label.py").tests_hash
    assert first != parse_test_suite(MBPP_STYLE + "assert add(2, 2) == 4\n").tests_hash
    assert len(first) == 64 and int(first, 16) >= 0
