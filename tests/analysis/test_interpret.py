"""The interpretation toolkit (nmrnn.analysis.interpret) on synthetic data with known answers.

Every check has a counterpart that must fail: one-hot vs uniform vs random release matrices,
processes of known time constants (and the biased fit the correction fixes), a decodable context vs
an independent one, planted task-variance clusters, planted modular vs random connectivity; plain
loops as independent references for the autocorrelation, the one-hotness and Yang's task variance.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.analysis import (
    autocorrelation,
    cell_type_specialisation,
    cluster_units,
    connectivity_modularity,
    cross_validated_score,
    decode_context,
    nm_timescales,
    one_hotness,
    release_matrix,
    split_states,
    task_variance,
    window_mean,
    yang_context_features,
    yang_task_variance,
    yang_trials,
)
from nmrnn.experiments.yang_multitask import R11_MODEL, R11_PARAMETER_COUNT
from nmrnn.models import ENMRNN, NMRNN, LeakyRNN, make_model, param_count, simulate
from nmrnn.tasks.yang import YangTask

# ---------------------------------------------------------------------------------------------
# cell types
# ---------------------------------------------------------------------------------------------


def one_hot_release(M, N, seed=0):
    rng = np.random.default_rng(seed)
    R = np.zeros((M, N))
    R[np.arange(N) % M, np.arange(N)] = rng.uniform(0.5, 2.0, N) * rng.choice([-1, 1], N)
    return R


def test_one_hotness_matches_a_plain_loop_and_its_bounds():
    rng = np.random.default_rng(1)
    R = rng.normal(size=(4, 30))
    R[:, 3] = 0.0  # a neuron that releases nothing
    ref = np.full(30, np.nan)
    for j in range(30):
        col = [abs(R[k, j]) for k in range(4)]
        if sum(col) > 0:
            ref[j] = max(col) / sum(col)
    h = one_hotness(R)
    np.testing.assert_allclose(h, ref, rtol=1e-12)
    assert np.isnan(h[3])
    finite = h[np.isfinite(h)]
    assert finite.min() >= 0.25 and finite.max() <= 1.0


def test_one_hot_release_is_specialised_uniform_is_not_and_random_follows_the_null():
    M, N = 4, 40
    one_hot = cell_type_specialisation(one_hot_release(M, N), n_null=200, seed=0)
    np.testing.assert_array_equal(one_hot.one_hotness, np.ones(N))
    assert one_hot.mean == 1.0 and one_hot.bounds == (0.25, 1.0)
    np.testing.assert_array_equal(one_hot.dominant, np.arange(N) % M)
    for k, group in enumerate(one_hot.groups):
        np.testing.assert_array_equal(group, np.arange(k, N, M))
    # the row-permutation null scatters each NM's releasing neurons over the columns
    assert one_hot.null_mean < 0.9 and one_hot.p == pytest.approx(1 / 201)
    assert one_hot.null_one_hotness.shape == (200, N) and np.nanmin(one_hot.null_one_hotness) < 1.0

    uniform = cell_type_specialisation(np.full((M, N), 0.7), n_null=50, seed=0)
    np.testing.assert_allclose(uniform.one_hotness, 1 / M)
    assert uniform.mean == pytest.approx(1 / M) and uniform.p == 1.0  # the null is the data

    # iid Gaussian entries: the null is exchangeable with the data, so no specialisation
    rng = np.random.default_rng(2)
    random = cell_type_specialisation(rng.normal(size=(M, 200)), n_null=200, seed=1)
    assert random.p > 0.05
    # ... and the mean matches a brute-force Monte Carlo of E[max|g| / sum|g|] for 4 Gaussians
    g = np.abs(np.random.default_rng(3).normal(size=(200_000, M)))
    expected = np.mean(g.max(axis=1) / g.sum(axis=1))
    assert random.mean == pytest.approx(expected, abs=0.02)
    assert random.null_mean == pytest.approx(expected, abs=0.01)


def test_cell_types_against_the_initialisation():
    M, N = 4, 40
    init = np.random.default_rng(4).normal(size=(M, N))
    trained = cell_type_specialisation(one_hot_release(M, N), init=init, n_null=20)
    assert trained.init_mean < 0.6 and trained.init_p < 1e-6
    unchanged = cell_type_specialisation(init, init=init, n_null=20)
    assert unchanged.init_p == 1.0
    np.testing.assert_array_equal(unchanged.init_one_hotness, unchanged.one_hotness)


def test_cell_types_of_models_read_the_release_hook_and_refuse_models_without_one():
    key = jr.PRNGKey(0)
    typed = ENMRNN(3, 12, 2, n_nm=4, cell_types=True, key=key)
    res = cell_type_specialisation(typed, init=ENMRNN(3, 12, 2, n_nm=4, key=key), n_null=20)
    np.testing.assert_allclose(res.one_hotness, 1.0)  # the release mask makes R one-hot
    np.testing.assert_array_equal(res.dominant, np.arange(12) % 4)  # neuron i releases NM i mod M
    free = ENMRNN(3, 12, 2, n_nm=4, key=key)
    np.testing.assert_array_equal(release_matrix(free), np.asarray(free.R))
    with pytest.raises(ValueError, match="no release matrix R"):
        cell_type_specialisation(NMRNN(3, 12, 2, n_nm=4, key=key))
    with pytest.raises(ValueError, match="no neuromodulators"):
        cell_type_specialisation(LeakyRNN(3, 12, 2, key=key))
    with pytest.raises(ValueError, match="release must be an"):
        cell_type_specialisation(np.ones(5))
    with pytest.raises(ValueError, match="init has shape"):
        cell_type_specialisation(np.ones((4, 5)), init=np.ones((4, 6)))


# ---------------------------------------------------------------------------------------------
# timescales
# ---------------------------------------------------------------------------------------------


def ar1(taus, trials, T, seed):
    """Stationary AR(1) processes with ACF exp(-l / tau) (unit variance), ``(trials, T, M)``."""
    rng = np.random.default_rng(seed)
    a = np.exp(-1.0 / np.asarray(taus, float))
    x = np.empty((trials, T, len(a)))
    x[:, 0] = rng.normal(size=(trials, len(a)))
    noise = rng.normal(size=(trials, T, len(a))) * np.sqrt(1 - a**2)
    for t in range(1, T):
        x[:, t] = a * x[:, t - 1] + noise[:, t]
    return x


def acf_loop(x, lengths, max_lag, center):
    """The pooled ACF by plain loops over trials, steps and lags (the definition, nothing shared)."""
    B, _, M = x.shape
    out = np.empty((max_lag + 1, M))
    for m in range(M):
        pieces = [x[b, : lengths[b], m] for b in range(B)]
        if center == "trial":
            pieces = [p - p.mean() for p in pieces]
        else:
            mu = np.concatenate(pieces).mean()
            pieces = [p - mu for p in pieces]
        cov = []
        for lag in range(max_lag + 1):
            total, pairs = 0.0, 0
            for p in pieces:
                for t in range(len(p) - lag):
                    total += p[t] * p[t + lag]
                    pairs += 1
            cov.append(total / pairs)
        out[:, m] = np.array(cov) / cov[0]
    return out


@pytest.mark.parametrize("center", ["trial", "global"])
def test_autocorrelation_matches_a_plain_loop_and_ignores_padding(center):
    x = np.random.default_rng(5).normal(size=(4, 25, 2)).cumsum(axis=1)
    lengths = np.array([25, 20, 12, 17])
    padded = x.copy()
    for b, n in enumerate(lengths):
        padded[b, n:] = 1e3  # garbage after each trial's end
    acf = autocorrelation(padded, 8, center=center, lengths=lengths)
    np.testing.assert_allclose(acf, acf_loop(x, lengths, 8, center), rtol=1e-10, atol=1e-12)
    assert not np.allclose(autocorrelation(padded, 8, center=center), acf)  # the padding would count


@pytest.mark.parametrize("center", ["trial", "global"])
def test_known_time_constants_are_recovered_and_their_ratio(center):
    x = ar1([16.0, 2.0, 6.0], trials=64, T=200, seed=6)
    res = nm_timescales(x, center=center)
    assert res.status == ("exp", "exp", "exp")
    np.testing.assert_allclose(res.tau, [16.0, 2.0, 6.0], rtol=0.15)
    assert res.ratio == pytest.approx(8.0, rel=0.2) and not res.censored
    np.testing.assert_array_equal(res.order, [1, 2, 0])  # fastest first
    assert res.acf[0].tolist() == [1.0, 1.0, 1.0]
    scaled = nm_timescales(x, center=center, dt=20.0)  # ms per step
    np.testing.assert_allclose(scaled.tau, 20.0 * res.tau, rtol=1e-9)
    np.testing.assert_allclose(scaled.lags[:3], [0.0, 20.0, 40.0])


def test_the_bias_correction_is_what_makes_short_trials_right():
    x = ar1([16.0], trials=64, T=120, seed=7)
    corrected = nm_timescales(x, center="trial")
    naive = nm_timescales(x, center="trial", fit="loglinear")  # no correction
    assert corrected.tau[0] == pytest.approx(16.0, rel=0.2)
    assert naive.status == ("loglinear",) and naive.tau[0] < 0.8 * 16.0


def test_timescale_fallbacks_flat_fast_and_no_decay():
    rng = np.random.default_rng(8)
    trials, T = 20, 100
    x = np.stack([
        np.full((trials, T), 0.3),  # constant
        rng.normal(size=(trials, T)),  # white noise: below the floor at lag 1
        np.cumsum(rng.normal(size=(trials, T)), axis=1) + 50.0 * rng.normal(size=(trials, 1)),  # drifts
    ], axis=-1)
    res = nm_timescales(x, center="global", max_lag=20)
    assert res.status == ("flat", "fast", "no_decay")
    assert np.isnan(res.tau[0]) and 0 <= res.tau[1] < 0.5 and np.isinf(res.tau[2])
    assert np.isnan(res.ratio) and res.censored  # one finite tau only


def test_timescales_refuse_bad_inputs():
    x = np.zeros((3, 10, 2))
    with pytest.raises(ValueError, match="max_lag"):
        nm_timescales(x, max_lag=10)
    with pytest.raises(ValueError, match="lengths"):
        nm_timescales(x, lengths=[10, 10])
    with pytest.raises(ValueError, match="must be"):
        nm_timescales(np.zeros(10))
    with pytest.raises(ValueError, match="floor"):
        nm_timescales(x, floor=0.5)


# ---------------------------------------------------------------------------------------------
# context decoding
# ---------------------------------------------------------------------------------------------


def context_data(separable, trials_per_rule=30, T=40, F=4, seed=9):
    """Three rules; with ``separable`` the NM traces carry a rule-specific level in steps 0..9."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), trials_per_rule)
    x = rng.normal(size=(len(labels), T, F))
    if separable:
        centres = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
        x[:, :10] += centres[labels][:, None, :]
    return x, labels


