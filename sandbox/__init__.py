"""Run candidate programs against their tests in an isolated sandbox and return verdicts.

This package knows nothing of models or strategies: it takes code and tests, and gives back
one :class:`ExecutionResult` per candidate.
"""

from codeens.sandbox.results import ExecutionResult, Limits, TestOutcome, Verdict
from codeens.sandbox.testfile import TestSuite, load_test_suite, parse_test_suite

__all__ = [
    "ExecutionResult",
    "Limits",
    "TestOutcome",
    "TestSuite",
    "Verdict",
    "load_test_suite",
    "parse_test_suite",
]
