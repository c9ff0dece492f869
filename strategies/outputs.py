"""What each candidate returns on a list of inputs: its output signature.

Each input ``f(args)`` becomes one probe test, ``assert _codeens_output(f(args)) ==
SENTINEL``: it always fails, and the sandbox reports a failing comparison with the compared
values (``"'[1, 2]' == '<sentinel>' is false"``), so the message carries what the call
returned. ``_codeens_output`` (the probe file's setup, run in the candidate's process)
first turns the value into a canonical text: sets and dict items sorted (their order in a
``repr`` changes with each process's hash seed), object addresses dropped, and a long text
cut to a prefix and a SHA-256 digest (the sandbox cuts messages at 200 characters, which
would make long outputs that differ late look equal).

A probe that raised or timed out, a program that does not import, a run that broke: no
output on that input, ``None`` in the signature, and a ``None`` agrees with nothing, not
even another ``None``. An input on which most samples return nothing is most likely outside
the function's domain (a model proposed an invalid input): it is left out of the
comparison rather than making every program disagree with every other.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codeens.sandbox.results import ExecutionResult, TestOutcome, Verdict
from codeens.sandbox.testfile import TestSuite, parse_test_suite
from codeens.strategies.inputs import Inputs, collect_inputs
from codeens.strategies.interface import Candidate, Context

Signature = tuple[str | None, ...]
SENTINEL = "<codeens: an output no program returns>"
NO_OUTPUT = (Verdict.ERROR, Verdict.INFRA_ERROR)
CANON_LIMIT = 120
"""Canonical texts whose repr is longer are cut to a prefix and a digest."""
_FAILED = "AssertionError: "
_SUFFIX = f" == {SENTINEL!r} is false"
# Runs on the sandbox's own Python (3.8 or later), standard library only. No comparison
# operators: the sandbox routes each through a trusted helper, too slow per element (a
# list of 100,000 pairs took over 10 s); deep nesting ends in RecursionError, no output.
_HELPER = f"""
def _codeens_output(value):
    import hashlib
    import re

    def sequence(v):
        return type(v).__name__ + "[" + ",".join(map(canon, v)) + "]"

    def unordered(v):
        return type(v).__name__ + "{{" + ",".join(sorted(map(canon, v))) + "}}"

    def mapping(v):
        return "dict{{" + ",".join(sorted(canon(k) + ":" + canon(x) for k, x in v.items())) + "}}"

    kinds = {{list: sequence, tuple: sequence, set: unordered, frozenset: unordered, dict: mapping}}

    def canon(v):
        return kinds.get(type(v), plain)(v)

    def plain(v):
        return re.sub(" at 0x[0-9a-fA-F]+", "", repr(v))

    text = canon(value)
    if len(repr(text)) <= {CANON_LIMIT}:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
    return ascii(text)[:60] + "... sha256:" + digest[:16]
"""


def probe_suite(calls: Sequence[str]) -> TestSuite:
    """One always-failing probe per call, in order, after the canonicalising helper."""
    probes = "".join(f"assert _codeens_output({call}) == {SENTINEL!r}\n" for call in calls)
    return parse_test_suite(_HELPER + probes, "output probes")


def read_output(outcome: TestOutcome) -> str | None:
    """The canonical output a probe's outcome carries, or None when it returned nothing."""
    if outcome.outcome == "passed":  # the canonical text was the sentinel itself
        return SENTINEL
    message = outcome.message
    if outcome.outcome != "failed" or not message.startswith(_FAILED):
        return None
    if not message.endswith(_SUFFIX):
        return None
    try:
        value = ast.literal_eval(message[len(_FAILED) : -len(_SUFFIX)])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def signature_of(result: ExecutionResult | None, width: int) -> Signature:
    """Outputs per input; a run cut short (timeout) leaves the rest ``None``."""
    if result is None or result.verdict in NO_OUTPUT:
        return (None,) * width
    outputs = [read_output(t) for t in result.tests[:width]]
    return tuple(outputs + [None] * (width - len(outputs)))


