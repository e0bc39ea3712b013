"""Degeneracy measures (:mod:`nmrnn.analysis.degeneracy`) on populations with known answers and
against independent references.

Known answers: identical networks are at distance 0 at every level; networks that differ by a
permutation of their neurons are at weight distance 0 after matching; a linear (tanh-free)
network and its orthogonal change of basis ``x' = Q x`` (``W' = Q W Q^T``, ``B' = Q B``,
``C' = C Q^T``) have the same behaviour and dynamics (distance 0) but different weights; a planted
change of dynamics (``W`` scaled down) is at distance > 0. References: SciPy's Procrustes
(``scipy.spatial.procrustes``, ``orthogonal_procrustes``), CKA in its kernel (HSIC) form, plain
loops for the behaviour distance and the bootstrap, brute force over all permutations for the
weight matching, and a 2-neuron map whose fixed points are known in closed form.
"""

from __future__ import annotations

import itertools
import sys

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes

from nmrnn.analysis import degeneracy as dg
from nmrnn.models import make_model
from nmrnn.models.leaky import LeakyState
from nmrnn.tasks import DelayedDiscrimination, FlipFlop, PathIntegration, SineGeneration

N = 10


def _transform(model, T, Tinv):
    """The network in the coordinates ``x' = T x``."""
    return eqx.tree_at(
        lambda m: (m.W, m.B, m.C),
        model,
        (jnp.asarray(T @ np.asarray(model.W) @ Tinv, jnp.float32), jnp.asarray(T @ np.asarray(model.B), jnp.float32),
         jnp.asarray(np.asarray(model.C) @ Tinv, jnp.float32)),
    )


@pytest.fixture(scope="module")
def linear_population():
    """[net, net, Q net, P net, planted]: a linear leaky RNN, its copy, an orthogonal change of
    basis, a neuron permutation, and W scaled by 0.3 (other dynamics); their states and outputs on
    20 flip-flop trials."""
    task = FlipFlop(n_bits=2, n_steps=40)
    net = make_model("vanilla", n_in=2, n_out=2, n_hidden=N, key=jr.PRNGKey(0), activation="identity", tau=2.0,
                     gain=0.5)
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    P = np.eye(N)[rng.permutation(N)]
    planted = eqx.tree_at(lambda m: m.W, net, 0.3 * net.W)
    models = [net, net, _transform(net, Q, Q.T), _transform(net, P, P.T), planted]
    batch = task.sample(jr.PRNGKey(2), 20)
    states, outputs = dg.population_states(models, batch.inputs)
    return models, batch, states, outputs


def _known_answers(d, tol):
    """Rows/cols 0-3 are the same dynamics (distance <= tol), 4 is planted (distance > 100 tol)."""
    assert d.shape == (5, 5) and np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert np.abs(d[:4, :4]).max() <= tol, d
    assert d[4, :4].min() > 100 * tol, d


# ----------------------------------------------------------------------------------------------
# behaviour
# ----------------------------------------------------------------------------------------------


def test_behaviour_distances_match_a_plain_loop_and_the_known_answers(linear_population):
    _, batch, _, outputs = linear_population
    d = dg.behaviour_distances(outputs, batch.mask, targets=batch.targets)
    y, w, t = (np.asarray(a, dtype=np.float64) for a in (outputs, batch.mask, batch.targets))
    scale = np.sqrt((w * t**2).sum() / w.sum())
    for i, j in itertools.product(range(5), repeat=2):
        ref = np.sqrt((w * (y[i] - y[j]) ** 2).sum() / w.sum()) / scale
        assert d[i, j] == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert d[0, 1] == 0.0  # identical networks: exactly zero
    _known_answers(d, tol=1e-5)  # float32 simulation of the transformed networks