@pytest.mark.parametrize("classifier", ["logistic", "lda"])
def test_a_separable_context_is_decoded_and_an_independent_one_is_not(classifier):
    x, labels = context_data(True)
    good = decode_context(x, labels, window=(0, 10), classifier=classifier, n_permutations=20)
    assert good.accuracy > 0.95 and good.p == pytest.approx(1 / 21)
    assert good.chance == pytest.approx(1 / 3) and list(good.classes) == [0, 1, 2]
    assert good.null_mean == pytest.approx(1 / 3, abs=0.1)
    late = decode_context(x, labels, window=(20, 40), classifier="lda", n_permutations=20)
    assert abs(late.accuracy - 1 / 3) < 0.15 and late.p > 0.05  # the window holds no signal
    x0, _ = context_data(False)
    none = decode_context(x0, labels, classifier=classifier, n_permutations=20)
    assert abs(none.accuracy - 1 / 3) < 0.15 and none.p > 0.05


def test_per_trial_windows_and_per_bin_decoding():
    x, labels = context_data(True)
    starts = np.random.default_rng(10).integers(0, 5, len(labels))
    windows = np.stack([starts, starts + 5], axis=1)
    np.testing.assert_allclose(window_mean(x, windows)[7], x[7, starts[7]: starts[7] + 5].mean(axis=0))
    assert decode_context(x, labels, window=windows, classifier="lda", n_permutations=20).accuracy > 0.95
    binned = decode_context(x, labels, bin_size=10, classifier="lda", n_permutations=20)
    np.testing.assert_array_equal(binned.bins, [[0, 10], [10, 20], [20, 30], [30, 40]])
    assert binned.accuracy[0] > 0.95 and binned.p[0] < 0.05
    assert np.all(np.abs(binned.accuracy[1:] - 1 / 3) < 0.17) and np.all(binned.p[1:] > 0.05)
    assert binned.null.shape == (4, 20)


