"""Values across the split: the driver's comparisons agree with Python's own on the values
the candidate returned (floats, sets, dicts, containers, big integers, stdlib subclasses),
and the few documented differences are exactly the ones the README states."""

from __future__ import annotations

import pytest

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.testfile import parse_test_suite

pytestmark = pytest.mark.docker

PRELUDE = "import collections, fractions, math\n"

# (what f returns, an assert on it, the outcome Python gives in-process)
AGREE = [
    ("0.1 + 0.2", "assert f() == 0.3", "failed"),
    ("0.1 + 0.2", "assert math.isclose(f(), 0.3)", "passed"),
    ("0.1 + 0.2", "assert abs(f() - 0.3) < 1e-9", "passed"),
    ("float('nan')", "assert f() == float('nan')", "failed"),
    ("float('nan')", "assert f() != float('nan')", "passed"),
    ("-0.0", "assert f() == 0.0", "passed"),
    ("float('inf')", "assert f() == float('inf')", "passed"),
    ("float('inf')", "assert f() > 1e308", "passed"),
    ("1", "assert f() == 1.0", "passed"),
    ("1", "assert f() == True", "passed"),
    ("1", "assert f() is True", "failed"),
    ("True", "assert f() is True", "passed"),
    ("None", "assert f() is None", "passed"),
    ("0", "assert not f()", "passed"),
    ("[]", "assert f()", "failed"),
    ("10 ** 40 + 1", "assert f() == 10000000000000000000000000000000000000001", "passed"),
    ("-(10 ** 40)", "assert f() < -99999999999999999999999999999999999999", "passed"),
    ("10 ** 5000", "assert f() != 0", "passed"),
    ("{1, 2, 3}", "assert f() == {3, 2, 1}", "passed"),
    ("{1, 2}", "assert f() == frozenset({1, 2})", "passed"),
    ("{(1, 'a'), (2, 'b')}", "assert f() == {(2, 'b'), (1, 'a')}", "passed"),
    ("{'b': 2, 'a': 1}", "assert f() == {'a': 1, 'b': 2}", "passed"),
    ("{(1, 2): [3]}", "assert f() == {(1, 2): [3]}", "passed"),
    ("collections.OrderedDict([('b', 2), ('a', 1)])", "assert f() == {'a': 1, 'b': 2}", "passed"),
    ("collections.Counter('abca')", "assert f() == {'a': 2, 'b': 1, 'c': 1}", "passed"),
    ("collections.defaultdict(int, a=1)", "assert f() == {'a': 1}", "passed"),
    ("collections.namedtuple('P', 'x y')(1, 2)", "assert f() == (1, 2)", "passed"),
    ("[1, 2]", "assert f() == (1, 2)", "failed"),
    ("(1, [2, {3: (4,)}])", "assert f() == (1, [2, {3: (4,)}])", "passed"),
    ("b'ab'", "assert f() == bytearray(b'ab')", "passed"),
    ("bytearray(b'ab')", "assert f() == b'ab'", "passed"),
    ("'ab'", "assert f() == b'ab'", "failed"),
    ("1 + 2j", "assert f() == complex(1, 2)", "passed"),
    ("'abc'", "assert 'b' in f()", "passed"),
    ("{'k': 1}", "assert 'k' in f()", "passed"),
    ("3", "assert f() in (1, 2, 3)", "passed"),
    ("3", "assert f() not in [1, 2]", "passed"),
    ("2.675", "assert round(f(), 2) == 2.67", "passed"),
    ("type('I', (int,), {})(5)", "assert f() == 5", "passed"),
    ("(x for x in [])", "assert f() != [1]", "passed"),
    ("(x for x in [])", "assert f() is not None", "passed"),
    ("map(abs, [1])", "assert f() == [1]", "failed"),
    ("range(3)", "assert f() == [0, 1, 2]", "failed"),
    ("None", "assert f() < 5", "error"),
    ("1 / 0", "assert f() == 1", "error"),
    ("[1] * 3", "assert f() == [1, 1, 1], 'three ones'", "passed"),
]

# Values that do not cross as plain data fail wherever Python would need their behaviour.
# (what f returns, an assert on it, the outcome in-process, the outcome split)
DIFFER = [
    ("fractions.Fraction(1, 2)", "assert f() == 0.5", "passed", "failed"),
    ("(x for x in [1])", "assert f()", "passed", "failed"),
    # Python's containers compare identical objects as equal first; identity does not cross.
    ("[math.nan]", "assert f() == [math.nan]", "passed", "failed"),
]


def _outcomes(box: DockerSandbox, returned: str, test: str) -> tuple[str, str]:
    candidate = Candidate("c.py", f"{PRELUDE}def f():\n    return {returned}\n")
    suite = parse_test_suite(f"{PRELUDE}{test}\n")
    assert suite.cases[0].isolation == "split", test
    split = box.run(candidate, suite)
    in_process = box.run(candidate, suite.in_process())
    assert split.tests[0].isolation == "split"
    assert in_process.tests[0].isolation == "in-process"
    return split.tests[0].outcome, in_process.tests[0].outcome


@pytest.mark.parametrize(("returned", "test", "python"), AGREE, ids=[t for _, t, _ in AGREE])
def test_split_agrees_with_python(
    returned: str, test: str, python: str, docker_box: DockerSandbox
) -> None:
    assert _outcomes(docker_box, returned, test) == (python, python)


@pytest.mark.parametrize(("returned", "test", "python", "split"), DIFFER)
def test_values_outside_the_format_fail(
    returned: str, test: str, python: str, split: str, docker_box: DockerSandbox
) -> None:
    assert _outcomes(docker_box, returned, test) == (split, python)


def test_a_value_past_the_size_cap_fails_with_a_reason(docker_box: DockerSandbox) -> None:
    candidate = Candidate("c.py", "def f():\n    return 'x' * (2 << 20)\n")
    result = docker_box.run(candidate, parse_test_suite("assert f() != ''\n"))
    assert result.tests[0].outcome == "failed"
    assert "too large" in result.tests[0].message


def test_candidate_defined_comparisons_are_refused(docker_box: DockerSandbox) -> None:
    source = (
        "class A:\n    def __ne__(self, other):\n        return True\ndef f():\n    return A()\n"
    )
    result = docker_box.run(Candidate("c.py", source), parse_test_suite("assert f() != 1\n"))
    assert result.tests[0].outcome == "failed"
    assert "candidate-defined" in result.tests[0].message
