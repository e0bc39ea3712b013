"""The reproductions' rank test: SciPy's exact Mann-Whitney U test without ties, an independent
permutation test with ties, and its decidability."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, permutation_test

from nmrnn.experiments.statistics import rank_test


@pytest.mark.parametrize("seed", range(5))
def test_equals_scipys_exact_test_without_ties(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 4), rng.normal(0.7, 1, 5)
    p, _ = rank_test(a, b)
    assert p == pytest.approx(mannwhitneyu(a, b, alternative="less", method="exact").pvalue, abs=1e-12)


def test_with_ties_equals_a_permutation_test_of_the_rank_sum():
    a = [1200.0, 4001.0, 4001.0, 900.0]  # 4001: never reached within a budget of 4000
    b = [4001.0, 4001.0, 3000.0, 4001.0]
    from scipy.stats import rankdata

    def u(x, y):
        return rankdata(np.concatenate([x, y]))[: len(x)].sum()

    ref = permutation_test((a, b), u, permutation_type="independent", alternative="less", n_resamples=np.inf)
    p, decidable = rank_test(a, b)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)
    assert decidable and 0 < p < 1


def test_decidability_and_extremes():
    p, decidable = rank_test([1, 2, 3], [4, 5, 6])
    assert p == pytest.approx(1 / math.comb(6, 3)) and not decidable  # 0.05 is not below 0.05
    p, decidable = rank_test([1, 2, 3, 4], [5, 6, 7, 8])
    assert p == pytest.approx(1 / 70) and decidable
    assert rank_test([5, 6, 7, 8], [1, 2, 3, 4])[0] == 1.0
    assert rank_test([2.0] * 4, [2.0] * 4)[0] == 1.0  # all tied: no evidence


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        rank_test([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        rank_test([np.nan, 1.0], [1.0, 2.0])
