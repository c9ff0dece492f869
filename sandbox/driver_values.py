"""Plain values across the boundary: encoded in the candidate's process, judged by the driver.

Part of the driver program (joined before driver_child.py and driver.py); standard library
only, Python >= 3.9. A value crosses as JSON extended with one-key tags for what JSON lacks
(tuples, sets, frozensets, dicts with any keys, bytes, bytearray, complex, integers past
2**63); floats are JSON numbers (exact; NaN and Infinity included). Only values made of the
builtin types themselves cross: a subclass counts as its builtin base when it changes none
of the methods that comparisons, truth or arithmetic use (namedtuples, OrderedDict, Counter
and defaultdict compare with plain values as their base does). Anything else (an object of
the candidate's, a generator, a function) crosses as a marker: the driver never rebuilds it.
"""

import collections
import math
from collections.abc import Callable
from typing import Any

VALUE_UNITS = 1 << 20  # one per element plus one per character, byte or hex digit
VALUE_DEPTH = 100
BIG_INT = 1 << 63
_BEHAVIOUR = (
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__",
    "__len__", "__contains__", "__abs__", "__neg__", "__pos__", "__add__", "__radd__",
    "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
    "__float__", "__index__", "__int__", "__round__",
)  # fmt: skip


class _NotPlain(Exception):
    """Raised in the child for a value outside the format; in the driver, by any use of
    such a value that would need its behaviour."""


class _Large(Exception):
    pass


def _value_encoder(tainted: Callable[[Any, list[int]], bool]) -> Callable[[Any], dict[str, Any]]:
    """The child's encoder, bound before the candidate runs: value -> JSON-able message."""
    real_type = type
    to_hex = hex
    length = len
    subclass = issubclass
    none_type = type(None)
    dict_like = (collections.OrderedDict, collections.Counter, collections.defaultdict)
    bases: tuple[tuple[type, Callable[[Any], Any]], ...] = (
        (int, int.__index__),
        (float, float.__float__),
        (str, str.__str__),
        (list, list.copy),
        (tuple, lambda v: tuple.__getitem__(v, slice(None))),
        (dict, dict.copy),
        (set, set.copy),
        (frozenset, frozenset.copy),
    )

    def plain_base(kind: type) -> Any:
        if kind in dict_like:
            return dict.copy
        for base, convert in bases:
            if subclass(kind, base):
                for klass in kind.__mro__:
                    if klass is base:
                        return convert
                    attrs = klass.__dict__
                    for name in _BEHAVIOUR:
                        if name in attrs:
                            return None
        return None

    def walk(value: Any, units: list[int], depth: int) -> Any:
        units[0] -= 1
        if units[0] < 0 or depth > VALUE_DEPTH:
            raise _Large()
        kind = real_type(value)
        if kind is none_type or kind is bool or kind is float:
            return value
        if kind is int:
            if -BIG_INT < value < BIG_INT:
                return value
            units[0] -= value.bit_length() // 4
            return {"I": to_hex(value)}
        if kind is str or kind is bytes or kind is bytearray:
            units[0] -= length(value)
            if units[0] < 0:
                raise _Large()
            return value if kind is str else {("B" if kind is bytes else "BA"): value.hex()}
        if kind is complex:
            return {"C": [value.real, value.imag]}
        if kind is list:
            return [walk(item, units, depth + 1) for item in value]
        if kind is tuple or kind is set or kind is frozenset:
            tag = "T" if kind is tuple else "S" if kind is set else "F"
            return {tag: [walk(item, units, depth + 1) for item in value]}
        if kind is dict:
            return {
                "D": [
                    [walk(k, units, depth + 1), walk(v, units, depth + 1)] for k, v in value.items()
                ]
            }
        convert = plain_base(kind)
        if convert is None:
            raise _NotPlain(kind.__name__)
        return walk(convert(value), units, depth)

    def encode(value: Any) -> dict[str, Any]:
        try:
            return {"v": walk(value, [VALUE_UNITS], 0)}
        except _Large:
            return {"large": True}
        except BaseException:
            pass
        try:
            kind = str(real_type(value).__name__)[:100]
            refused = bool(tainted(value, [100000]))
        except BaseException:
            kind, refused = "unknown", True
        return {"opaque": kind, "refused": refused}

    return encode


