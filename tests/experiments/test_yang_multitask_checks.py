"""R11's checks and statistics on synthetic numbers: every clause passes, fails and is undecided
where it should; the McNemar test, the timescale separation and its bootstrap, and the paired
decoding give their known answers; the models have the stated sizes."""

import json
import math
from dataclasses import replace

import jax.random as jr
import numpy as np
import pytest

from nmrnn.experiments.yang_multitask import (
    DECODE_MARGIN,
    E_NM,
    E_NM_SPATIAL,
    PROFILES,
    R11_PARAMETER_COUNT,
    VANILLA,
    _search_key,
    decoding_comparison,
    first_per_rule,
    hyperparameters,
    mcnemar_greater,
    model_entries,
    perf_by_rule,
    separation,
    subset_trials,
    sweep_specs,
    task_options,
    timescale_comparison,
    yang_checks,
)
from nmrnn.models import count_for, make_model, simulate
from nmrnn.tasks import make_task


def _seed(perf=0.9, ct_p=0.001, ct_init_p=0.001, ct_mean=0.6, ct_init=0.45, sep=6.0, sep_p=0.01,
          acc=0.9, chance=0.05, dec_p=0.005, init_acc=0.7, mcn=0.001):
    return {"mean_perf": perf,
            "cell_types": {"mean": ct_mean, "null_mean": 0.45, "p": ct_p, "init_mean": ct_init, "init_p": ct_init_p},
            "timescales": {"separation": sep, "init_separation": 1.4, "p": sep_p},
            "decoding": {"accuracy": acc, "chance": chance, "p": dec_p, "init_accuracy": init_acc, "p_vs_init": mcn}}


def _by_name(checks):
    return {c["name"]: c for c in checks}


CT, TS, DEC, PERF = ("R becomes one-hot (cell types)", "NM timescales separate", "the rule is decodable from n",
                     "the e-nmRNN performs the 20 tasks")


def test_every_check_passes_on_seeds_that_show_the_claim():
    checks, facts = yang_checks([_seed(), _seed(perf=0.85)])
    assert [c["name"] for c in checks] == [CT, TS, DEC, PERF]
    assert all(c["passed"] and c.get("decided", True) for c in checks), checks
    assert facts == {"seeds": 2, "seeds_learned": 2}


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"ct_p": 0.2}, CT),  # not above the row-shuffle null
        ({"ct_init_p": 0.2}, CT),  # not above the initial R
        ({"ct_mean": 0.44}, CT),  # below the initial mean
        ({"sep": 1.9}, TS),  # separated less than 2x
        ({"sep": math.nan}, TS),  # undefined
        ({"sep_p": 0.06}, TS),  # not above the initial network's
        ({"dec_p": 0.08}, DEC),  # not above the shuffled-label null
        ({"acc": 0.05 + DECODE_MARGIN - 0.01, "init_acc": 0.1}, DEC),  # too close to chance
        ({"mcn": 0.3}, DEC),  # the untrained network decodes as well
        ({"perf": 0.79}, PERF),
    ],
)
def test_each_clause_fails_on_its_own(change, name):
    checks = _by_name(yang_checks([_seed(), _seed(**change)])[0])
    assert not checks[name]["passed"] and checks[name].get("decided", True), checks[name]
    assert all(c["passed"] for n, c in checks.items() if n != name)


def test_unlearned_seeds_leave_a_b_c_undecided_and_are_not_judged():
    checks = _by_name(yang_checks([_seed(perf=0.3, ct_p=0.9, sep=1.0, dec_p=0.9)], paper_budget=True)[0])
    for name in (CT, TS, DEC):
        assert checks[name].get("decided") is False and not checks[name]["passed"]
    assert checks[PERF].get("decided", True) and not checks[PERF]["passed"]  # at the paper's budget a fail counts
    # a seed below the learning threshold is left out of (a)-(c) when another learned
    checks, facts = yang_checks([_seed(), _seed(perf=0.4, ct_p=0.9, sep=1.0, mcn=0.9)])
    by = _by_name(checks)
    assert facts["seeds_learned"] == 1 and all(by[n]["passed"] for n in (CT, TS, DEC))
    assert not by[PERF]["passed"]


