"""R8's measurements and checks: each check passes, fails and is undecided where it should on
synthetic numbers; the spread statistic against SciPy's bootstrap and known answers; the decoding
of a linear network against its known answer; bad settings refused before anything trains."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

from nmrnn.experiments import composition as r8
from nmrnn.experiments.composition import (
    E_NM,
    E_NM_SPATIAL,
    GATED,
    MIN_TRIALS,
    MODEL_LABELS,
    PROFILES,
    CompositionSettings,
    best_index,
    composition_checks,
    iqr,
    robustness,
    sized_entries,
    spread_ratio,
)

K_GRID = (1, 4, 8, 16)


def _runs(values):
    return [{"best_ve": float(v)} for v in values]


def _population(enm=(0.80, 0.82, 0.84, 0.86), spatial=(0.90, 0.91, 0.92, 0.93), gru=(0.82, 0.83, 0.84, 0.85),
                lstm=(0.70, 0.71, 0.72, 0.73), ks=K_GRID, enm_shift_other_k=0.0):
    """The same per-seed numbers at every K (the e-nmRNN's shifted by ``enm_shift_other_k`` away
    from K = 8)."""
    pop = {}
    for label, vals in ((E_NM, enm), (E_NM_SPATIAL, spatial), ("GRU", gru), ("LSTM", lstm)):
        pop[label] = {k: _runs(np.asarray(vals) + (enm_shift_other_k if label == E_NM and k != 8 else 0.0)) for k in ks}
    return pop


def _trials(values, start=0, failed=0):
    rows = [{"number": start + i, "state": "COMPLETE", "value": float(v), "params": {}} for i, v in enumerate(values)]
    rows += [{"number": start + len(values) + i, "state": "FAIL", "value": None, "params": {}} for i in range(failed)]
    return rows


def _searches(enm_sd=0.02, gated_sd=0.2, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {E_NM: _trials(0.6 + enm_sd * rng.standard_normal(n)),
            **{g: _trials(0.5 + gated_sd * rng.standard_normal(n)) for g in GATED}}


def _check(checks, fragment):
    found = [c for c in checks if fragment in c["name"]]
    assert len(found) == 1, [c["name"] for c in checks]
    return found[0]


# ----------------------------------------------------------------------------------------------
# the checks on synthetic numbers
# ----------------------------------------------------------------------------------------------


def test_every_check_passes_on_a_population_that_shows_the_claim():
    checks, facts = composition_checks(_population(), _searches(), 8)
    assert [c["passed"] for c in checks] == [True] * 5, [c for c in checks if not c["passed"]]
    assert all(c.get("decided", True) for c in checks)
    assert _check(checks, "gated models at K")["value"]["best gated"] == "GRU"
    assert facts["median_best_ve"][E_NM]["8"] == pytest.approx(0.83)
    assert facts["robustness"][E_NM]["completed"] == 40


def test_an_enmrnn_worse_than_the_tolerance_fails_matching():
    # the GRU beats it by 0.1 > TOLERANCE at every seed
    checks = composition_checks(_population(enm=(0.70, 0.72, 0.74, 0.76)), _searches(), 8)[0]
    for c in (_check(checks, "gated models at K"), _check(checks, "over K")):
        assert c.get("decided", True) and not c["passed"]
    # within the tolerance (0.03 below the GRU at every seed) it passes: "matches", not "beats"
    checks = composition_checks(_population(enm=(0.79, 0.80, 0.81, 0.82)), _searches(), 8)[0]
    assert _check(checks, "gated models at K")["passed"]


def test_matching_at_k8_and_over_k_are_separate_clauses():
    checks = composition_checks(_population(enm_shift_other_k=-0.3), _searches(), 8)[0]
    assert _check(checks, "gated models at K")["passed"]
    over = _check(checks, "over K")
    assert over.get("decided", True) and not over["passed"]


def test_the_best_gated_model_is_the_reference():
    # the LSTM is now the better gated model: the e-nmRNN must match it, and does not
    checks = composition_checks(_population(lstm=(0.95, 0.96, 0.97, 0.98)), _searches(), 8)[0]
    c = _check(checks, "gated models at K")
    assert c["value"]["best gated"] == "LSTM" and not c["passed"] and c.get("decided", True)


def test_robustness_fails_when_the_enmrnn_spreads_as_much_or_more():
    checks = composition_checks(_population(), _searches(enm_sd=0.3, gated_sd=0.1), 8)[0]
    for g in GATED:
        c = _check(checks, f"than the {g}")
        assert c.get("decided", True) and not c["passed"] and c["value"]["upper bound"] > 1
    # equal spreads: the bound is above 1, not shown
    checks = composition_checks(_population(), _searches(enm_sd=0.1, gated_sd=0.1, n=60), 8)[0]
    assert not _check(checks, "than the GRU")["passed"]


def test_spatial_embedding_fails_when_no_better():
    checks = composition_checks(_population(spatial=(0.70, 0.71, 0.72, 0.73)), _searches(), 8)[0]
    c = _check(checks, "spatial")
    assert c.get("decided", True) and not c["passed"]


def test_too_few_seeds_trials_or_ks_or_smoke_is_undecided():
    pop = _population(enm=(0.8, 0.82, 0.84), spatial=(0.9, 0.91, 0.92), gru=(0.82, 0.83, 0.84), lstm=(0.7, 0.71, 0.72))
    checks = composition_checks(pop, _searches(), 8)[0]
    ranks = [_check(checks, "gated models at K"), _check(checks, "over K"), _check(checks, "spatial")]
    assert all(c.get("decided") is False and not c["passed"] for c in ranks)  # 3 seeds: p >= 0.05
    robust = [_check(checks, f"than the {g}") for g in GATED]
    assert all(c.get("decided", True) and c["passed"] for c in robust)  # the search is large enough
    few = _searches(n=MIN_TRIALS - 1)
    checks = composition_checks(_population(), few, 8)[0]
    assert all(_check(checks, f"than the {g}").get("decided") is False for g in GATED)
    checks = composition_checks(_population(), None, 8)[0]  # no search at all
    assert all(_check(checks, f"than the {g}").get("decided") is False for g in GATED)
    checks = composition_checks(_population(ks=(8,)), _searches(), 8)[0]  # one K: nothing "over K"
    assert _check(checks, "over K").get("decided") is False and _check(checks, "gated models at K")["passed"]
    assert all(c.get("decided") is False for c in composition_checks(_population(), _searches(), 8, can_decide=False)[0])


def test_diverged_trials_are_counted_not_used():
    rows = _trials([0.1, 0.5, 0.9], failed=2)
    r = robustness(rows)
    assert r["completed"] == 3 and r["failed"] == 2 and r["values"] == [0.1, 0.5, 0.9]
    assert r["iqr"] == pytest.approx(0.4) and r["best"] == 0.9 and r["median"] == 0.5
    assert r["near_best"] == pytest.approx(1 / 3)
    # the start-up IQR reads the first STARTUP_TRIALS trials by number only
    rows = _trials([0.0, 1.0] + [0.5] * 20)
    r = robustness(rows)
    assert r["iqr_startup"] == pytest.approx(iqr([0.0, 1.0] + [0.5] * 8)) and r["iqr"] == pytest.approx(0.0)


# ----------------------------------------------------------------------------------------------
# the statistics against references
# ----------------------------------------------------------------------------------------------


def test_iqr_matches_scipy():
    x = np.random.default_rng(3).standard_normal(37)
    assert iqr(x) == pytest.approx(scipy.stats.iqr(x))


def test_spread_ratio_known_answers():
    rng = np.random.default_rng(1)
    a, b = 0.5 * rng.standard_normal(4000), rng.standard_normal(4000)
    r = spread_ratio(a, b, n_boot=500)
    assert r["ratio"] == pytest.approx(0.5, rel=0.05)
    assert r["lower"] < r["ratio"] < r["upper"] < 0.56
    same = spread_ratio(rng.standard_normal(4000), rng.standard_normal(4000), n_boot=500)
    assert same["lower"] < 1 < same["upper"]
    assert spread_ratio(a, b, n_boot=300, seed=5) == spread_ratio(a, b, n_boot=300, seed=5)  # seeded
    with pytest.raises(ValueError, match="at least 2"):
        spread_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        spread_ratio([1.0, np.nan], [1.0, 2.0])


def test_spread_ratio_bound_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(2)
    a, b = rng.gamma(2.0, 0.1, 30), rng.gamma(2.0, 0.25, 30)
    ours = spread_ratio(a, b, n_boot=20_000, seed=0)
    ref = scipy.stats.bootstrap((a, b), lambda x, y, axis=-1: scipy.stats.iqr(x, axis=axis) / scipy.stats.iqr(y, axis=axis),
                                vectorized=True, paired=False, confidence_level=0.90, n_resamples=20_000,
                                method="percentile", random_state=np.random.default_rng(9))
    # a two-sided 90% interval's ends are the one-sided 95% bounds
    assert ours["upper"] == pytest.approx(ref.confidence_interval.high, rel=0.04)
    assert ours["lower"] == pytest.approx(ref.confidence_interval.low, rel=0.04)


def test_best_index_skips_non_finite_values():
    assert best_index([0.1, math.nan, 0.5, 0.5, -1.0]) == 2
    assert best_index([math.nan, math.nan]) == 0


# ----------------------------------------------------------------------------------------------
# measurements on models with known answers
# ----------------------------------------------------------------------------------------------


def _task(k=4):
    from nmrnn.tasks.composition import Composition

    return Composition(n_basis=k, input_steps=20, output_steps=10, n_train=64, n_test=32)


def test_decoding_of_a_linear_network_is_exact_and_fails_without_input():
    from nmrnn.models import make_model

    task = _task()
    lin = make_model("vanilla", n_in=1, n_out=1, n_hidden=24, key=jr.PRNGKey(0), activation="identity", tau=2.0, gain=0.5)
    d = r8.decoding(lin, task)
    assert d["hidden"] > 0.999 and d["nm"] is None  # the state is a linear map of the coefficients
    deaf = eqx.tree_at(lambda m: m.B, lin, 0 * lin.B)  # no input: nothing to decode
    assert r8.decoding(deaf, task)["hidden"] < 0.01
    enm = make_model("enmrnn", n_in=1, n_out=1, n_hidden=8, key=jr.PRNGKey(1), n_nm=2, t_rank=2, dt=0.1, tau_r=1.0, tau_n=1.0)
    assert isinstance(r8.decoding(enm, task)["nm"], float)


def test_validation_curve_is_the_variance_explained_of_each_model():
    from nmrnn.models import make_model, simulate

    task = _task()
    batch = task.test_batch()
    models = [make_model("gru", n_in=1, n_out=1, n_hidden=6, key=jr.PRNGKey(i)) for i in range(2)]
    got = r8.validation_curve(models, batch)
    t, m = np.asarray(batch.targets, float), np.asarray(batch.mask, float)
    for value, model in zip(got, models, strict=True):
        y = np.asarray(simulate(model, batch.inputs).outputs, float)
        mean = (m * t).sum() / m.sum()
        ref = 1 - (m * (y - t) ** 2).sum() / (m * (t - mean) ** 2).sum()
        assert value == pytest.approx(ref, rel=1e-4, abs=1e-5)
    assert len(set(got)) == 2


# ----------------------------------------------------------------------------------------------
# sizes, settings, bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_models_are_the_papers_sizes_and_matched_to_the_enmrnn(profile):
    s = PROFILES[profile]
    sized = {e.label: (n, c) for e, n, c in sized_entries(s)}
    assert list(sized) == list(MODEL_LABELS)
    target = sized[E_NM][1]
    assert sized[E_NM_SPATIAL][1] == target
    assert sized["GRU"][0] == s.n_hidden and sized["vanilla RNN"][0] == 2 * s.n_hidden
    from nmrnn.models import count_for, hidden_multiple

    entries = {e.label: e for e, _, _ in sized_entries(s)}
    for label in ("LSTM", "NM-RNN", "Transformer", "HiPPO-LegT", "coRNN"):  # the smallest size that reaches it
        e, (n, c) = entries[label], sized[label]
        step = hidden_multiple(e.model, **e.options)
        assert c >= target and count_for(e.model, n_in=1, n_out=1, n_hidden=n - step, **e.options) < target, label
        assert c <= 1.15 * target, label
    if profile == "paper":  # the paper's sizes: e-nmRNN 128 (4 NMs), GRU 128, vanilla 256, ~50k
        assert (sized[E_NM][0], sized["GRU"][0], sized["vanilla RNN"][0]) == (128, 128, 256)
        assert sized[E_NM][1] == 50_321 and abs(sized["GRU"][1] - 50_000) < 1000
        assert count_for("enmrnn", n_in=1, n_out=1, n_hidden=128, n_nm=4) == 83_089  # the full T (docstring)


@pytest.mark.parametrize(("change", "msg"), [
    ({"k_values": (0, 8)}, r"integer in 1..20"),
    ({"k_values": (8, 21)}, r"integer in 1..20"),
    ({"k_values": (8, 8)}, "distinct"),
    ({"k_values": (1, 4)}, "k_tuned"),
    ({"lr_range": (1e-2, 1e-4)}, "0 < low < high"),
    ({"weight_l2_range": (0.0, 1e-4)}, "0 < low < high"),
    ({"spatial_grid": (4, 4, 4)}, "holds 64 neurons"),
    ({"models": (E_NM, "GRU", "LSTM")}, "must include"),
    ({"models": (*MODEL_LABELS, "ESN")}, "unknown model"),
    ({"hyper": "guess"}, "hyper must be"),
    ({"hyper": {"lr": 1e-3}}, "fixed hyperparameters"),
    ({"seeds": 0}, "positive integer"),
])
def test_bad_settings_are_refused_on_construction(change, msg):
    with pytest.raises(ValueError, match=msg):
        replace(PROFILES["quick"], **change)


def _small(**change):
    base = dict(n_hidden=6, t_rank=2, n_nm=2, spatial_grid=(3, 2, 1), k_values=(2,), k_tuned=2, epochs=2, seeds=1,
                keep_every_epochs=1, hyper={"lr": 1e-3, "weight_l2": 1e-5, "tau_n": 1.0}, sweep_trials=2, sweep_epochs=1,
                models=(E_NM, E_NM_SPATIAL, "GRU", "LSTM"), n_train=16, n_test=16, input_steps=20, output_steps=10)
    return CompositionSettings(**{**base, **change})


@pytest.mark.parametrize(("change", "msg"), [
    # K above what the basis can hold: 2 harmonics give 4 independent functions per channel
    ({"k_values": (2, 6), "n_harmonics": 2}, r"K=6 is refused: .*not \(well\) linearly independent"),
    # tau_n below the e-nmRNN's Euler step
    ({"tau_n_range": (0.05, 10.0)}, r"search of the e-nmRNN is refused: .*tau_n"),
    ({"hyper": {"lr": 1e-3, "weight_l2": 1e-5, "tau_n": 0.01}}, r"fixed hyperparameters of the e-nmRNN are refused: .*tau_n"),
    ({"hyper": {"lr": -1.0, "weight_l2": 1e-5}}, r"fixed hyperparameters of the e-nmRNN are refused: .*lr"),
])
def test_out_of_range_input_is_refused_before_training(tmp_path, change, msg):
    s = _small(**change)
    with pytest.raises(ValueError, match=msg):
        r8.run(tmp_path / "out", "smoke", 0, settings=s)
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_hyperparameter_sources(tmp_path):
    s = _small()
    hyper, source, trials = r8.hyperparameters(s, "smoke", tmp_path, 0, None)
    assert trials is None and "fixed" in source and hyper["GRU"] == {"lr": 1e-3, "weight_l2": 1e-5, "tau_n": 1.0}
    with pytest.raises(ValueError, match="no stored search"):
        r8.hyperparameters(replace(s, hyper="stored"), "smoke", tmp_path, 0, None)
    entries = {e.label: e for e in r8.model_entries(s, {k: {"lr": 2e-3, "weight_l2": 3e-6, "tau_n": 0.5} for k in s.models})}
    assert entries[E_NM].options["tau_n"] == 0.5 and entries[E_NM_SPATIAL].options["tau_n"] == 0.5
    assert "tau_n" not in entries["GRU"].options and entries["GRU"].train["lr"] == 2e-3
    assert entries["LSTM"].train["weight_l2"] == 3e-6 and entries["LSTM"].train["fixed_batch"] is True


def test_the_stored_quick_search_matches_the_quick_profile():
    stored = json.loads(r8.STORED.read_text())["quick"]
    s = PROFILES["quick"]
    assert r8._matches(stored, s)
    assert stored["settings"]["sweep_trials"] == s.sweep_trials
    for label in MODEL_LABELS:
        b = stored["best"][label]
        assert s.lr_range[0] <= b["lr"] <= s.lr_range[1] and s.weight_l2_range[0] <= b["weight_l2"] <= s.weight_l2_range[1]
        assert (b["tau_n"] is not None) == label.startswith("e-nmRNN")
        assert len(stored["trials"][label]) == s.sweep_trials
