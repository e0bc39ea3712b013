"""Statistics shared by the reproductions' verdicts.

:func:`rank_test` is the one-sided Mann-Whitney U test of two small samples (per-seed numbers of
two models), exact and valid with ties: the p-value is the fraction of the ``C(n + m, n)``
relabellings of the pooled values whose U statistic (from mid-ranks) is at most the observed one.
Without ties it equals SciPy's exact test (``scipy.stats.mannwhitneyu(..., method="exact")``);
with ties (e.g. runs that never reached a threshold, all recorded at the budget) SciPy's exact
method does not apply, while the enumeration stays exact. A test is *decidable* at level
``alpha`` when its smallest possible p-value, ``1 / C(n + m, n)``, is below ``alpha``: with 3
seeds per model it is 0.05, too few to decide at 0.05.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

#: The significance level of the reproductions' rank tests.
ALPHA = 0.05
#: Above this many relabellings the p-value is estimated from this many random ones.
_MAX_EXACT = 200_000


def _u_statistic(ranks: np.ndarray, n: int) -> float:
    return float(ranks[:n].sum() - n * (n + 1) / 2)


def rank_test(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA, seed: int = 0) -> tuple[float, bool]:
    """One-sided test that the values of ``a`` tend to be smaller than those of ``b``:
    ``(p, decidable)``. Exact enumeration up to :data:`_MAX_EXACT` relabellings (Monte Carlo with
    ``seed`` beyond: an estimate with the observed labelling counted once)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(f"rank_test needs two non-empty 1-D samples, got shapes {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("rank_test needs finite values (record a run that never got there as the budget)")
    n, m = a.size, b.size
    pooled = np.concatenate([a, b])
    ranks = rankdata(pooled)  # mid-ranks for ties
    observed = _u_statistic(ranks, n)
    total = math.comb(n + m, n)
    if total <= _MAX_EXACT:
        us = np.array([ranks[list(idx)].sum() - n * (n + 1) / 2 for idx in itertools.combinations(range(n + m), n)])
        p = float(np.mean(us <= observed + 1e-9))
    else:
        rng = np.random.default_rng(seed)
        draws = 50_000
        us = np.array([np.sort(rng.permutation(n + m)[:n]) for _ in range(draws)])
        stats = ranks[us].sum(axis=1) - n * (n + 1) / 2
        p = float((np.sum(stats <= observed + 1e-9) + 1) / (draws + 1))
    return p, 1.0 / total < alpha


__all__ = ["ALPHA", "rank_test"]