def test_budget_and_smoke_decide_what_they_can():
    # below the paper's budget a failed performance is undecided, a pass counts
    low = _by_name(yang_checks([_seed(perf=0.6)], paper_budget=False)[0])
    assert low[PERF].get("decided") is False and all(low[n]["passed"] for n in (CT, TS, DEC))
    high = _by_name(yang_checks([_seed(perf=0.95)], paper_budget=False)[0])
    assert high[PERF]["passed"] and high[PERF].get("decided", True)
    assert all(c.get("decided") is False and not c["passed"] for c in yang_checks([_seed()], can_decide=False)[0])


def test_mcnemar_is_the_exact_binomial_tail_of_the_discordant_pairs():
    rng = np.random.default_rng(0)
    a = rng.random(60) < 0.8
    b = rng.random(60) < 0.6
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    brute = sum(math.comb(n, k) for k in range(only_a, n + 1)) / 2**n
    assert mcnemar_greater(a, b) == pytest.approx(brute, rel=1e-12)
    from scipy.stats import binomtest

    assert mcnemar_greater(a, b) == pytest.approx(binomtest(only_a, n, 0.5, alternative="greater").pvalue)
    assert mcnemar_greater(a, a) == 1.0  # no discordant item
    assert mcnemar_greater([True] * 10, [False] * 10) == pytest.approx(2**-10)
    assert mcnemar_greater([False] * 10, [True] * 10) == 1.0
    with pytest.raises(ValueError, match="equal 1-D arrays"):
        mcnemar_greater([True], [True, False])


def test_separation_counts_censored_nms_at_the_window_and_drops_flat_ones():
    assert separation([2.0, 4.0, 16.0], 50) == 8.0
    assert separation([2.0, np.inf], 50) == 25.0  # non-decaying: a lower bound at the window
    assert separation([2.0, np.nan, 0.0, 6.0], 50) == 3.0
    assert math.isnan(separation([2.0, np.nan], 50))


def _ar1(rng, taus, trials=150, T=200):
    a = np.exp(-1.0 / np.asarray(taus))
    x = np.zeros((trials, T, len(taus)))
    x[:, 0] = rng.normal(size=(trials, len(taus))) / np.sqrt(1 - a**2)
    for t in range(1, T):
        x[:, t] = a * x[:, t - 1] + rng.normal(size=(trials, len(taus)))
    return x


def test_timescale_comparison_recovers_planted_time_constants_and_their_order():
    """AR(1) traces x_t = a x_{t-1} + noise have autocorrelation exp(-l / tau), a = exp(-1/tau)."""
    rng = np.random.default_rng(1)
    wide, narrow = _ar1(rng, (2.0, 16.0)), _ar1(rng, (6.0, 7.0))
    L = np.full(len(wide), 200)
    res = timescale_comparison(wide, narrow, L, n_boot=40, seed=0)
    np.testing.assert_allclose(res["tau"], [2.0, 16.0], rtol=0.15)
    np.testing.assert_allclose(res["init_tau"], [6.0, 7.0], rtol=0.15)
    assert res["separation"] == pytest.approx(8.0, rel=0.25) and res["init_separation"] < 1.5
    assert res["p"] < 0.05 and res["max_lag"] == 100
    swapped = timescale_comparison(narrow, wide, L, n_boot=40, seed=0)  # negative control
    assert swapped["p"] > 0.5


def test_decoding_comparison_on_planted_features():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(5), 30)
    centres = rng.normal(size=(5, 4)) * 3
    X = centres[y] + rng.normal(size=(150, 4)) * 0.3  # separable
    X0 = rng.normal(size=(150, 4))  # carries nothing
    res = decoding_comparison(X, X0, y, n_permutations=30, seed=0)
    assert res["accuracy"] > 0.95 and res["init_accuracy"] < 0.45 and res["chance"] == pytest.approx(0.2)
    assert res["p"] == pytest.approx(1 / 31) and res["p_vs_init"] < 1e-10
    same = decoding_comparison(X0, X0, y, n_permutations=5, seed=0)  # negative control: same features
    assert same["accuracy"] == same["init_accuracy"] and same["p_vs_init"] == 1.0
    # the paired predictions are decode_context's (same folds): a strictly better copy is detected
    from nmrnn.analysis.interpret import decode_context

    assert decode_context(X, y, n_permutations=0, seed=0).accuracy == res["accuracy"]