def test_behaviour_distances_refuse_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        dg.behaviour_distances(np.zeros((1, 2, 3, 1)))
    with pytest.raises(ValueError, match=r"\(S, B, T, O\)"):
        dg.behaviour_distances(np.zeros((3, 2, 1)))
    with pytest.raises(ValueError, match="targets must have shape"):
        dg.behaviour_distances(np.zeros((2, 2, 3, 1)), targets=np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="scores no entry"):
        dg.behaviour_distances(np.zeros((2, 2, 3, 1)), np.zeros((2, 3, 1)))


# ----------------------------------------------------------------------------------------------
# dynamics: Procrustes and CKA against SciPy and the kernel form
# ----------------------------------------------------------------------------------------------


def test_procrustes_matches_scipy():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6)) for _ in range(4)]
    d = dg.procrustes_distances(xs)
    for i, j in itertools.combinations(range(4), 2):
        _, _, disparity = procrustes(xs[i], xs[j])  # 1 - ||A^T B||_*^2 after standardising
        assert 1 - np.cos(d[i, j]) ** 2 == pytest.approx(disparity, abs=1e-10)
        a = xs[i] - xs[i].mean(0)
        b = xs[j] - xs[j].mean(0)
        _, nuclear = orthogonal_procrustes(a / np.linalg.norm(a), b / np.linalg.norm(b))
        assert np.cos(d[i, j]) == pytest.approx(nuclear, abs=1e-12)


def test_procrustes_zero_pads_networks_of_different_sizes():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((30, 3)), rng.standard_normal((30, 5))
    padded = np.concatenate([a, np.zeros((30, 2))], axis=1)
    _, _, disparity = procrustes(padded, b)
    assert 1 - np.cos(dg.procrustes_distances([a, b])[0, 1]) ** 2 == pytest.approx(disparity, abs=1e-10)
    # an orthogonal map into more units, plus an offset and a scale, is at distance 0
    Q, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    assert dg.procrustes_distances([a, 2.5 * a @ Q.T + 1.0])[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_cka_matches_the_kernel_form():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((25, k)) for k in (3, 4, 4)]
    xs.append(xs[1] @ np.linalg.qr(rng.standard_normal((4, 4)))[0] * 3.0 + 2.0)  # rotated, scaled copy
    d = dg.cka_distances(xs)
    H = np.eye(25) - 1.0 / 25
    for i, j in itertools.combinations(range(4), 2):
        K, L = H @ xs[i] @ xs[i].T @ H, H @ xs[j] @ xs[j].T @ H
        ref = np.trace(K @ L) / np.sqrt(np.trace(K @ K) * np.trace(L @ L))
        assert d[i, j] == pytest.approx(1 - ref, abs=1e-12)
    assert d[1, 3] == pytest.approx(0.0, abs=1e-12)


def test_trajectory_metrics_on_the_known_population(linear_population):
    _, _, states, _ = linear_population
    _known_answers(dg.procrustes_distances(states), tol=2e-3)  # arccos near 1 of float32 states
    _known_answers(dg.cka_distances(states), tol=1e-6)


def test_trajectory_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        dg.procrustes_distances([np.ones((5, 2))])
    with pytest.raises(ValueError, match="same number of samples"):
        dg.cka_distances([np.random.default_rng(0).normal(size=(5, 2)), np.random.default_rng(1).normal(size=(6, 2))])
    with pytest.raises(ValueError, match="constant"):
        dg.procrustes_distances([np.ones((5, 2)), np.arange(10.0).reshape(5, 2)])


# ----------------------------------------------------------------------------------------------
# dynamics: DSA
# ----------------------------------------------------------------------------------------------


def test_dsa_known_answers(linear_population):
    pytest.importorskip("DSA", reason="the degeneracy extra (dsa-metric) is not installed")
    _, _, states, _ = linear_population
    d = dg.dsa_distances(states, n_delays=3, rank=6)
    _known_answers(d, tol=1e-4)


def test_dsa_without_the_package_names_the_extra(monkeypatch, linear_population):
    monkeypatch.setitem(sys.modules, "DSA", None)  # "import DSA" now raises ImportError
    with pytest.raises(ImportError, match=r"nmrnn\[degeneracy\]"):
        dg.dsa_distances(linear_population[2], n_delays=3, rank=6)


