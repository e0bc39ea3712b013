"""R7's measurements and checks on synthetic numbers: each check passes, fails and is undecided
where it should, and the oscillation and epiphany measures give their known answers."""

import math

import numpy as np
import pytest

from nmrnn.experiments.sine_meta import (
    BASELINES,
    E_NM,
    E_NM_SPATIAL,
    PROFILES,
    epiphany,
    model_entries,
    oscillation_of,
    sine_meta_checks,
)

BUDGET = 4000


def _run(updates, reached=True, rest=0.01, ratio=0.9, drop=1500.0, onset=1600.0):
    return {"updates_to_threshold": updates, "reached": reached, "final_rest": rest, "final_ratio": ratio,
            "loss_drop": drop, "oscillation_onset": onset}


def _population(enm=(1000, 1100, 1200, 1300), spatial=(800, 850, 900, 950), base=(3000, 3100, 3200, 4001), **kw):
    pop = {E_NM: [_run(u, **kw) for u in enm], E_NM_SPATIAL: [_run(u) for u in spatial]}
    pop.update({b: [_run(u) for u in base] for b in BASELINES})
    return pop


def _by_name(checks):
    return {c["name"]: c for c in checks}


def test_every_check_passes_on_a_population_that_shows_the_claim():
    checks, facts = sine_meta_checks(_population(), BUDGET)
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    assert facts["median_updates_to_threshold"][E_NM] == 1150


def test_a_baseline_as_fast_as_the_enmrnn_fails_its_check():
    pop = _population()
    pop["GRU"] = [_run(u) for u in (900, 950, 1000, 1050)]
    checks = _by_name(sine_meta_checks(pop, BUDGET)[0])
    assert not checks["e-nmRNN needs fewer updates than the GRU"]["passed"]
    assert checks["e-nmRNN needs fewer updates than the GRU"].get("decided", True)
    assert checks["e-nmRNN needs fewer updates than the LSTM"]["passed"]


def test_spatial_slower_than_plain_fails():
    checks = _by_name(sine_meta_checks(_population(spatial=(1500, 1600, 1700, 1800)), BUDGET)[0])
    assert not checks["spatial embedding speeds up the e-nmRNN"]["passed"]


def test_hopf_and_epiphany_fail_on_their_own():
    checks = _by_name(sine_meta_checks(_population(rest=0.2), BUDGET)[0])
    assert not checks["trained e-nmRNN rests for A = 0 and oscillates for A > 0"]["passed"]
    checks = _by_name(sine_meta_checks(_population(ratio=0.3), BUDGET)[0])
    assert not checks["trained e-nmRNN rests for A = 0 and oscillates for A > 0"]["passed"]
    checks = _by_name(sine_meta_checks(_population(onset=2500.0), BUDGET)[0])  # 1000 apart > 400
    assert not checks["the loss drop coincides with the onset of oscillation"]["passed"]
    checks = _by_name(sine_meta_checks(_population(onset=None), BUDGET)[0])  # never oscillates
    assert not checks["the loss drop coincides with the onset of oscillation"]["passed"]


def test_too_few_seeds_or_no_learning_or_smoke_is_undecided():
    pop = _population(enm=(1000, 1100, 1200), spatial=(800, 850, 900), base=(3000, 3100, 3200))
    checks = sine_meta_checks(pop, BUDGET)[0]
    ranks = [c for c in checks if "updates" in c["name"] or "spatial" in c["name"]]
    assert ranks and all(c.get("decided") is False and not c["passed"] for c in ranks)  # 3 seeds: p >= 0.05
    checks = _by_name(sine_meta_checks(_population(enm=(4001,) * 4, reached=False), BUDGET)[0])
    assert checks["trained e-nmRNN rests for A = 0 and oscillates for A > 0"].get("decided") is False
    assert checks["the loss drop coincides with the onset of oscillation"].get("decided") is False
    assert all(c.get("decided") is False for c in sine_meta_checks(_population(), BUDGET, can_decide=False)[0])


def test_oscillation_measures_ratio_and_rest():
    t = np.linspace(0, 10, 100)
    amp = np.array([0.0, 0.0, 0.8, 1.0])
    target = amp[:, None] * np.sin(2 * t)[None]
    perfect = oscillation_of(target, target, amp)
    assert perfect["ratio"] == pytest.approx(1.0) and perfect["rest"] == pytest.approx(0.0) and perfect["loss"] == 0
    half = oscillation_of(0.5 * target + np.array([[0.3], [0.0], [0.0], [0.0]]), target, amp)
    assert half["ratio"] == pytest.approx(0.5) and half["rest"] == pytest.approx(0.0)  # an offset is not oscillation
    ringing = target.copy()
    ringing[0] = 0.1 * np.sin(2 * t)
    assert oscillation_of(ringing, target, amp)["rest"] == pytest.approx(0.5 * 0.1 * np.sin(2 * t[50:]).std())


def test_epiphany_onsets():
    steps = np.arange(0, 1100, 100)
    # an untrained network far above the plateau (0.08), the plateau, then the drop at 500
    loss = np.array([5.0, 0.08, 0.079, 0.078, 0.075, 0.02, 0.01, 0.008, 0.008, 0.008, 0.008])
    ratio = np.array([0.0, 0.0, 0.05, 0.1, 0.2, 0.7, 0.9, 0.95, 0.95, 0.95, 0.95])
    e = epiphany(steps, loss, ratio, plateau=0.08)
    # geometric midpoint of 0.08 and 0.008 is 0.0253: first reached at 500; half of 0.95 first at 500
    assert e == {"loss_drop": 500.0, "oscillation_onset": 500.0}
    assert epiphany(steps, loss, np.zeros_like(ratio), plateau=0.08)["oscillation_onset"] is None
    never = np.full_like(loss, 0.09)  # never below the plateau: no drop
    assert epiphany(steps, never, ratio, plateau=0.08)["loss_drop"] is None


def test_the_models_are_matched_to_the_enmrnn():
    from nmrnn.experiments.compare import resolve_sizes
    s = PROFILES["quick"]
    sized = resolve_sizes(model_entries(s), 3, 1)
    counts = {e.label: c for e, _, c in sized}
    assert counts[E_NM] == counts[E_NM_SPATIAL]
    assert all(counts[E_NM] <= c <= 1.1 * counts[E_NM] for c in counts.values())
    assert [e.label for e, _, _ in sized] == [E_NM, E_NM_SPATIAL, *BASELINES]
    assert math.prod(s.spatial_grid) == s.n_hidden