def test_balanced_accuracy_for_unequal_labels():
    rng = np.random.default_rng(14)
    labels = np.r_[np.zeros(60, int), np.ones(10, int)]
    x = rng.normal(size=(70, 3))
    plain = decode_context(x, labels, classifier="lda", n_permutations=20)
    balanced = decode_context(x, labels, classifier="lda", balanced=True, n_permutations=20)
    assert plain.chance == pytest.approx(60 / 70) and balanced.chance == 0.5
    assert abs(balanced.accuracy - 0.5) < 0.15 and balanced.p > 0.05
    x[:, 0] += 4.0 * labels
    found = decode_context(x, labels, classifier="lda", balanced=True, n_permutations=20)
    assert found.accuracy > 0.9 and found.p == pytest.approx(1 / 21)


def test_decoding_refuses_bad_inputs():
    x, labels = context_data(True, trials_per_rule=4)
    with pytest.raises(ValueError, match="5 folds needs at least 5 trials"):
        decode_context(x, labels)
    with pytest.raises(ValueError, match="two distinct labels"):
        decode_context(x, np.zeros(len(labels)), n_splits=2)
    with pytest.raises(ValueError, match="features must be"):
        decode_context(x, labels[:-1], n_splits=2)
    with pytest.raises(ValueError, match="either window or bin_size"):
        decode_context(x, labels, window=(0, 5), bin_size=5, n_splits=2)
    with pytest.raises(ValueError, match="start < stop"):
        decode_context(x, labels, window=(5, 5), n_splits=2)


