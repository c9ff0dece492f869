"""pass@k, bootstrap intervals and percentiles against hand values and reference code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codeens.evals.metrics import bootstrap_ci, pass_at_k, percentile


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the share correct
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer than k wrong samples: always a hit
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (20, 3, 10, 1 - 19448 / 184756),  # 1 - C(17,10)/C(20,10)
    ],
)
def test_pass_at_k_matches_hand_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(200, 13, 1), (200, 13, 10), (200, 13, 100), (7, 3, 4)])
def test_pass_at_k_matches_exact_binomials_for_large_n(n: int, c: int, k: int) -> None:
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)
    assert isinstance(pass_at_k(n, c, k), float)  # a plain float, for the JSON report


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible() -> None:
    values = [1.0] * 6 + [0.0] * 4
    low, high = bootstrap_ci(values)
    assert low < 0.6 < high
    assert low >= 0.2 and high <= 1.0
    assert bootstrap_ci(values) == (low, high), "seeded: the same interval every time"
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    wide = bootstrap_ci([1.0, 0.0])
    narrow = bootstrap_ci([1.0, 0.0] * 50)
    assert wide[1] - wide[0] > narrow[1] - narrow[0], "more problems, a tighter interval"
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_bootstrap_interval_is_close_to_the_normal_one_for_many_problems() -> None:
    # 400 problems, 60 % passed: the mean's standard error is sqrt(0.24 / 400) = 0.0245,
    # so a 95 % interval is about 0.6 +- 0.048.
    low, high = bootstrap_ci([1.0] * 240 + [0.0] * 160)
    assert low == pytest.approx(0.6 - 1.96 * 0.0245, abs=0.01)
    assert high == pytest.approx(0.6 + 1.96 * 0.0245, abs=0.01)
    spread = [i / 7 for i in range(10)]
    assert bootstrap_ci(spread, seed=1) == bootstrap_ci(spread, seed=1)
    assert bootstrap_ci(spread, seed=1) != bootstrap_ci(spread, seed=2), "the seed is used"
    narrower = bootstrap_ci([1.0] * 240 + [0.0] * 160, level=0.5)
    assert low < narrower[0] < narrower[1] < high


@pytest.mark.parametrize("q", [0, 25, 50, 90, 95, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