def test_dsa_refuses_bad_input_before_fitting():
    x = np.zeros((2, 20, 3))
    with pytest.raises(ValueError, match="at least 2"):
        dg.dsa_distances([x])
    with pytest.raises(ValueError, match="rank=10 exceeds"):
        dg.dsa_distances([x, x], n_delays=3, rank=10)
    with pytest.raises(ValueError, match="same"):
        dg.dsa_distances([x, np.zeros((2, 21, 3))], n_delays=2, rank=2)
    with pytest.raises(ValueError, match="score_method"):
        dg.dsa_distances([x, x], score_method="cosine")


# ----------------------------------------------------------------------------------------------
# dynamics: fixed-point structure
# ----------------------------------------------------------------------------------------------


def _two_neurons(w):
    """x -> w tanh(x) per neuron (tau = dt): for w = 2 the fixed points per axis are 0 and
    +/- x* (x* = 2 tanh x*): 4 stable, 4 saddles and the unstable origin; for w = 0.5 only the
    stable origin."""
    m = make_model("vanilla", n_in=1, n_out=1, n_hidden=2, key=jr.PRNGKey(0), tau=1.0)
    return eqx.tree_at(lambda m: m.W, m, w * jnp.eye(2))


def test_fixed_point_counts_against_the_closed_form():
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 9), np.linspace(-3, 3, 9)), -1).reshape(1, -1, 2)
    states = LeakyState(jnp.asarray(grid, jnp.float32))
    counts = np.stack([
        dg.fixed_point_counts(_two_neurons(w), states, key=jr.PRNGKey(0), n_samples=64, noise_scale=0.0)
        for w in (2.0, 2.0, 0.5)
    ])
    labels = dict(zip(dg.STABILITY_LABELS, counts[0], strict=True))
    assert labels == {"stable": 4, "unstable": 1, "saddle": 4, "marginal": 0}
    assert counts[2].tolist() == [1, 0, 0, 0]
    d = dg.fixed_point_distances(counts)
    assert d.tolist() == [[0, 0, 8], [0, 0, 8], [8, 8, 0]]


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------


def test_weight_distances_known_answers(linear_population):
    models = linear_population[0]
    views = [dg.weight_view(m) for m in models]
    d = dg.weight_distances(views, seed=0)
    for mat in d:
        assert mat[0, 1] == 0.0 and mat[0, 3] == pytest.approx(0.0, abs=1e-7)  # copy, permutation
        assert mat[0, 2] > 0.3  # the orthogonal change of basis changes the weights
        assert mat[0, 4] > 0.3  # the planted change
    m = dg.match_weights(views[0], views[3], seed=0)
    Wp = np.asarray(models[3].W)
    # the permutation found maps the original neuron u to the copy's neuron sigma(u)
    assert np.allclose(Wp[np.ix_(m.permutations["neuron"], m.permutations["neuron"])], np.asarray(models[0].W))


def _brute_force_all(a, b):
    """The smallest 'all' distance over every permutation of one population (neurons)."""
    n = a.sizes()["neuron"]
    best = np.inf
    for perm in itertools.permutations(range(n)):
        sq = []
        for k in a.arrays:
            nk = (np.sum(a.arrays[k] ** 2) + np.sum(b.arrays[k] ** 2)) / 2
            bk = dg._align(b.arrays[k], a.axes[k], {"neuron": np.asarray(perm)})
            sq.append(np.sum((a.arrays[k] - bk) ** 2) / nk)
        best = min(best, np.sqrt(np.mean(sq)))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_weight_matching_against_brute_force(seed):
    """Unrelated random networks: the match is never better than the best of all 720
    permutations (it is one of them) and within 3% of it (a quadratic assignment heuristic);
    a noisy permuted copy is matched to its permutation."""
    k1, k2 = jr.split(jr.PRNGKey(seed))
    a = dg.weight_view(make_model("vanilla", n_in=2, n_out=2, n_hidden=6, key=k1))
    b = dg.weight_view(make_model("vanilla", n_in=2, n_out=2, n_hidden=6, key=k2))
    m = dg.match_weights(a, b, seed=seed)
    best = _brute_force_all(a, b)
    assert best - 1e-12 <= m.all <= 1.03 * best
    without_restarts = dg.match_weights(a, b, seed=seed, restarts=0)
    assert m.all <= without_restarts.all + 1e-12
    # a noisy permuted copy is matched to its permutation
    rng = np.random.default_rng(seed)
    perm = rng.permutation(6)
    arrays = {k: dg._align(v, a.axes[k], {"neuron": perm}) for k, v in a.arrays.items()}
    noisy = dg.WeightView({k: v + 0.05 * rng.standard_normal(v.shape) * v.std() for k, v in arrays.items()},
                          a.axes, a.recurrent)
    found = dg.match_weights(a, noisy, seed=0).permutations["neuron"]
    assert np.array_equal(found, np.argsort(perm))


