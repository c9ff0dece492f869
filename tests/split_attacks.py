"""Test shapes the driver splits, and candidates that try to read their expected values.

Each attack is a candidate whose ``f`` gathers what it can see (frames, code constants,
objects, files) and returns the constant that follows its argument there: in an in-process
test ``assert f(3) == 22`` compiles to constants ``(..., 3, 22)``, so the guess is right
whenever the expected value is anywhere the candidate can look.
"""

from __future__ import annotations

from codeens.problem_tests import doctest_parts

HONEST = "def f(x):\n    return x * 7 + 1\n"
WRONG = "def f(x):\n    return x * 7\n"

# name -> (tests, entry point for check(candidate) or None)
SHAPES: dict[str, tuple[str, str | None]] = {
    "mbpp assert": ("assert f(3) == 22\n", None),
    "humaneval check": (
        "METADATA = {}\n\ndef check(candidate):\n"
        "    assert candidate(3) == 22\n    assert candidate(4) == 29\n",
        "f",
    ),
    "test function of asserts": (
        "def test_f():\n    assert f(3) == 22\n    assert f(4) == 29\n",
        None,
    ),
    "doctest": ("".join(p.source for p in doctest_parts("f", ">>> print(f(3))\n22\n")), None),
    "math.isclose": ("import math\nassert math.isclose(f(0.5), 4.5)\n", None),
    "abs tolerance": ("assert abs(f(0.5) - 4.5) < 1e-9\n", None),
    "in": ("assert f(3) in (22, 122)\n", None),
    "chained <": ("assert 21 < f(3) < 23\n", None),
    "constants of the test file": (
        "WANT = 22\ndef test_f():\n    assert f(3) == WANT\n    assert f(4) == WANT + 7\n",
        None,
    ),
}

_PICK = '''
import sys

def _number(v):
    return type(v) in (int, float)

def _pick(material, x):
    """The value after ``x``: the middle of two bounds, a tuple's first, a number's text."""
    for i, item in enumerate(material[:-1]):
        if not (_number(item) and item == x):
            continue
        prev, nxt = (material[i - 1] if i else None), material[i + 1]
        ops = material[i - 2] if i > 1 else None
        if type(ops) is tuple and len(ops) == 2 and _number(prev) and _number(nxt):
            return (prev + nxt) / 2  # a chain: __codeens_cmp__(('<', '<'), low, f(x), high)
        if type(nxt) is tuple and nxt and _number(nxt[0]):
            return nxt[0]
        if _number(nxt):
            return nxt
        if type(nxt) is str:
            try:
                return int(nxt)
            except ValueError:
                pass
    return -1

def _consts(code, out):
    for c in code.co_consts:
        if hasattr(c, "co_consts"):
            _consts(c, out)
        else:
            out.append(c)

def _functions(values, out):
    for v in list(values):
        code = getattr(v, "__code__", None)
        if code is not None and hasattr(code, "co_consts"):
            _consts(code, out)

def f(x):
    material = []
    try:
        gather(material)
    except Exception:
        pass
    return _pick(material, x)
'''

ATTACKS = {
    "frame walking": """
def gather(out):
    frame = sys._getframe(2)
    while frame is not None:
        _consts(frame.f_code, out)
        out.extend(frame.f_locals.values())
        frame = frame.f_back
""",
    "inspect.stack locals": """
import inspect

def gather(out):
    for info in inspect.stack(0)[2:]:
        out.extend(info.frame.f_locals.values())
        _functions(info.frame.f_locals.values(), out)
        _functions(info.frame.f_globals.values(), out)
""",
    "code-object constants": """
def gather(out):
    _functions(globals().values(), out)
    for module in list(sys.modules.values()):
        _functions(vars(module).values(), out)
""",
    "gc.get_referrers": """
import gc

def gather(out):
    for holder in gc.get_referrers(f):
        if type(holder) is dict:
            _functions(holder.values(), out)
    frame = sys._getframe(2)
    while frame is not None:
        for holder in gc.get_referrers(frame.f_code):
            _functions([holder], out)
        frame = frame.f_back
""",
    "gc.get_objects": """
import gc

def gather(out):
    for obj in gc.get_objects():
        if hasattr(obj, "co_consts"):
            _consts(obj, out)
        else:
            _functions([obj], out)
""",
    "test file on disk": """
import glob, os, re

def gather(out):
    for pattern in ("/work/**", "/tmp/**", "/dev/shm/**", "/proc/*/cmdline",
                    "/proc/*/environ", "/proc/*/fd/*", os.getcwd() + "/**"):
        for path in glob.glob(pattern, recursive=True):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                data = os.read(fd, 1 << 20).decode("latin-1")
                os.close(fd)
            except Exception:
                continue
            if "f(" in data:
                for token in re.findall(r"-?\\d+(?:\\.\\d+)?", data):
                    out.append(float(token) if "." in token else int(token))
""",
}


def attack(name: str) -> str:
    """The candidate source for one attack."""
    return _PICK + ATTACKS[name]
