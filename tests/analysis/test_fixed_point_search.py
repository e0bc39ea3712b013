"""The default fixed-point search (Adam's descent, then Levenberg-Marquardt) on systems whose fixed
points and saddles are known in closed form: it finds every one of them from generic starts."""

import itertools

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.analysis import find_fixed_points


def _double_well(x, u):
    return jnp.stack([x[0] - x[0] ** 3, -x[1]])


def test_two_attractors_and_the_saddle_between_them():
    """dx/dt = x - x^3, dy/dt = -y: stable points (+-1, 0), a saddle at the origin."""
    starts = jr.uniform(jr.PRNGKey(0), (64, 2), minval=-1.5, maxval=1.5)
    fps = find_fixed_points(_double_well, starts, kind="flow")
    found = sorted((round(float(p[0]), 6), round(float(p[1]), 6)) for p in fps.points[~fps.slow])
    assert found == [(-1.0, 0.0), (0.0, 0.0), (1.0, 0.0)]
    label = {round(float(p[0])): s for p, s in zip(fps.points, fps.stability, strict=True)}
    assert label == {-1: "stable", 0: "saddle", 1: "stable"}


def _rotation(seed: int, d: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


D, DT = 3, 0.2
Q = _rotation(3, D)


def _cube_map(x, u):
    """One Euler step of the rotated product of double wells, x' = x + dt Q g(Q^T x) with
    g(y) = y - y^3: fixed points Q y for y in {-1, 0, 1}^3, the ones with k zeros having k unstable
    directions (8 stable points, 12 + 6 + 1 saddles: the flip-flop's cube)."""
    y = jnp.asarray(Q.T, x.dtype) @ x
    return x + DT * (jnp.asarray(Q, x.dtype) @ (y - y**3))


def _cube_map_numpy(x):
    y = Q.T @ x
    return x + DT * (Q @ (y - y**3))


def _cube_points():
    return [np.array(c, float) for c in itertools.product((-1.0, 0.0, 1.0), repeat=D)]


def test_planted_cube_every_point_found_and_rechecked_in_float64():
    starts = jr.uniform(jr.PRNGKey(1), (512, D), minval=-2.0, maxval=2.0)
    fps = find_fixed_points(_cube_map, starts)
    fixed = fps.points[~fps.slow].astype(np.float64)
    truth = [Q @ c for c in _cube_points()]
    assert len(fixed) == 27
    for c, t in zip(_cube_points(), truth, strict=True):
        dist = np.max(np.abs(fixed - t), axis=1)
        i = int(np.argmin(dist))
        assert dist[i] < 1e-5, f"corner {c} not found"
        x = fixed[i]
        d = _cube_map_numpy(x) - x
        assert 0.5 * d @ d < 1e-10  # genuine in float64
        # unstable directions: one per zero coordinate (eigenvalues of the map 1 + dt g'(y))
        n_unstable = int(np.sum(np.abs(np.linalg.eigvals(fps.jacobians[np.flatnonzero(~fps.slow)[i]])) > 1 + 1e-6))
        assert n_unstable == int(np.sum(c == 0))
    # every candidate of both searches accounted for; the second starts from the first's points
    # and the points between its stable points
    first, r = fps.report.first_pass, fps.report
    assert first.n_candidates == 512
    for rep in (first, r):
        assert rep.n_candidates == rep.n_converged + len(rep.not_converged)
        assert rep.n_converged == len(rep.distance_outliers) + rep.n_duplicates + rep.n_unique
    assert r.n_candidates == first.n_unique + 28 * 5 + 1
    assert "first search: 512 candidates" in r.summary()


@pytest.mark.parametrize("method", ["lm", "adam-lm"])
def test_from_samples_near_the_attractors_the_second_search_finds_the_saddles(method):
    """Starts as a trained network's trajectories give them: near its attractors. A search from
    them finds the attractors; the default second search, from points between them, finds every
    saddle too."""
    rng = np.random.default_rng(4)
    corners = np.array([Q @ np.array(c) for c in itertools.product((-1.0, 1.0), repeat=D)])
    starts = jnp.asarray(corners[rng.integers(0, 8, 256)] + 0.05 * rng.normal(size=(256, D)), jnp.float32)
    single = find_fixed_points(_cube_map, starts, search="single", method=method)
    assert sorted(single.stability) == ["stable"] * 8
    both = find_fixed_points(_cube_map, starts, method=method)
    assert both.n_points == 27 and not both.slow.any()
    n_unstable = sorted(int(np.sum(np.abs(v) > 1 + 1e-6)) for v in both.eigenvalues)
    assert n_unstable == [0] * 8 + [1] * 12 + [2] * 6 + [3]
    assert both.report.first_pass.n_candidates == 256


@pytest.mark.parametrize("method", ["adam-lm", "lm", "adam"])
def test_a_candidate_ends_where_it_would_alone(method):
    """Finished candidates are dropped between chunks of iterations (compaction): a candidate's
    result must not depend on the others in its batch."""
    starts = jr.uniform(jr.PRNGKey(5), (40, D), minval=-1.3, maxval=1.3)
    kw = dict(search="single", method=method, tol_unique=1e-12, outlier_distance_scale=None, keep_unconverged=True)
    if method == "adam":
        kw["max_iters"] = 300
    whole = find_fixed_points(_cube_map, starts, **kw)
    for i in (0, 7, 39):
        alone = find_fixed_points(_cube_map, starts[i], **kw)
        j = int(np.flatnonzero(np.all(whole.initial == np.asarray(starts[i]), axis=1))[0])
        np.testing.assert_allclose(alone.points[0], whole.points[j], atol=1e-6)
        assert alone.n_iters[0] == whole.n_iters[j]


def test_bad_search_settings_refused():
    with pytest.raises(ValueError, match="descent_iters"):
        find_fixed_points(_double_well, jnp.zeros((4, 2)), kind="flow", descent_iters=0)
    with pytest.raises(ValueError, match="polish_q"):
        find_fixed_points(_double_well, jnp.zeros((4, 2)), kind="flow", polish_q=-1.0)
    with pytest.raises(ValueError, match="method"):
        find_fixed_points(_double_well, jnp.zeros((4, 2)), kind="flow", method="newton")
    with pytest.raises(ValueError, match="search"):
        find_fixed_points(_double_well, jnp.zeros((4, 2)), kind="flow", search="everywhere")
    for bad in ((), (0.0, 0.5), (0.5, 1.2)):
        with pytest.raises(ValueError, match="between_fractions"):
            find_fixed_points(_double_well, jnp.zeros((4, 2)), kind="flow", between_fractions=bad)