def test_models_have_the_stated_sizes_and_hyperparameters():
    s = replace(PROFILES["paper"], lr=1e-3)
    hp = {label: {"lr": 1e-3, "weight_l2": 1e-6, "tau_n": 20.0} for label in s.models}
    entries = {e.label: e for e in model_entries(s, hp)}
    assert list(entries) == [E_NM, E_NM_SPATIAL, VANILLA]
    counts = {k: count_for(e.model, n_in=85, n_out=33, n_hidden=e.n_hidden, **e.options) for k, e in entries.items()}
    assert counts == {E_NM: R11_PARAMETER_COUNT, E_NM_SPATIAL: R11_PARAMETER_COUNT, VANILLA: 76_865}
    assert entries[VANILLA].n_hidden == 224 and "tau_n" not in entries[VANILLA].options
    assert entries[E_NM].options["tau_n"] == 20.0 and entries[E_NM_SPATIAL].options["dale"] is True
    assert entries[E_NM].train["batch_size"] == 32 and entries[E_NM].train["optimizer"] == "adam"
    opts = task_options(s)
    assert opts["rule_prob_map"] == {"contextdm1": 5.0, "contextdm2": 5.0} and len(opts["rules"]) == 20


def test_search_covers_table_4_and_is_reused_when_stored(tmp_path):
    s = replace(PROFILES["smoke"], models=(E_NM, VANILLA), lr="tune", sweep_trials=3, sweep_steps=10)
    specs = sweep_specs(s)
    ranges = {label: {p.target: (p.low, p.high, p.log) for p in spec.params} for label, spec in specs.items()}
    assert ranges[E_NM] == {"train.lr": (5e-5, 5e-3, True), "train.weight_l2": (1e-7, 1e-5, True),
                            "model.tau_n": (1.0, 100.0, True)}
    assert ranges[VANILLA] == {"train.lr": (5e-5, 5e-3, True), "train.weight_l2": (1e-7, 1e-5, True)}
    assert specs[E_NM].metric == "test/perf" and specs[E_NM].direction == "maximize"
    stored = {E_NM: {"lr": 2e-3, "weight_l2": 3e-7, "tau_n": 40.0}, VANILLA: {"lr": 1e-3, "weight_l2": 1e-6, "tau_n": 10.0}}
    (tmp_path / "hyperparameters.json").write_text(json.dumps({"hp": stored, "settings": _search_key(s)}))
    hp, source = hyperparameters(s, tmp_path, 0)
    assert hp == stored and "TPE search of this folder" in source
    fixed, source = hyperparameters(PROFILES["quick"], tmp_path, 0)
    assert fixed[E_NM] == {"lr": 1e-3, "weight_l2": 1e-6, "tau_n": 10.0} and "fixed" in source


def test_percent_correct_in_chunks_equals_one_pass_and_subsets_are_even():
    task = make_task("yang_multitask", rules=["fdgo", "dm1"])
    batch = task.sample_each(jr.PRNGKey(0), 11)
    model = make_model("vanilla", n_in=85, n_out=33, n_hidden=6, key=jr.PRNGKey(1))
    whole = task.evaluate(simulate(model, batch.inputs).outputs, batch)
    chunked = perf_by_rule(model, task, batch, chunk=4)
    assert 0 < whole["fdgo/perf"] < 1 or 0 < whole["dm1/perf"] < 1  # some trials right, some wrong
    assert chunked["perf"] == pytest.approx(whole["perf"])
    assert chunked["fdgo"] == pytest.approx(whole["fdgo/perf"]) and chunked["dm1"] == pytest.approx(whole["dm1/perf"])
    first = first_per_rule(batch, 3)
    np.testing.assert_array_equal(np.asarray(first.info["task_id"]), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(first.inputs[3]), np.asarray(batch.inputs[11]))

    from nmrnn.analysis.interpret import YangTrials

    trials = YangTrials(("fdgo", "dm1"), (np.arange(40)[:, None, None] * np.ones((1, 2, 1)), np.zeros((5, 2, 1))),
                        (np.zeros((40, 2, 1)), np.zeros((5, 2, 1))),
                        ({"t_end": np.arange(40)}, {"t_end": np.arange(5)}))
    sub = subset_trials(trials, 4)
    np.testing.assert_array_equal(sub.info[0]["t_end"], [0, 13, 26, 39])
    np.testing.assert_array_equal(sub.info[1]["t_end"], [0, 1, 3, 4])