# ------------------------------------------------------------------------- driver side


class _Opaque:
    """A value that did not cross as plain data: equal to nothing but itself, so ``==``,
    ``is`` and ``in`` against plain values are false and their negations true; anything
    that would need its behaviour (ordering, truth, arithmetic, containing) fails."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return "<%s: not plain data>" % self.kind

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    __hash__ = object.__hash__

    def _refuse(self, *args: Any) -> Any:
        raise _NotPlain(
            "a %s is not plain data: only ==, !=, is, is not, in and not in against plain "
            "values are decided for it" % self.kind
        )

    __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __contains__ = __iter__ = _refuse
    __abs__ = __neg__ = __pos__ = __float__ = __index__ = __int__ = __round__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _refuse
    __mod__ = __rmod__ = __pow__ = __rpow__ = _refuse


_SEQUENCES: dict[str, Callable[[Any], Any]] = {"T": tuple, "S": set, "F": frozenset}


def _decode(obj: Any) -> Any:
    """The child's encoded value, rebuilt from builtin types only; ValueError if malformed."""
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if kind is list:
        return [_decode(item) for item in obj]
    if kind is not dict or len(obj) != 1:
        raise ValueError("malformed value")
    ((tag, body),) = obj.items()
    if tag == "I":
        return int(body, 16)
    if tag in ("B", "BA"):
        return (bytes if tag == "B" else bytearray).fromhex(body)
    if tag == "C" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if tag in _SEQUENCES and type(body) is list:
        return _SEQUENCES[tag](_decode(item) for item in body)
    if tag == "D" and type(body) is list:
        return {_decode(k): _decode(v) for k, v in body}
    raise ValueError("malformed value")


def _received(message: dict[str, Any]) -> tuple[Any, str]:
    """The value a "value" message carries, or a failure text for one that did not cross."""
    if "v" in message:
        return _decode(message["v"]), ""
    if message.get("large"):
        return None, "the value is too large to compare outside the candidate's process"
    if message.get("refused"):
        return None, "comparison decided by a candidate-defined method (refused)"
    if "opaque" in message:
        return _Opaque(str(message["opaque"])[:100]), ""
    raise ValueError("malformed value")


def _eval_names(value: Any) -> dict[str, Any]:
    return {
        "__builtins__": {},
        "__codeens_value__": value,
        "__codeens_math__": math,
        "abs": abs,
        "round": round,
        "float": float,
        "complex": complex,
        "int": int,
        "str": str,
        "bytes": bytes,
        "bytearray": bytearray,
        "set": set,
        "frozenset": frozenset,
        "tuple": tuple,
        "list": list,
    }


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _compare(op: str, left: Any, right: Any) -> Any:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "is":
        return left is right
    if op == "is not":
        return left is not right
    if op == "in":
        return left in right
    return left not in right


def _judge(check: dict[str, Any], message: dict[str, Any]) -> tuple[str, str]:
    """("passed" | "failed" | "error", text) for one value against one of the driver's
    checks: the expected side is evaluated here, never in the candidate's process."""
    try:
        value, failure = _received(message)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return "failed", "malformed value from the candidate process"
    if failure:
        return "failed", "AssertionError: " + failure
    names = _eval_names(value)
    try:
        operands = [eval(source, names) for source in check["operands"]]
        ops = check["ops"]
        if not ops:
            if bool(operands[0]):
                return "passed", ""
            detail = "%s is false (%s gave %s)" % (check["text"], check["hole"], _shown(value))
        else:
            for i, op in enumerate(ops):
                left, right = operands[i], operands[i + 1]
                if not bool(_compare(op, left, right)):
                    detail = "%s %s %s is false" % (_shown(left), op, _shown(right))
                    break
            else:
                return "passed", ""
    except _NotPlain as exc:
        return "failed", "AssertionError: " + str(exc)
    except Exception as exc:
        return "error", "%s: %s" % (type(exc).__name__, str(exc)[:1000])
    return "failed", "AssertionError: " + (check.get("message") or detail)
