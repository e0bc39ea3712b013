"""The verdict criteria of ``lif-rate`` and ``local-rules`` on synthetic numbers, and the
rate-curve features on a curve with a known answer."""

from __future__ import annotations

import numpy as np

from nmrnn.experiments.lif import MIN_POPULATION, excitability_features, reduction_checks
from nmrnn.experiments.local_rules import local_rule_checks


def test_excitability_features_of_a_known_curve():
    currents = np.linspace(0, 10, 1001)
    # zero up to 1, then 100 Hz/nA up to 500 Hz
    rates = np.clip(100 * (currents - 1.0), 0, 500)
    rates[currents <= 1.0] = 0
    f = excitability_features(currents, rates, max_rate=500.0)
    assert abs(f["rheobase"] - 1.01) < 1e-9
    assert abs(f["slope"] - 100.0) < 1e-6
    assert abs(f["saturation_current"] - 5.0) < 1e-6  # 400 Hz at 1 + 4


def test_reduction_checks_pass_and_fail():
    periods = [20, 100, 1000, 2000]
    good = reduction_checks(periods, [0.5, 0.2, 0.05, 0.04], [[0.3, 0.3], [0.1, 0.1], [0.05, 0.02], [0.03, 0.01]])
    assert [c["passed"] for c in good] == [True, True]
    slow_bad = reduction_checks(periods, [0.5, 0.2, 0.15, 0.04], [[0.3, 0.3]] * 4)
    assert [c["passed"] for c in slow_bad] == [False, True]
    no_break = reduction_checks(periods, [0.03, 0.02, 0.05, 0.04], [[0.01, 0.01]] * 4)
    assert [c["passed"] for c in no_break] == [True, False]
    small = reduction_checks(periods, [0.5, 0.2, 0.05, 0.04], [[0.01, 0.01]] * 4, n_neurons=MIN_POPULATION - 1)
    assert all(c.get("decided") is False and not c["passed"] for c in small)
    only_fast = reduction_checks([20, 50], [0.5, 0.2], [[0.1, 0.1]] * 2)
    assert only_fast[0].get("decided") is False


def test_local_rule_checks_pass_and_fail():
    align = {"W": ([0.6, 0.5], [0.05, 0.04]), "R": ([0.3, 0.2], [0.1, 0.1])}
    ok = local_rule_checks([1.0, 1.0], [0.1, 0.2], [0.6, 0.7], align)
    assert [c["passed"] for c in ok] == [True, True]
    # lowered, but no better than the readout alone
    weak = local_rule_checks([1.0, 1.0], [0.4, 0.4], [0.45, 0.45], align)
    assert [c["passed"] for c in weak] == [False, True]
    # one seed not lowered enough
    one = local_rule_checks([1.0, 1.0], [0.1, 0.6], [0.9, 0.9], align)
    assert not one[0]["passed"]
    # one rule below its null on one seed
    bad = local_rule_checks([1.0], [0.1], [0.9], {"W": ([0.6], [0.05]), "Z": ([0.3], [0.4])})
    assert [c["passed"] for c in bad] == [True, False]
