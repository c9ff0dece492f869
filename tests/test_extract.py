"""Extracting a stub's implementation from raw model output, and normalising for de-duplication."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeens.extract import extract_function, normalize
from codeens.problem import fill, load_problem
from codeens.stub import Stub

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "problems"
ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def stub() -> Stub:
    return load_problem(EXAMPLES / "add.py").stubs[0]


@pytest.mark.parametrize(
    "reply",
    [
        f"```python\n{ADD}```",
        f"```\n{ADD}```",
        f"```py\n{ADD}```\n",
        f"Sure! Here is the function:\n\n```python\n{ADD}```\n\nIt adds the two numbers.",
        f"Here it is:\n\n{ADD}\nThis works because + adds numbers.\n",
        "1. Write it:\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n",
        ADD,
    ],
    ids=["fenced", "no-language", "py", "prose-around", "unfenced-prose", "indented", "bare"],
)
def test_plain_replies(stub: Stub, reply: str) -> None:
    assert extract_function(reply, stub) == ADD


def test_two_fences_prefers_the_one_defining_the_function(stub: Stub) -> None:
    reply = (
        "First a helper you might like:\n```python\ndef plus(a, b):\n    return a + b\n```\n"
        f"And the answer:\n```python\n{ADD}```\nUsage:\n```python\nprint(add(1, 2))\n```\n"
    )
    assert extract_function(reply, stub) == ADD


def test_first_fence_with_a_syntax_error_is_skipped(stub: Stub) -> None:
    reply = "```python\ndef add(a, b)\n    return a + b\n```\nFixed:\n```python\n" + ADD + "```"
    assert extract_function(reply, stub) == ADD


def test_helpers_imports_and_constants_kept_examples_dropped(stub: Stub) -> None:
    reply = """```python
from __future__ import annotations
import os
import math
from functools import reduce as fold
import pytest

SCALE = 1
result = add(1, 2)


def unused():
    return os.getcwd()


class Box:
    def __init__(self, v):
        self.v = _floor(v)


def _floor(v):
    return math.floor(v) * SCALE


def add(a, b):
    return fold(lambda x, y: x + y, [Box(a).v, b])


def test_add():
    assert add(1, 2) == 3


print(add(2, 3))
assert add(1, 1) == 2
if __name__ == "__main__":
    print(add(1, 2))
```"""
    code = extract_function(reply, stub)
    assert code == (
        "import math\nfrom functools import reduce as fold\n\n\nSCALE = 1\n\n\n"
        "class Box:\n    def __init__(self, v):\n        self.v = _floor(v)\n\n\n"
        "def _floor(v):\n    return math.floor(v) * SCALE\n\n\n"
        "def add(a, b):\n    return fold(lambda x, y: x + y, [Box(a).v, b])\n"
    )
    namespace: dict[str, object] = {}
    exec(compile(code, "code", "exec"), namespace)
    assert namespace["add"](2.5, 3) == 5  # type: ignore[operator]


def test_repeated_signature(stub: Stub) -> None:
    reply = 'def add(a: int, b: int) -> int:\n    """Return the sum."""\n' + ADD
    assert extract_function(reply, stub) == ADD


def test_base_model_body_continuation(stub: Stub) -> None:
    body = "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\nprint(add(1, 2))\n"
    code = extract_function(body + "The end.\n# More text\n", stub, stub.prompt_text)
    assert code == stub.prompt_text + "    return a + b\n"


def test_base_model_continuation_with_helper_after(stub: Stub) -> None:
    body = "    return _twice(a) + b\n\n\ndef _twice(x):\n    return 2 * x\n\nAnd that's all!"
    code = extract_function(body, stub, stub.prompt_text)
    assert (
        code
        == stub.prompt_text + "    return _twice(a) + b\n\n\ndef _twice(x):\n    return 2 * x\n"
    )


def test_base_model_prefix_context_is_not_copied() -> None:
    problem = load_problem(EXAMPLES / "fizzbuzz.py")
    stub = problem.stubs[0]
    prefix = "import math\n\n\ndef other():\n    ...\n\n\n" + stub.prompt_text
    code = extract_function("    return other() or math.pi\n", stub, prefix)
    assert code == stub.prompt_text + "    return other() or math.pi\n"


def test_black_style_signature_amid_prose(stub: Stub) -> None:
    reply = "Answer:\n\ndef add(\n    a: int,\n    b: int,\n) -> int:\n    return a + b\n\nDone!\n"
    assert (
        extract_function(reply, stub)
        == "def add(\n    a: int,\n    b: int,\n) -> int:\n    return a + b\n"
    )


@pytest.mark.parametrize(
    "reply",
    [
        "```python\ndef add(a, b):\n    total = a\n    return (total +",
        "def add(a, b):\n    if a:\n",
        "```python\ndef plus(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b)\n    return a + b\n```",
        "```python\ndef add(a, b):\n    ...\n```",
        "```python\nclass Calc:\n    def add(self, a, b):\n        return a + b\n```",
        "I cannot help with that.",
        "",
    ],
    ids=[
        "truncated",
        "empty-block",
        "wrong-name",
        "syntax-error",
        "still-a-stub",
        "method",
        "prose",
        "empty",
    ],
)
def test_no_usable_definition(stub: Stub, reply: str) -> None:
    assert extract_function(reply, stub) is None


def test_extracted_code_fills_the_problem(stub: Stub) -> None:
    problem = load_problem(EXAMPLES / "add.py")
    code = extract_function(
        "```python\nimport operator\n\ndef add(a, b):\n    return operator.add(a, b)\n```", stub
    )
    assert code is not None
    filled = fill(problem, {"add": code})
    # The model's body under the user's own signature and docstring (same parameters).
    assert "import operator\n\n\ndef add(a: int, b: int) -> int:\n" in filled
    assert filled.endswith('    0\n    """\n    return operator.add(a, b)\n')


def test_a_renamed_parameter_keeps_the_model_definition() -> None:
    problem = load_problem(EXAMPLES / "add.py")
    filled = fill(problem, {"add": "def add(x, y):\n    return x + y\n"})
    assert filled.endswith("def add(x, y):\n    return x + y\n")


def test_normalize_ignores_comments_docstrings_and_layout() -> None:
    base = "def f(x):\n    return x + 1\n"
    variants = [
        "def f(x):\n    '''Add one.'''\n    return x + 1\n",
        "# leading comment\ndef f(x):  # trailing\n    return (x+1)   # why\n",
        "def f(x):\n\n\n\treturn x  +  1\n\n",
        '"""Module docstring."""\ndef f(x):\n    """Doc\n    more."""\n    return x + 1',
    ]
    for variant in variants:
        assert normalize(variant) == normalize(base)
    assert normalize("def f(x):\n    '''only a docstring'''\n") == normalize(
        "def f(x):\n    pass\n"
    )


def test_normalize_keeps_real_differences() -> None:
    base = normalize("def f(x):\n    return x + 1\n")
    assert normalize("def f(x):\n    return x + 2\n") != base
    assert normalize("def f(y):\n    return y + 1\n") != base
    assert normalize("def f(x):\n    return 1 + x\n") != base
    assert normalize("def f(x):\n    s = '# not a comment'\n    return x + 1\n") != base


def test_normalize_tolerates_invalid_code() -> None:
    assert normalize("def f(:\n    pass   \n\n") == "def f(:\n    pass"
