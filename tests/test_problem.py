"""Problem loading: stub detection, visible tests, errors, and filling solutions back in."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeens.problem import ProblemError, fill, load_problem
from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "problems"
SOLUTIONS = {
    "add": "def add(a, b):\n    return a + b\n",
    "fizzbuzz": (
        "def fizzbuzz(n):\n    if n % 15 == 0:\n        return 'FizzBuzz'\n"
        "    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n"
        "    return str(n)\n"
    ),
    "palindrome": "def is_palindrome(text):\n    return text == text[::-1]\n",
}


def write(tmp_path: Path, source: str, name: str = "prob.py") -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


def names(tmp_path: Path, source: str) -> list[str]:
    return [s.name for s in load_problem(write(tmp_path, source)).stubs]


@pytest.mark.parametrize(
    "body",
    [
        "...",
        "pass",
        "raise NotImplementedError",
        "raise NotImplementedError('later')",
        '"""Only a docstring."""',
        '"""Doc."""\n    ...',
        "# a comment first\n    pass",
    ],
)
def test_stub_forms(tmp_path: Path, body: str) -> None:
    assert names(tmp_path, f"import os\n\n\ndef f(x):\n    {body}\n") == ["f"]


def test_real_bodies_methods_and_nested_functions_are_not_stubs(tmp_path: Path) -> None:
    source = (
        "def done(x):\n    return x\n\n\n"
        "def raises_other():\n    raise ValueError('no')\n\n\n"
        "class A:\n    def method(self):\n        ...\n\n\n"
        "def outer():\n    def inner():\n        pass\n    return inner\n\n\n"
        "async def todo(x):\n    ...\n"
    )
    problem = load_problem(write(tmp_path, source))
    assert [s.name for s in problem.stubs] == ["todo"]
    assert problem.stubs[0].is_async
    assert problem.stubs[0].signature == "async def todo(x):"


def test_marker_comment_selects_a_function_with_a_body(tmp_path: Path) -> None:
    source = (
        "def keep(x):\n    return x\n\n\n"
        "# codeens: implement\n# (make it faster)\ndef slow(x):\n    return sorted(x)[0]\n\n\n"
        "s = '''\n# codeens: implement\n'''\ndef not_marked():\n    return 1\n"
    )
    problem = load_problem(write(tmp_path, source))
    assert [(s.name, s.marked) for s in problem.stubs] == [("slow", True)]


def test_stub_fields(tmp_path: Path) -> None:
    source = (
        "import functools\n\n\n@functools.cache\n"
        'def fib(n: int) -> int:\n    """Fibonacci.\n\n    More.\n    """\n    ...\n'
    )
    stub = load_problem(write(tmp_path, source)).stubs[0]
    data = source.encode()
    assert data[stub.start_byte : stub.end_byte].decode().startswith("@functools.cache\ndef fib")
    assert data[stub.end_byte - 3 : stub.end_byte] == b"..."
    assert stub.signature == "def fib(n: int) -> int:"
    assert stub.decorators == ("@functools.cache",)
    assert stub.docstring == "Fibonacci.\n\nMore."
    assert stub.prompt_text == (
        '@functools.cache\ndef fib(n: int) -> int:\n    """Fibonacci.\n\n    More.\n    """\n'
    )


def test_doctests_become_asserts(tmp_path: Path) -> None:
    source = '''def f(x):
    """Examples.

    >>> f(2)
    4
    >>> f(0)  # a comment
    0
    >>> f(1) == 1
    True
    >>> print(f(3))
    9
    >>> Thing(1)
    <Thing 1>
    >>> f(-1)
    Traceback (most recent call last):
    ValueError: negative
    >>> f(2)  # doctest: +SKIP
    5
    """
    ...
'''
    tests = load_problem(write(tmp_path, source)).visible_tests
    assert "assert f(2) == 4\n" in tests
    assert "assert f(0) == 0\n" in tests
    assert "assert (f(1) == 1) is True\n" in tests
    assert "assert str(f(3)) == '9'\n" in tests
    assert "assert repr(Thing(1)) == '<Thing 1>'\n" in tests
    assert "assert type(_doctest_exc).__name__ == 'ValueError'" in tests
    assert "5" not in tests
    suite = parse_test_suite(tests)
    assert len(suite.cases) == 6
    assert suite.cases[0].name == "assert f(2) == 4"


def test_statement_examples_share_one_test_function(tmp_path: Path) -> None:
    source = '''def push(stack, x):
    """
    >>> s = []
    >>> push(s, 1)
    >>> s
    [1]
    >>> for v in s:
    ...     print(v)
    1
    """
    pass
'''
    tests = load_problem(write(tmp_path, source)).visible_tests
    assert "def test_doctest_push():\n    s = []\n    push(s, 1)\n    assert s == [1]\n" in tests
    assert "redirect_stdout" in tests
    suite = parse_test_suite(tests)
    assert [c.name for c in suite.cases] == ["test_doctest_push"]


def test_bundled_examples_visible_tests(tmp_path: Path) -> None:
    counts = {"add": 3, "fizzbuzz": 2, "palindrome": 4}
    for name, count in counts.items():
        problem = load_problem(EXAMPLES / f"{name}.py")
        suite = parse_test_suite(problem.visible_tests)
        assert len(suite.cases) == count, name
    fizz = load_problem(EXAMPLES / "fizzbuzz.py")
    assert "def test_fizzbuzz() -> None:" in fizz.visible_tests
    assert "test_fizzbuzz" not in fizz.program_without_tests
    assert "__main__" not in fizz.program_without_tests
    assert "__main__" in fizz.source
    pal = load_problem(EXAMPLES / "palindrome.py")
    assert "import" not in pal.visible_tests


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_examples_pass_in_the_sandbox_once_solved(name: str) -> None:
    problem = load_problem(EXAMPLES / f"{name}.py")
    suite = parse_test_suite(problem.visible_tests)
    stub = problem.stubs[0].name
    with ProcessSandbox(Limits(timeout=5.0, memory_mb=256)) as box:
        solved = fill(problem, {stub: SOLUTIONS[name]}, keep_tests=False)
        assert box.run(Candidate("solved", solved), suite).verdict == "passed"
        unsolved = box.run(Candidate("stub", problem.program_without_tests), suite)
        assert unsolved.verdict != "passed"


def test_doctest_blocks_run_in_the_sandbox(tmp_path: Path) -> None:
    source = '''def div(a, b):
    """
    >>> div(6, 3)
    2.0
    >>> div(1, 0)
    Traceback (most recent call last):
    ZeroDivisionError: division by zero
    >>> for x in (2, 4):
    ...     print(div(x, 2))
    1.0
    2.0
    >>> print(div(1, 2), div(1, 4))
    0.5 0.25
    """
    return a / b
'''
    problem = load_problem(write(tmp_path, "# codeens: implement\n" + source))
    with ProcessSandbox(Limits(timeout=5.0, memory_mb=256)) as box:
        suite = parse_test_suite(problem.visible_tests)
        result = box.run(Candidate("div", problem.source), suite)
    assert result.verdict == "passed", result.tests
    assert result.tests_passed == 4


def test_sibling_and_extra_tests_strip_imports(tmp_path: Path) -> None:
    problem_path = write(tmp_path, "def sq(x):\n    ...\n", "mathx.py")
    write(
        tmp_path,
        "import pytest\nimport mathx\nfrom mathx import sq as square\nfrom .mathx import sq\n\n"
        "def test_a():\n    from mathx import sq\n    assert sq(2) == 4\n\n"
        "def test_b():\n    assert mathx.sq(3) == 9 and square(1) == 1\n",
        "test_mathx.py",
    )
    extra = write(tmp_path, "def test_a():\n    assert sq(0) == 0\n", "more.py")
    problem = load_problem(problem_path, [extra, tmp_path / "test_mathx.py"])
    tests = problem.visible_tests
    assert "import pytest\n" in tests
    assert "mathx = __import__" in tests
    assert "square = sq\n" in tests
    assert "import mathx" not in tests
    assert "from mathx" not in tests
    assert "from .mathx" not in tests
    assert "    pass\n    assert sq(2) == 4" in tests
    assert tests.count("# tests from test_mathx.py") == 1
    suite = parse_test_suite(tests)
    assert [c.name for c in suite.cases] == ["test_a", "test_b", "test_a_2"]
    assert [c.name for c in parse_test_suite(problem.tests_for("sq")).cases] == [
        "test_a",
        "test_b",
        "test_a_2",
    ]


def test_tests_for_picks_the_stubs_tests(tmp_path: Path) -> None:
    source = (
        "def a(x):\n    '''\n    >>> a(1)\n    1\n    '''\n\n\n"
        "def b(x):\n    ...\n\n\ndef c(x):\n    ...\n\n\n"
        "def test_b():\n    assert b(2) == 2\n\n\nassert b(3) == 3\n"
    )
    problem = load_problem(write(tmp_path, source))
    assert len(parse_test_suite(problem.visible_tests).cases) == 3
    for_a = parse_test_suite(problem.tests_for("a"))
    assert [c.name for c in for_a.cases] == ["assert a(1) == 1"]
    for_b = parse_test_suite(problem.tests_for("b"))
    assert [c.name for c in for_b.cases] == ["test_b", "assert b(3) == 3"]
    # No test exercises c (they are about a and b only): it has no tests at all.
    assert problem.tests_for("c") == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"def f(:\n    pass\n", "syntax error at line 1"),
        (b"def f():\n    return 1\n", "no stub function found: give a function whose body is"),
        (b"", "no stub function found"),
        (b"\xff\xfe d\x00e\x00f\x00", "binary file"),
        (b"def f():\n    '\xe9'\n", "not UTF-8"),
    ],
)
def test_bad_problem_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.py"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_bad_tests_files(tmp_path: Path) -> None:
    problem = write(tmp_path, "def f():\n    ...\n")
    with pytest.raises(ProblemError, match=r"^tests .*missing\.py: no such file$"):
        load_problem(problem, [tmp_path / "missing.py"])
    broken = write(tmp_path, "def test_x(:\n", "broken.py")
    with pytest.raises(ProblemError, match=r"^tests .*broken\.py: syntax error at line 1"):
        load_problem(problem, [broken])
    with pytest.raises(ProblemError, match="not a regular file"):
        load_problem(problem, [tmp_path])


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbfdef f():\n    '''\n    >>> f()\n    1\n    '''\n")
    problem = load_problem(path)
    assert problem.stubs[0].name == "f"
    # The stub's own docstring stays; the body comes from the solution.
    filled = fill(problem, {"f": "def f():\n    return 1\n"})
    assert filled == "def f():\n    '''\n    >>> f()\n    1\n    '''\n    return 1\n"


def test_fill_keeps_everything_else_byte_for_byte(tmp_path: Path) -> None:
    head = "import math  # é\r\n\r\n\r\n"
    middle = "\r\n\r\nX = 1\r\n\r\n\r\n"
    stub_b = "@staticmethod\r\ndef b(y):\r\n    pass\r\n"
    tail = "\r\n\r\ndef test_a():\r\n    assert a(4) == 2.0\r\n"
    problem = load_problem(write(tmp_path, head + "def a(x):\r\n    ..." + middle + stub_b + tail))
    solution = (
        "import math\n\n\ndef _root(x):\n    return math.sqrt(x)\n\n\n"
        "def a(x):\n    return _root(x)\n"
    )
    filled = fill(problem, {"a": solution})
    assert filled == head + solution.strip().replace("\n", "\r\n") + middle + stub_b + tail
    compile(filled, "filled", "exec")
    assert fill(problem, {}) == problem.source
    both = fill(problem, {"a": solution, "b": "def b(y):\n    return y\n"}, keep_tests=False)
    assert "@staticmethod\r\ndef b(y):\r\n    return y" in both
    assert "test_a" not in both
    assert both == problem.program_without_tests.replace(
        "def a(x):\r\n    ...", solution.strip().replace("\n", "\r\n")
    ).replace("pass", "return y")


def test_fill_rejects_bad_solutions(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, "def f():\n    ...\n"))
    with pytest.raises(ValueError, match="no stub named 'g'"):
        fill(problem, {"g": "def g():\n    return 1\n"})
    with pytest.raises(ValueError, match="does not define it"):
        fill(problem, {"f": "def g():\n    return 1\n"})
    with pytest.raises(ValueError, match="does not compile"):
        fill(problem, {"f": "def f():\n    return (1\n"})