def output_signatures(
    ctx: Context, candidates: Sequence[Candidate], calls: Sequence[str]
) -> dict[Candidate, Signature]:
    """Every candidate's outputs on ``calls``; programs that do not import are not run."""
    if not calls:
        return {c: () for c in candidates}
    runnable = [c for c in candidates if c.result is None or c.result.verdict not in NO_OUTPUT]
    results = ctx.run_suite(runnable, probe_suite(calls))
    return {c: signature_of(results.get(c), len(calls)) for c in candidates}


def usable_inputs(signatures: Mapping[Candidate, Signature], width: int) -> list[int]:
    """Indices of the inputs on which at least half of the samples returned something."""
    weights = {c: max(1, len(c.samples)) for c in signatures}
    total = sum(weights.values())
    return [
        i
        for i in range(width)
        if 2 * sum(w for c, w in weights.items() if signatures[c][i] is not None) >= total > 0
    ]


def restrict(signature: Signature, keep: Sequence[int]) -> Signature:
    return tuple(signature[i] for i in keep)


def complete(signature: Signature) -> bool:
    """Whether the program returned on every input: only then can it agree with another."""
    return None not in signature


def mean_logprob(candidate: Candidate) -> float | None:
    """Mean token log-probability over the candidate's samples that have one."""
    values = [s.mean_logprob for s in candidate.samples if s.mean_logprob is not None]
    return sum(values) / len(values) if values else None


def preference(candidate: Candidate) -> tuple[float, int, int, str]:
    """Sort key among programs that agree: higher mean log-probability (none counts
    lowest), then more duplicate samples, then shorter code."""
    logprob = mean_logprob(candidate)
    return (
        -logprob if logprob is not None else float("inf"),
        -len(candidate.samples),
        len(candidate.code),
        candidate.hash,
    )


def top_pass_rate(candidates: Sequence[Candidate]) -> tuple[list[Candidate], float | None]:
    """The candidates with the top visible pass rate and that rate (all of them and None
    when nothing was executed: no visible tests)."""
    rates = {c: c.result.pass_rate for c in candidates if c.result is not None}
    if not rates:
        return list(candidates), None
    top = max(rates.values())
    return [c for c, rate in rates.items() if rate == top], top


@dataclass(frozen=True)
class Observed:
    """The inputs, every candidate's outputs on all of them, and the inputs compared."""

    inputs: Inputs
    outputs: Mapping[Candidate, Signature] = field(default_factory=dict)
    used: tuple[int, ...] = ()

    def signature(self, candidate: Candidate) -> Signature:
        """The candidate's outputs on the compared inputs."""
        return restrict(self.outputs[candidate], self.used)

    def rows(self) -> list[dict[str, Any]]:
        """JSON-ready, one per input: the call, where it came from, whether it was compared,
        how many distinct outputs the candidates gave and how many gave none."""
        rows = []
        for i, (call, origin) in enumerate(
            zip(self.inputs.calls, self.inputs.origins, strict=True)
        ):
            outputs = [s[i] for s in self.outputs.values()]
            rows.append(
                {
                    "call": call,
                    "from": origin,
                    "used": i in self.used,
                    "distinct_outputs": len({o for o in outputs if o is not None}),
                    "no_output": outputs.count(None),
                }
            )
        return rows


def observe(ctx: Context, candidates: Sequence[Candidate], n: int, samples: int) -> Observed:
    """Collect inputs (the visible calls and ``n`` per model), run every candidate on them,
    and compare on the inputs on which at least half of the samples returned something."""
    inputs = collect_inputs(ctx, n, samples)
    outputs = output_signatures(ctx, candidates, inputs.calls)
    return Observed(inputs, outputs, tuple(usable_inputs(outputs, len(inputs.calls))))
