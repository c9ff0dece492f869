"""Split and in-process verdicts agree test by test on every HumanEval canonical solution
and every MBPP reference solution (test split), and on a wrong program made from each:
benchmarks/split_equivalence.py, in one warm pool of two workers (about a minute)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from conftest import REPO

pytestmark = pytest.mark.docker


def _benchmark() -> ModuleType:
    path = REPO / "benchmarks" / "split_equivalence.py"
    spec = importlib.util.spec_from_file_location("split_equivalence", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_split_agrees_with_in_process_on_benchmark_programs(
    sandbox_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    tallies = _benchmark().compare(workers=2, log=lines.append)
    with capsys.disabled():
        print("\nsplit equivalence:\n  " + "\n  ".join(lines))
    assert [line for line in lines if "DISAGREE" in line] == []
    reference = tallies["humaneval reference"], tallies["mbpp reference"]
    assert [t.programs for t in reference] == [164, 500]
    for tally in reference:
        assert tally.passed == tally.tests, "every reference solution passes its tests"
        assert tally.split >= 0.95 * tally.tests
    assert tallies["humaneval wrong"].passed < tallies["humaneval wrong"].tests