@pytest.mark.parametrize("name, options", [
    ("nmrnn", dict(n_nm=3, rank=2)),
    ("enmrnn", dict(n_nm=3)),
    ("enmrnn", dict(n_nm=2, t_rank=2)),
    ("lowrank", dict(rank=2)),
])
def test_weight_views_of_neuromodulated_models_match_permuted_copies(name, options):
    model = make_model(name, n_in=2, n_out=1, n_hidden=7, key=jr.PRNGKey(3), **options)
    view = dg.weight_view(model)
    rng = np.random.default_rng(0)
    perms = {p: rng.permutation(n) for p, n in view.sizes().items()}
    permuted = dg.WeightView({k: dg._align(v, view.axes[k], perms) for k, v in view.arrays.items()},
                             view.axes, view.recurrent)
    m = dg.match_weights(view, permuted, seed=0)
    assert m.all == pytest.approx(0.0, abs=1e-7) and m.recurrent == pytest.approx(0.0, abs=1e-7)
    other = dg.weight_view(make_model(name, n_in=2, n_out=1, n_hidden=7, key=jr.PRNGKey(4), **options))
    assert dg.match_weights(view, other, seed=0).all > 0.1


def test_weight_views_refuse_other_models_and_mismatched_shapes():
    with pytest.raises(ValueError, match="no weight view for GRU"):
        dg.weight_view(make_model("gru", n_in=1, n_out=1, n_hidden=3, key=jr.PRNGKey(0)))
    a = dg.weight_view(make_model("vanilla", n_in=1, n_out=1, n_hidden=3, key=jr.PRNGKey(0)))
    b = dg.weight_view(make_model("vanilla", n_in=1, n_out=1, n_hidden=4, key=jr.PRNGKey(0)))
    with pytest.raises(ValueError, match="has shape"):
        dg.match_weights(a, b, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        dg.weight_distances([a], seed=0)


def test_relative_weight_change():
    a = dg.weight_view(make_model("vanilla", n_in=1, n_out=1, n_hidden=5, key=jr.PRNGKey(0)))
    b = dg.WeightView({**a.arrays, "W": 1.5 * a.arrays["W"]}, a.axes, a.recurrent)
    assert dg.relative_weight_change(a, b) == pytest.approx(0.5)
    assert dg.relative_weight_change(a, a) == 0.0


# ----------------------------------------------------------------------------------------------
# degeneracy of a population and the bootstrap
# ----------------------------------------------------------------------------------------------


def _random_distances(rng, s, loc):
    x = rng.normal(loc, 0.1, size=(s, s))
    d = np.abs(x + x.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def test_population_degeneracy_is_the_mean_and_spread_above_the_diagonal():
    d = np.array([[0, 1, 2], [1, 0, 4], [2, 4, 0]], float)
    g = dg.population_degeneracy(d)
    assert (g.mean, g.n_networks, g.n_pairs) == (7 / 3, 3, 3)
    assert g.std == pytest.approx(np.std([1, 2, 4]))
    for bad, msg in [(np.zeros((1, 1)), "at least 2"), (np.zeros((2, 3)), "square"),
                     (np.array([[0, 1], [2, 0]]), "symmetric"), (np.array([[1, 1], [1, 1.0]]), "zero diagonal")]:
        with pytest.raises(ValueError, match=msg):
            dg.population_degeneracy(bad)


def test_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    a, b = _random_distances(rng, 5, 1.0), _random_distances(rng, 6, 1.3)
    got = dg.bootstrap_difference(a, b, seed=7, n_boot=300)
    draws = np.random.default_rng(7)
    idx_b = draws.integers(0, 6, size=(300, 6))  # the second population is drawn first
    idx_a = draws.integers(0, 5, size=(300, 5))

    def loop_mean(d, idx):
        vals = [d[idx[p], idx[q]] for p in range(len(idx)) for q in range(p + 1, len(idx)) if idx[p] != idx[q]]
        return np.mean(vals) if vals else np.nan

    diffs = np.array([loop_mean(b, idx_b[r]) - loop_mean(a, idx_a[r]) for r in range(300)])
    diffs = diffs[np.isfinite(diffs)]
    assert got.n_boot == diffs.size
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(diffs, [0.05, 0.95])), rel=1e-12)
    assert got.difference == pytest.approx(dg.pairwise_values(b).mean() - dg.pairwise_values(a).mean())


