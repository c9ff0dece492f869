"""Which asserts are split (the driver holds the expected side) and which stay in-process,
decided on the host from the test file alone."""

from __future__ import annotations

import ast

import pytest

from codeens.sandbox import testfile
from codeens.sandbox.testfile import parse_test_suite

SPLIT = [
    "assert f(1) == 2",
    "assert 2 == f(1)",
    "assert f(1) != [1, (2, 3), {4: 'x'}]",
    "assert f(1) is None",
    "assert f(1) is not False",
    "assert f(1) in (1, 2)",
    "assert 3 not in f(1)",
    "assert 1 < f(1) <= 3",
    "assert f(1) == -1.5",
    "assert f(1) == float('inf')",
    "assert f(1) == set()",
    "assert f(1) == frozenset({1, 2})",
    "assert f(1) == 1 / 3",
    "assert f(1)",
    "assert not f(1)",
    "assert f(1), 'a message'",
    "assert len(f(1)) == 3",
    "assert sorted(f(1)) == [1, 2]",
    "assert round(f(1), 2) == 0.33",
    "assert abs(f(1) - 0.5) < 1e-6",
    "assert abs(0.5 - f(1)) <= 1e-6",
    "assert math.isclose(f(1), 0.3)",
    "assert math.isclose(f(1), 0.3, rel_tol=1e-3, abs_tol=0.0)",
    "assert f(1) == math.pi",
    "assert repr(f(1)) == '[1, 2]'",
    "assert True",
    "assert f(1) == EXPECTED",
    "assert f(1) in (EXPECTED, -EXPECTED)",
]

IN_PROCESS = [
    ("assert f(1) == unknown", "expected side is a name the driver cannot evaluate"),
    ("assert f(1) == g(1)", "two expressions under test"),
    ("assert f(1) == 1 or f(1) == 2", "a boolean of comparisons"),
    ("assert all(f(x) == x for x in [1, 2])", "comparison inside the expression"),
    ("assert f(1) is 1", "identity with a number"),
    ("assert f(1) == 2 ** 100", "a power too large to fold"),
    ("assert (n := f(1)) == 2", "walrus"),
    ("assert helper(f(1)) == 2", "a helper of the test file runs in the candidate's process"),
    ("assert 1 == 1", "no expression under test"),
]


def _case(line: str) -> testfile.TestCase:
    source = f"import math\nEXPECTED = 2\ndef helper(x):\n    return x\n{line}\n"
    return parse_test_suite(source).cases[0]


@pytest.mark.parametrize("line", SPLIT)
def test_split_shapes(line: str) -> None:
    case = _case(line)
    assert case.isolation == "split"
    # The probe holds the expression under test and nothing of the expected side.
    probe = ast.parse(case.probe)
    yields = [n for n in ast.walk(probe) if isinstance(n, ast.Yield)]
    assert len(yields) == 1


@pytest.mark.parametrize(("line", "why"), IN_PROCESS, ids=[w for _, w in IN_PROCESS])
def test_in_process_shapes(line: str, why: str) -> None:
    case = _case(line)
    assert case.isolation == "in-process", why
    assert not case.probe


def test_expected_values_stay_out_of_the_candidates_process() -> None:
    source = (
        "import math\n"
        "def check(candidate):\n    base = 10\n"
        "    assert candidate(base) == 987654\n    assert abs(candidate(2) - 0.123) < 1e-6\n"
        "def test_f():\n    assert f(1) == 555111\n"
        "assert f(2) in (444333, 1)\n"
    )
    suite = parse_test_suite(source).for_entry_point("f")
    assert {c.isolation for c in suite.cases} == {"split"}
    child_side = suite.child_setup + "".join(c.probe for c in suite.cases)
    in_process = suite.setup + "".join(c.source for c in suite.cases)
    for expected in ("987654", "0.123", "555111", "444333"):
        assert expected not in child_side
        assert expected in in_process  # the in-process form is unchanged
    assert "def check" not in suite.child_setup and "def test_f" not in suite.child_setup
    assert "candidate(base)" in suite.cases[0].probe and "base = 10" in suite.cases[0].probe


def test_a_test_function_used_elsewhere_stays_in_process() -> None:
    source = "def test_a():\n    assert f(1) == 2\ndef test_b():\n    test_a()\n"
    suite = parse_test_suite(source)
    assert [c.isolation for c in suite.cases] == ["in-process", "in-process"]
    assert suite.child_setup == suite.setup


def test_statements_that_could_decide_keep_the_test_in_process() -> None:
    source = (
        "def test_branch():\n    if f(1) != 2:\n        raise AssertionError\n"
        "    assert f(2) == 3\n"
        "def test_plain():\n    x = [3, 1]\n    f(x)\n    assert x == [1, 3]\n"
    )
    suite = parse_test_suite(source)
    assert [c.isolation for c in suite.cases] == ["in-process", "split"]


def test_in_process_drops_every_split() -> None:
    suite = parse_test_suite("def test_f():\n    assert f(1) == 2\nassert f(2) == 3\n")
    plain = suite.in_process()
    assert {c.isolation for c in plain.cases} == {"in-process"}
    assert plain.child_setup == suite.setup
    assert [c.source for c in plain.cases] == [c.source for c in suite.cases]


def test_constants_of_the_test_file_stay_with_the_driver() -> None:
    source = "WANT = [987654, (1, 2)]\nLIMIT = 1e-6\nassert f(1) == WANT\n"
    suite = parse_test_suite(source)
    assert suite.cases[0].isolation == "split"
    assert "987654" not in suite.child_setup + suite.cases[0].probe
    assert "LIMIT" in suite.child_setup  # unused by any split check: left as it was


@pytest.mark.parametrize(
    "source",
    [
        "N = 5\nassert f(N) == N\n",  # the expression under test reads it
        "N = 5\nassert f(1) == N\nassert f(2) == N or f(2) == 0\n",  # an in-process test does
        "N = 5\nassert f(1) == N\ndef test_g():\n    for x in [N]:\n        assert g(x)\n",
    ],
    ids=["input", "in-process test", "test function"],
)
def test_a_constant_the_candidates_process_needs_keeps_its_readers_in_process(
    source: str,
) -> None:
    suite = parse_test_suite(source)
    assert all(c.isolation == "in-process" for c in suite.cases if "N" in c.source)
    assert "N = 5" in suite.child_setup