def test_the_shared_decoder_core_scores_and_counts_the_null():
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    X = np.arange(40.0)[:, None]
    r2 = lambda t, p: 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)  # noqa: E731
    res = cross_validated_score(X, 2 * X[:, 0] + 1, estimator=LinearRegression(), cv=KFold(4),
                                score=r2, n_null=9, seed=0)
    assert res.score == pytest.approx(1.0) and res.p == pytest.approx(0.1) and res.null.shape == (9,)
    assert cross_validated_score(X, X[:, 0], estimator=LinearRegression(), cv=KFold(4), score=r2,
                                 n_null=0).p == 1.0


# ---------------------------------------------------------------------------------------------
# task variance and clustering
# ---------------------------------------------------------------------------------------------


def planted_activity(seed=11):
    """12 units in 3 groups; group g varies across trials in tasks 2g, 2g+1 only (of 6); 2 silent
    units. Returns task -> (trials, T, N) and the group of every unit."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], 4)
    activity = {}
    for task in range(6):
        scale = np.where(groups == task // 2, 1.0, 0.1)
        h = rng.normal(size=(16, 30, 12)) * scale
        h = np.concatenate([h, np.full((16, 30, 2), 0.5)], axis=2)  # silent units 12, 13
        activity[f"task{task}"] = h
    return activity, groups


def test_task_variance_matches_yangs_formula_by_hand():
    activity, _ = planted_activity()
    windows = {"task0": (5, 30), "task3": (10, 20)}
    tv = task_variance(activity, windows=windows)
    for i, (name, h) in enumerate(activity.items()):
        s, e = windows.get(name, (0, 30))
        for unit in (0, 7, 13):
            ref = np.mean([np.var(h[:, t, unit]) for t in range(s, e)])  # across trials, then time
            assert tv.variance[unit, i] == pytest.approx(ref, rel=1e-12)
    np.testing.assert_array_equal(tv.active, np.arange(12))  # the silent units are dropped
    np.testing.assert_allclose(tv.normalized.max(axis=1), 1.0)
    np.testing.assert_allclose(task_variance(activity, normalization="sum").normalized.sum(axis=1), 1.0)
    assert tv.tasks == tuple(activity)


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_planted_clusters_are_recovered_by_silhouette(method):
    from sklearn.metrics import adjusted_rand_score

    activity, groups = planted_activity()
    tv = task_variance(activity)
    cl = cluster_units(tv.normalized, method=method, seed=0)
    assert cl.n_clusters == 3 and adjusted_rand_score(groups, cl.labels) == 1.0
    np.testing.assert_array_equal(cl.labels, groups)  # relabelled by preferred task, as Yang
    # group g prefers task 2g or 2g+1 (equal by construction): the clusters come in that order
    assert [int(p) // 2 for p in cl.preference] == [0, 1, 2]
    assert cl.candidates.tolist() == list(range(2, 12)) and cl.scores[1] == max(cl.scores)
    # negative control: without planted structure the best silhouette is far lower
    flat = cluster_units(np.random.default_rng(12).uniform(size=(12, 6)), method=method)
    assert max(flat.scores) < max(cl.scores) - 0.3


def test_task_variance_and_clustering_refuse_bad_inputs():
    activity, _ = planted_activity()
    with pytest.raises(ValueError, match="trials >= 2"):
        task_variance({"a": np.zeros((1, 5, 3))})
    with pytest.raises(ValueError, match="units"):
        task_variance({"a": np.zeros((2, 5, 3)), "b": np.zeros((2, 5, 4))})
    with pytest.raises(ValueError, match="without activity"):
        task_variance(activity, windows={"other": (0, 3)})
    with pytest.raises(ValueError, match="no candidate"):
        cluster_units(np.ones((4, 2)), n_clusters=[5, 6])
    with pytest.raises(ValueError, match="units >= 3"):
        cluster_units(np.ones((2, 2)))


# ---------------------------------------------------------------------------------------------
# modularity
# ---------------------------------------------------------------------------------------------


def block_matrix(N, n_blocks, rng):
    block = np.repeat(np.arange(n_blocks), N // n_blocks)
    return np.where(block[:, None] == block[None, :], 1.0, 0.05) * rng.uniform(0.5, 1.0, (N, N))


def test_modularity_of_w_and_of_the_nm_gated_connectivity():
    N, M = 48, 2
    rng = np.random.default_rng(13)
    model = ENMRNN(3, N, 2, n_nm=M, key=jr.PRNGKey(1))
    modular, random = block_matrix(N, 4, rng), rng.uniform(size=(N, N))
    # W modular, no modulation: both matrices modular, and identical at nbar = 0
    m1 = eqx.tree_at(lambda m: (m.W, m.T), model, (jnp.asarray(modular, jnp.float32), jnp.zeros((M, N, N))))
    res = connectivity_modularity(m1, np.zeros(M), n_null=2)
    assert res.modularity_W > 0.5 and res.modularity_W_eff == pytest.approx(res.modularity_W)
    # W random, T_0 modular: only the NM-gated matrix is modular, and only when NM 0 is present
    T = np.stack([10.0 * modular, np.zeros((N, N))])
    m2 = eqx.tree_at(lambda m: (m.W, m.T), model, (jnp.asarray(random, jnp.float32), jnp.asarray(T, jnp.float32)))
    gated = connectivity_modularity(m2, np.array([1.0, 0.0]), n_null=2)
    assert gated.modularity_W < 0.3 and gated.modularity_W_eff > 0.5
    assert connectivity_modularity(m2, np.array([0.0, 1.0]), n_null=2).modularity_W_eff < 0.3
    with pytest.raises(ValueError, match="recurrent_weights"):
        connectivity_modularity(NMRNN(3, 8, 2, n_nm=2, key=jr.PRNGKey(0)), np.zeros(2))
    with pytest.raises(ValueError, match="nbar must be 2"):
        connectivity_modularity(model, np.zeros(3))


# ---------------------------------------------------------------------------------------------
# model paths (e-nmRNN and NM-RNN), the Yang helpers, the R11 model
# ---------------------------------------------------------------------------------------------


def test_states_split_by_the_modulatory_hooks():
    key = jr.PRNGKey(2)
    u = jr.normal(key, (3, 20, 2))
    enm = ENMRNN(2, 6, 1, n_nm=3, key=key)
    states = simulate(enm, u).states
    split = split_states(enm, states)
    np.testing.assert_array_equal(split.nm, np.asarray(states.n))
    np.testing.assert_array_equal(split.activity, np.asarray(states.r))
    assert split.nm_fields == ("n",) and split.activity_fields == ("r",)
    nm = NMRNN(2, 6, 1, n_nm=4, rank=2, key=key)
    states = simulate(nm, u).states
    split = split_states(nm, states)
    np.testing.assert_array_equal(split.nm, np.asarray(states.z))
    np.testing.assert_array_equal(split.activity, np.asarray(states.x))
    gains = split_states(nm, states, nm_signal="modulation").nm
    np.testing.assert_allclose(gains, np.asarray(nm.gains(states.z)))
    assert gains.shape == (3, 20, 2)
    with pytest.raises(ValueError, match="no neuromodulators"):
        split_states(LeakyRNN(2, 6, 1, key=key), simulate(LeakyRNN(2, 6, 1, key=key), u).states)


def test_nm_rnn_timescale_of_its_z_state():
    """With W_z = 0, z_t = (1 - a) z_{t-1} + a B_z u_t: white-noise input makes each z an AR(1)
    process of time constant -1 / ln(1 - a) steps, a = dt / tau_z."""
    key = jr.PRNGKey(3)
    taus = (4.0, 20.0)
    fits = []
    for tau_z in taus:
        model = NMRNN(1, 4, 1, n_nm=2, rank=1, tau_z=tau_z, key=key)
        model = eqx.tree_at(lambda m: m.W_z, model, jnp.zeros((2, 2)))
        u = jr.normal(jr.PRNGKey(4), (48, 300, 1))
        nm = split_states(model, simulate(model, u).states).nm[:, 50:]  # past the initial transient
        fits.append(nm_timescales(nm).tau)
    for tau_z, tau in zip(taus, fits, strict=True):
        np.testing.assert_allclose(tau, -1.0 / np.log(1.0 - 1.0 / tau_z), rtol=0.15)


@pytest.mark.parametrize("name", ["enmrnn", "nmrnn"])
def test_yang_helpers_run_a_model_on_the_test_grids(name):
    rules = ("fdgo", "dm1")
    model = make_model(name, n_in=85, n_out=33, n_hidden=8, n_nm=3, key=jr.PRNGKey(5))
    trials = yang_trials(model, rules)
    assert [a.shape[0] for a in trials.activity] == [YangTask(r, mode="test").grid_size for r in rules]
    assert trials.nm[0].shape[-1] == 3 and trials.activity[0].shape[-1] == 8
    tv = yang_task_variance(trials, min_total=0.0)
    assert tv.variance.shape == (8, 2) and tv.tasks == rules
    fix_end = int(trials.info[0]["epochs"][0, 0, 1])
    h = trials.activity[0]
    np.testing.assert_allclose(tv.variance[:, 0], h[:, fix_end:].var(axis=0).mean(axis=0), rtol=1e-12)
    X, labels = yang_context_features(trials)
    assert X.shape == (len(labels), 3) and set(labels.tolist()) == {0, 6}
    # noise-free test trials see only the fixation and the rule input before the stimulus: every
    # trial of a rule has the same fixation-epoch state, so the rule is decoded perfectly
    res = decode_context(X, labels, n_permutations=10, classifier="lda", balanced=True)
    assert res.accuracy == 1.0 and res.p == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="needs a key"):
        yang_trials(model, rules, mode="random", batch_size=4)


def test_r11_model_has_about_50k_parameters_by_the_hand_formula():
    task = YangTask("fdgo")
    assert (R11_MODEL["n_in"], R11_MODEL["n_out"]) == (task.n_in, task.n_out) == (85, 33)
    N, M, P, O, q = 128, 4, 85, 33, R11_MODEL["t_rank"]
    rest = N * N + N * P + N + M * N + M * M + O * N + O + 2 * N  # W U b R Z D d E e
    model = eqx.filter_eval_shape(lambda: make_model(**R11_MODEL, key=jr.PRNGKey(0)))
    assert param_count(model) == rest + 2 * M * N * q == R11_PARAMETER_COUNT
    assert abs(R11_PARAMETER_COUNT - 50_000) < 0.01 * 50_000
    full = eqx.filter_eval_shape(lambda: make_model(**{**R11_MODEL, "t_rank": None}, key=jr.PRNGKey(0)))
    assert param_count(full) == rest + M * N * N == 97_969  # the full T is far from 50k