def test_bootstrap_separates_distinct_populations_and_not_equal_ones():
    rng = np.random.default_rng(1)
    low, high = _random_distances(rng, 8, 1.0), _random_distances(rng, 8, 2.0)
    sep = dg.bootstrap_difference(low, high, seed=0)
    assert sep.low > 0.5 and sep.high < 1.5
    same = dg.bootstrap_difference(low, low, seed=0)
    assert same.difference == 0.0 and same.low < 0 < same.high
    with pytest.raises(ValueError, match="level"):
        dg.bootstrap_difference(low, high, seed=0, level=1.0)


# ----------------------------------------------------------------------------------------------
# probes per task
# ----------------------------------------------------------------------------------------------


def test_probe_batches_per_task():
    key = jr.PRNGKey(0)
    ff = dg.probe_batches(FlipFlop(n_bits=2, n_steps=50, pulse_prob=0.1), key, 200)
    assert ff["held_out"].inputs.shape == (200, 50, 2) and ff["ood"].inputs.shape == (200, 100, 2)
    # half the pulse probability over twice the length: about as many pulses per trial
    n_in, n_ood = (float(np.abs(np.asarray(b.inputs)).sum(1).mean()) for b in (ff["held_out"], ff["ood"]))
    assert n_ood == pytest.approx(n_in, rel=0.15)

    sine = SineGeneration(n_freqs=3, omega_range=(0.2, 0.4), n_steps=20)
    sp = dg.probe_batches(sine, key)
    assert np.allclose(np.asarray(sp["held_out"].info["omega"]), [0.2, 0.3, 0.4])
    assert np.allclose(np.asarray(sp["ood"].info["omega"]), [0.25, 0.35])
    with pytest.raises(ValueError, match="n_freqs >= 2"):
        dg.probe_batches(SineGeneration(n_freqs=1), key)

    romo = DelayedDiscrimination(dt=100, fixation=200, stimulus=200, delay=300, decision=200)
    rp = dg.probe_batches(romo, key, 8)
    assert np.all(np.asarray(rp["held_out"].info["delay_steps"]) == 3)
    assert np.all(np.asarray(rp["ood"].info["delay_steps"]) == 6)
    assert rp["ood"].n_steps == rp["held_out"].n_steps + 3

    path = PathIntegration(n_dims=1, boundary="none", n_steps=200)
    pp = dg.probe_batches(path, key, 500)
    ratio = float(np.asarray(pp["ood"].inputs).std() / np.asarray(pp["held_out"].inputs).std())
    assert ratio == pytest.approx(2.0, rel=0.1)
    assert "twice the trained speed" in dg.ood_description(path)
    with pytest.raises(ValueError, match="no degeneracy probes"):
        dg.probe_batches(object(), key)
