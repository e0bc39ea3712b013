"""The verdict criteria of ``gradient-alignment`` (R9) on synthetic numbers and the profiles'
settings."""

from __future__ import annotations

import numpy as np
import pytest

from nmrnn.experiments.alignment import PROFILES, AlignmentSettings, alignment_checks, run_spec
from nmrnn.experiments.registry import verdict_of

D = 128**2  # null sd 1/128 = 0.0078


def batches(mean, spread=0.01, n=8, seed=0):
    """``n`` per-batch mean cosines with the given mean and spread (exactly)."""
    x = np.random.default_rng(seed).normal(size=n)
    x = (x - x.mean()) / x.std(ddof=1)
    return mean + spread * x


def passed(checks):
    return [c["passed"] for c in checks]


def test_all_criteria_pass_on_paper_like_numbers():
    checks = alignment_checks(batches(0.14), batches(0.0, seed=1), batches(0.135, seed=2),
                              np.array([0.001, -0.004, 0.0, 0.01]), dim=D)
    assert passed(checks) == [True, True, True]
    assert verdict_of(checks) == "reproduced"
    assert checks[0]["value"]["z"] == pytest.approx(0.14 * 128)


def test_aligned_fails_below_the_z_threshold_or_with_a_wide_spread():
    # z = 0.02 * 128 = 2.56 < 3, although tightly measured
    weak = alignment_checks(batches(0.02, 0.001), batches(0.0, seed=1), batches(0.02, 0.001, seed=2), [0.0], dim=D)
    assert passed(weak)[0] is False
    # z = 0.05 * 128 = 6.4 >= 3, but mean - 3 SE < 0 (SE = 0.1 / sqrt(8) = 0.035)
    noisy = alignment_checks(batches(0.05, 0.1), batches(0.0, seed=1), batches(0.05, 0.1, seed=2), [0.0], dim=D)
    assert passed(noisy)[0] is False
    assert noisy[0]["value"]["z"] >= 3 and noisy[0]["value"]["lower_bound"] < 0
    # the same mean with a small spread passes
    tight = alignment_checks(batches(0.05, 0.01), batches(0.0, seed=1), batches(0.05, 0.01, seed=2), [0.0], dim=D)
    assert passed(tight)[0] is True
    negative = alignment_checks(batches(-0.14), batches(0.0, seed=1), batches(-0.14, seed=2), [0.0], dim=D)
    assert passed(negative)[:2] == [False, False]


def test_learned_needs_the_margin_and_its_standard_error():
    # aligned from the start: late - initial = 0.01 < 3 / 128
    innate = alignment_checks(batches(0.14), batches(0.13, seed=1), batches(0.14, seed=2), [0.0], dim=D)
    assert passed(innate) == [True, False, True]
    # difference 0.05 (6.4 null sd) but SE of the difference ~ 0.05: not clear of 3 SE
    noisy = alignment_checks(batches(0.14), batches(0.0, 0.1, seed=1), batches(0.05, 0.1, seed=2), [0.0], dim=D)
    assert passed(noisy)[1] is False
    assert noisy[1]["value"]["difference_null_sd"] > 3
    clear = alignment_checks(batches(0.14), batches(0.0, 0.01, seed=1), batches(0.05, 0.01, seed=2), [0.0], dim=D)
    assert passed(clear)[1] is True


def test_control_fails_when_any_kept_point_leaves_the_null_band():
    ok = [0.0, 0.02, -0.02]  # |z| = 2.56
    assert passed(alignment_checks(batches(0.14), batches(0.0), batches(0.14), ok, dim=D))[2] is True
    bad = [0.0, 0.025, -0.01]  # z = 3.2 at one point
    checks = alignment_checks(batches(0.14), batches(0.0), batches(0.14), bad, dim=D)
    assert passed(checks) == [True, True, False]
    assert checks[2]["value"]["max_abs_z"] == pytest.approx(3.2)
    assert verdict_of(checks) == "not reproduced"


def test_too_small_a_profile_is_undecided():
    checks = alignment_checks(batches(0.14), batches(0.0), batches(0.14), [0.0], dim=D, decided=False)
    assert all(c.get("decided") is False and not c["passed"] for c in checks)
    assert verdict_of(checks) == "undecided"
    assert not PROFILES["smoke"].decides
    assert PROFILES["quick"].decides and PROFILES["paper"].decides
    assert PROFILES["paper"].n_hidden == 128 and PROFILES["paper"].n_nm == 4 and PROFILES["paper"].window == 100


def test_settings_refuse_records_off_the_checkpoint_grid():
    with pytest.raises(ValueError, match="must split into"):
        AlignmentSettings(n_hidden=8, updates=1000, records=3)
    with pytest.raises(ValueError, match="must split into"):
        AlignmentSettings(n_hidden=8, updates=1000, records=4, steps_per_call=100)  # 250 steps per record
    assert AlignmentSettings(n_hidden=8, updates=1000, records=5).record_every == 200


def test_the_run_keeps_a_model_at_every_record_point():
    s = PROFILES["quick"]
    spec = run_spec(s, seed=0)
    assert spec.train.keep_every == spec.train.checkpoint_every == s.record_every
    assert spec.train.total_steps == s.updates and spec.train.batch_size == 16
    assert spec.model == "enmrnn" and spec.task == "sine" and spec.model_options["n_nm"] == 4
