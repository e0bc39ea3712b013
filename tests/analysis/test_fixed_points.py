"""Fixed and slow points against closed forms, on functions and on every model of the library."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn import analysis
from nmrnn.analysis import (
    classify_stability,
    linearize,
    sample_states,
    speed,
)
from nmrnn.analysis.systems import cubic_field, pendulum_eigenvalues, pendulum_field
from nmrnn.models import NMRNN, LeakyRNN, make_model, simulate
from nmrnn.models.base import AbstractRecurrentModel


def find_fixed_points(*args, **options):
    """These tests check one search and its account of its own candidates: the search from the
    given states only (the default second search is tested in test_fixed_point_search.py)."""
    options.setdefault("search", "single")
    return analysis.find_fixed_points(*args, **options)


# -- closed-form systems (module level, so compiled code is shared between tests) --------------

A_FLOW = np.array([[-1.0, 2.0, 0.0], [-2.0, -1.0, 0.0], [0.0, 0.0, 0.5]])  # spiral (stable) x saddle
B_FLOW = np.array([0.3, -0.7, 0.2])


def linear_flow(x, u):
    return jnp.asarray(A_FLOW, x.dtype) @ x + jnp.asarray(B_FLOW, x.dtype) + u


A_MAP = np.array([[0.5, 0.2], [-0.3, 0.8]])
B_MAP = np.array([[1.0, 0.0], [0.5, -1.0]])


def linear_map(x, u):
    return jnp.asarray(A_MAP, x.dtype) @ x + jnp.asarray(B_MAP, x.dtype) @ u


def ghost_field(x, u):
    """dx/dt = mu + x^2 with mu = u[0] > 0: no fixed point, a slow point at x = 0 (q = mu^2 / 2)."""
    return u[0] + x**2


def test_linear_flow_fixed_point_and_eigenvalues():
    u = np.array([0.1, 0.0, -0.4])
    x0 = jr.normal(jr.PRNGKey(0), (8, 3))
    fp = find_fixed_points(linear_flow, x0, u, kind="flow")
    expected = -np.linalg.solve(A_FLOW, B_FLOW + u)
    assert fp.n_points == 1 and fp.report.n_fixed == 8
    np.testing.assert_allclose(fp.points[0], expected, atol=1e-5)
    np.testing.assert_allclose(fp.jacobians[0], A_FLOW, atol=1e-6)
    np.testing.assert_allclose(fp.input_jacobians[0], np.eye(3), atol=1e-6)
    # eigenvalues 0.5, -1 +/- 2i, sorted by decreasing real part
    np.testing.assert_allclose(fp.eigenvalues[0], [0.5, -1 + 2j, -1 - 2j], atol=1e-6)
    assert fp.stability == ("saddle",)
    # the eigenvectors diagonalise the Jacobian
    V = fp.eigenvectors[0]
    np.testing.assert_allclose(A_FLOW @ V, V @ np.diag(fp.eigenvalues[0]), atol=1e-6)


def test_linear_map_fixed_point_per_candidate_inputs():
    us = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    x0 = np.zeros((3, 2))
    fp = find_fixed_points(linear_map, x0, us, kind="map")
    assert fp.n_points == 2  # two distinct inputs; the third candidate duplicates the first
    assert fp.report.n_duplicates == 1
    for x, u in zip(fp.points, fp.inputs, strict=True):
        # q <= 1e-10 bounds the residual by 1.4e-5; (I - A)^-1 amplifies it up to ~5x
        np.testing.assert_allclose(x, np.linalg.solve(np.eye(2) - A_MAP, B_MAP @ u), atol=1e-4)
    lam = np.linalg.eigvals(A_MAP)
    lam = lam[np.argsort(-np.abs(lam))]
    np.testing.assert_allclose(np.sort_complex(fp.eigenvalues[0]), np.sort_complex(lam), atol=1e-6)
    assert fp.stability == ("stable", "stable")  # |lambda| < 1
    np.testing.assert_allclose(fp.input_jacobians[0], B_MAP, atol=1e-6)


def test_cubic_three_fixed_points():
    x0 = np.linspace(-2, 2, 21)[:, None]
    fp = find_fixed_points(cubic_field, x0, kind="flow")
    order = np.argsort(fp.points[:, 0])
    np.testing.assert_allclose(fp.points[order, 0], [-1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(fp.eigenvalues[order, 0].real, [-2, 1, -2], atol=1e-5)
    assert [fp.stability[i] for i in order] == ["stable", "unstable", "stable"]
    assert fp.report.n_candidates == 21 and fp.report.n_duplicates == 18


def test_pendulum_fixed_points_against_closed_form():
    g = np.linspace(-4.0, 4.0, 9)
    x0 = np.stack(np.meshgrid(g, [-0.5, 0.5]), -1).reshape(-1, 2)
    fp = find_fixed_points(pendulum_field, x0, kind="flow", outlier_distance_scale=None)
    ks = np.round(fp.points[:, 0] / np.pi).astype(int)
    assert {-1, 0, 1} <= set(ks.tolist())
    for k, x, ev, st in zip(ks, fp.points, fp.eigenvalues, fp.stability, strict=True):
        np.testing.assert_allclose(x, [k * np.pi, 0.0], atol=1e-5)
        np.testing.assert_allclose(ev, pendulum_eigenvalues(k), atol=1e-5)
        assert st == ("stable" if k % 2 == 0 else "saddle")


def test_slow_point_is_reported_as_slow_not_fixed():
    mu = 0.1
    fp = find_fixed_points(ghost_field, np.array([[-0.5], [0.3], [0.6]]), np.array([mu]), kind="flow")
    assert fp.n_points == 1
    assert fp.slow[0] and fp.converged[0]
    np.testing.assert_allclose(fp.points[0], [0.0], atol=2e-3)
    np.testing.assert_allclose(fp.q[0], 0.5 * mu**2, rtol=1e-4)
    assert fp.report.n_slow == 3 and fp.report.n_fixed == 0


def test_not_converged_are_reported_not_dropped_silently():
    x0 = np.array([[3.0], [-2.5], [0.9]])
    fp = find_fixed_points(cubic_field, x0, kind="flow", method="lm", max_iters=1)
    rep = fp.report
    assert rep.n_candidates == 3
    assert rep.n_converged + len(rep.not_converged) == 3
    assert len(rep.not_converged) >= 1
    assert np.all(rep.not_converged_q > rep.tolerances["tol_q"])
    assert rep.not_converged_points.shape == (len(rep.not_converged), 1)
    assert "did not converge" in rep.summary()
    kept = find_fixed_points(cubic_field, x0, kind="flow", method="lm", max_iters=1, keep_unconverged=True)
    assert (~kept.converged).sum() >= 1


def test_no_point_found_gives_an_empty_result_with_a_report():
    m = LeakyRNN(2, 6, 1, activation="identity", key=jr.PRNGKey(0))
    fp = find_fixed_points(m, 5.0 * jr.normal(jr.PRNGKey(1), (8, 6)), np.ones(2), method="lm", max_iters=1)
    assert fp.n_points == 0 and fp.states is None and fp.stability == ()
    assert fp.eigenvalues.shape == (0, 6) and fp.jacobians.shape == (0, 6, 6)
    assert len(fp.report.not_converged) == 8


def test_distance_outliers_are_dropped_and_reported():
    x0 = np.array([[0.95], [1.0], [1.05], [-0.3]])  # the last one converges to 0, far from the rest
    fp = find_fixed_points(cubic_field, x0, kind="flow", outlier_distance_scale=1.0)
    np.testing.assert_allclose(fp.points[:, 0], [1.0], atol=1e-6)
    assert fp.report.distance_outliers.tolist() == [3]
    all_pts = find_fixed_points(cubic_field, x0, kind="flow", outlier_distance_scale=None)
    assert all_pts.n_points == 2


def test_tol_unique_merges_close_points_keeping_lowest_q():
    x0 = np.array([[0.99], [1.01]])
    fp = find_fixed_points(cubic_field, x0, kind="flow", method="lm", max_iters=1, keep_unconverged=True, tol_unique=0.5)
    assert fp.n_points == 1
    raw = find_fixed_points(cubic_field, x0, kind="flow", method="lm", max_iters=1, keep_unconverged=True, tol_unique=1e-9)
    assert raw.n_points == 2
    assert fp.q[0] == raw.q.min()


def test_adam_method_agrees_with_closed_form():
    x0 = np.array([[0.6], [-1.4], [0.1]])
    fp = find_fixed_points(cubic_field, x0, kind="flow", method="adam", max_iters=3000, lr=0.05)
    order = np.argsort(fp.points[:, 0])
    np.testing.assert_allclose(fp.points[order, 0], [-1, 0, 1], atol=1e-4)
    assert fp.converged.all()


def test_speed_and_linearize():
    x = np.array([[0.5], [2.0]])
    np.testing.assert_allclose(speed(cubic_field, x, kind="flow"), 0.5 * (x[:, 0] - x[:, 0] ** 3) ** 2, rtol=1e-6)
    jx, ju = linearize(cubic_field, x, kind="flow")
    np.testing.assert_allclose(jx[:, 0, 0], 1 - 3 * x[:, 0] ** 2, rtol=1e-6)
    assert ju.shape == (2, 1, 0)


@pytest.mark.parametrize(
    ("eigs", "kind", "label"),
    [
        ([-1.0, -0.5 + 1j, -0.5 - 1j], "flow", "stable"),
        ([1.0, 0.5], "flow", "unstable"),
        ([1.0, -2.0], "flow", "saddle"),
        ([0.0, -1.0], "flow", "marginal"),
        ([0.5, -0.9, 0.3j], "map", "stable"),
        ([1.5, 0.5], "map", "saddle"),
        ([1.1j, -1.2], "map", "unstable"),
        ([1.0, 0.2], "map", "marginal"),
    ],
)
def test_classify_stability(eigs, kind, label):
    assert classify_stability(np.asarray(eigs, complex), kind) == label


# -- models -------------------------------------------------------------------------------------


def test_leaky_rnn_linear_fixed_point_closed_form_map_and_flow():
    m = LeakyRNN(3, 6, 2, activation="identity", tau=5.0, dt=1.0, gain=0.5, key=jr.PRNGKey(0))
    u = np.array([0.3, -0.2, 0.5])
    W, B = np.asarray(m.W, np.float64), np.asarray(m.B, np.float64)
    expected = np.linalg.solve(np.eye(6) - W, B @ u)
    x0 = jr.normal(jr.PRNGKey(1), (5, 6))
    fp = find_fixed_points(m, x0, u)
    assert fp.n_points == 1
    np.testing.assert_allclose(fp.points[0], expected, atol=2e-5)
    a = 1.0 / 5.0
    J = (1 - a) * np.eye(6) + a * W
    np.testing.assert_allclose(fp.jacobians[0], J, atol=1e-6)
    np.testing.assert_allclose(fp.input_jacobians[0], a * B, atol=1e-6)
    np.testing.assert_allclose(np.sort_complex(fp.eigenvalues[0]), np.sort_complex(np.linalg.eigvals(J)), atol=1e-5)
    assert isinstance(fp.states, type(m.initial_state()))
    np.testing.assert_allclose(fp.states.x, fp.points)
    # the flow (vector field) view: same point, Jacobian (J_map - I) / dt
    jf, juf = linearize(m, fp.points, u, kind="flow")
    np.testing.assert_allclose(jf[0], (J - np.eye(6)) / m.dt, atol=1e-6)
    np.testing.assert_allclose(speed(m, fp.points, u, kind="flow"), [0.0], atol=1e-9)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_nmrnn_with_z_held_fixed_closed_form():
    m = NMRNN(2, 8, 1, n_nm=3, rank=2, linearized=True, tau_z=10.0, key=jr.PRNGKey(3))
    u = np.array([0.4, -0.6])
    z0 = np.array([0.5, -1.0, 0.2])
    fp = find_fixed_points(m, np.zeros((4, 8)) + np.arange(4)[:, None] * 0.1, u, clamp={"z": z0})
    assert fp.free_fields == ("x",) and fp.n_points == 1
    # independent NumPy: z_t = one leaky step from z0; s = sigmoid(A z_t + b); x = L diag(s) R^T x / N + B_x u
    Wz, Bz, Az, bz = (np.asarray(a, np.float64) for a in (m.W_z, m.B_z, m.A_z, m.b_z))
    L, R, Bx = (np.asarray(a, np.float64) for a in (m.L, m.R, m.B_x))
    a_z = 1.0 / 10.0
    z1 = (1 - a_z) * z0 + a_z * (Wz @ np.tanh(z0) + Bz @ u)
    s = _sigmoid(Az @ z1 + bz)
    M = L @ np.diag(s) @ R.T / 8
    expected = np.linalg.solve(np.eye(8) - M, Bx @ u)
    np.testing.assert_allclose(fp.points[0], expected, atol=2e-5)
    np.testing.assert_allclose(fp.jacobians[0], M, atol=1e-6)
    np.testing.assert_allclose(fp.states.z[0], z0)  # the clamped field is part of the returned state


def test_enmrnn_with_n_held_fixed_against_numpy():
    m = make_model("enmrnn", n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(4))
    u = np.array([0.7, -0.3])
    n0 = np.array([0.3, 0.8, 0.1, 0.5])
    inits = 0.3 * jr.normal(jr.PRNGKey(5), (8, 6))
    fp = find_fixed_points(m, inits, u, clamp={"n": n0})
    assert fp.n_points >= 1 and fp.free_fields == ("r",) and not fp.slow.any()
    W, T, U, b = (np.asarray(a, np.float64) for a in (m.effective_W(), m.full_T(), m.U, m.b))
    E, e = np.asarray(m.E, np.float64), np.asarray(m.e, np.float64)
    Weff = W + np.einsum("k,kij->ij", n0, T)
    a = m.dt / m.tau_r
    for r, J_found in zip(fp.points.astype(np.float64), fp.jacobians, strict=True):
        pre = Weff @ r + U @ u + b
        np.testing.assert_allclose(r, E * np.maximum(np.tanh(pre) + e, 0.0), atol=1e-5)
        dphi = E * (1 - np.tanh(pre) ** 2) * (np.tanh(pre) + e > 0)
        J = (1 - a) * np.eye(6) + a * dphi[:, None] * Weff
        np.testing.assert_allclose(J_found, J, atol=1e-5)


def _lstm_step_numpy(m, h, c, u):
    g = np.asarray(m.W_ih, np.float64) @ u + np.asarray(m.W_hh, np.float64) @ h + np.asarray(m.b, np.float64)
    i, f, gg, o = np.split(g, 4)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
    return _sigmoid(o) * np.tanh(c), c


def test_lstm_fixed_point_against_numpy_step():
    m = make_model("lstm", n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(6))
    u = np.array([0.5, -1.0])
    fp = find_fixed_points(m, 0.3 * jr.normal(jr.PRNGKey(7), (8, 12)), u)
    assert fp.free_fields == ("h", "c") and fp.n_points >= 1
    x = fp.points[0].astype(np.float64)
    h1, c1 = _lstm_step_numpy(m, x[:6], x[6:], u)
    np.testing.assert_allclose(np.concatenate([h1, c1]), x, atol=1e-5)
    # Jacobian against central finite differences of the NumPy step (float64)
    eps, J = 1e-6, np.zeros((12, 12))
    for k in range(12):
        d = np.zeros(12)
        d[k] = eps
        hp, cp = _lstm_step_numpy(m, (x + d)[:6], (x + d)[6:], u)
        hm, cm = _lstm_step_numpy(m, (x - d)[:6], (x - d)[6:], u)
        J[:, k] = (np.concatenate([hp, cp]) - np.concatenate([hm, cm])) / (2 * eps)
    np.testing.assert_allclose(fp.jacobians[0], J, atol=1e-5)


@pytest.mark.parametrize("name", ["vanilla", "lowrank", "nmrnn", "enmrnn", "gru", "lstm"])
def test_every_model_fixed_points_satisfy_the_step(name):
    """Every model of the registry: the returned full states are fixed by ``model.step`` (called
    directly on the state NamedTuple, not through the finder's flattening). The Jacobians are
    checked against closed forms / finite differences in the model-specific tests above."""
    m = make_model(name, n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(8))
    u = np.array([0.2, -0.4])
    dim = sum(np.size(a) for a in m.initial_state())
    fp = analysis.find_fixed_points(m, 0.3 * jr.normal(jr.PRNGKey(9), (8, dim)), u)
    # the default search's descent may also end at slow points (reported as such)
    assert fp.converged.all() and (~fp.slow).any()
    assert np.all(fp.q[~fp.slow] <= fp.report.tolerances["tol_q"])
    assert fp.report.n_candidates == fp.report.n_converged + len(fp.report.not_converged)
    first = int(np.flatnonzero(~fp.slow)[0])
    state0 = jax.tree.map(lambda a: jnp.asarray(a[first]), fp.states)
    after = eqx.filter_jit(lambda model, s, v: model.step(s, v))(m, state0, jnp.asarray(u, jnp.float32))
    for field in fp.free_fields:
        np.testing.assert_allclose(getattr(after, field), getattr(state0, field), atol=1e-5)


def test_finder_runs_on_trained_model_trajectories():
    from nmrnn.tasks import make_task
    from nmrnn.train import TrainConfig, fit

    task = make_task("mwg")
    model = make_model("vanilla", n_in=task.n_in, n_out=task.n_out, n_hidden=8, key=jr.PRNGKey(0))
    result = fit(model, task, TrainConfig(steps=3, lr=1e-2, fixed_batch=True), key=jr.PRNGKey(1))
    tr = simulate(result.model, task.fixed_batch().inputs[:4])
    inits = sample_states(tr.states, 16, key=jr.PRNGKey(2), noise_scale=0.01)
    fp = find_fixed_points(result.model, inits, np.zeros(task.n_in))
    assert fp.n_points >= 1
    assert fp.report.n_candidates == 16


def test_finder_accepts_sampled_trajectory_states():
    """The path used on a trained network: simulate, sample states (a NamedTuple), search."""
    m = make_model("lstm", n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(6))
    u = np.array([0.5, -1.0])
    tr = simulate(m, jnp.ones((2, 6, 2)) * u)
    inits = sample_states(tr.states, 8, key=jr.PRNGKey(2), noise_scale=0.1)
    assert isinstance(inits, type(m.initial_state()))
    fp = find_fixed_points(m, inits, u)
    ref = find_fixed_points(m, 0.3 * jr.normal(jr.PRNGKey(7), (8, 12)), u)
    assert fp.n_points >= 1
    np.testing.assert_allclose(fp.points[0], ref.points[0], atol=1e-4)


# -- sampling -----------------------------------------------------------------------------------


def test_sample_states_deterministic_and_from_trajectories():
    traj = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    a = sample_states(traj, 7, key=jr.PRNGKey(0))
    b = sample_states(traj, 7, key=jr.PRNGKey(0))
    c = sample_states(traj, 7, key=jr.PRNGKey(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rows = {tuple(r) for r in np.asarray(traj).reshape(-1, 3).tolist()}
    assert all(tuple(r) in rows for r in np.asarray(a).tolist())
    valid = np.zeros((2, 5), bool)
    valid[1, 3] = True
    only = sample_states(traj, 4, key=jr.PRNGKey(0), valid=valid)
    np.testing.assert_array_equal(only, np.tile(np.asarray(traj[1, 3]), (4, 1)))
    noisy = sample_states(traj, 7, key=jr.PRNGKey(0), noise_scale=0.5)
    assert 0 < np.abs(np.asarray(noisy) - np.asarray(a)).max() < 5


def test_sample_states_keeps_fields_paired():
    m = make_model("lstm", n_in=1, n_out=1, n_hidden=3, key=jr.PRNGKey(0))
    tr = simulate(m, jr.normal(jr.PRNGKey(1), (2, 6, 1)))
    s = sample_states(tr.states, 5, key=jr.PRNGKey(2))
    hs = np.asarray(tr.states.h).reshape(-1, 3)
    cs = np.asarray(tr.states.c).reshape(-1, 3)
    for h, c in zip(np.asarray(s.h), np.asarray(s.c), strict=True):
        idx = np.flatnonzero(np.all(np.isclose(hs, h), axis=1))
        assert np.any(np.all(np.isclose(cs[idx], c), axis=1))


# -- refusals -----------------------------------------------------------------------------------


class _NoStep(AbstractRecurrentModel):
    n_in: int = eqx.field(static=True, default=1)
    n_out: int = eqx.field(static=True, default=1)
    dt: float = eqx.field(static=True, default=1.0)

    def initial_state(self, batch_shape=()):
        from nmrnn.models.leaky import LeakyState

        return LeakyState(jnp.zeros((*batch_shape, 2)))

    def step(self, state, u, key=None):
        raise NotImplementedError

    def readout(self, state):
        return state.x


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(inputs=np.zeros(3)), "channels but the model expects n_in=2"),
        (dict(inputs=np.zeros((2, 2))), "2 rows but there are 4 initial states"),
        (dict(inputs=np.zeros((1, 1, 2))), r"inputs must have shape \(P,\) or \(K, P\)"),
        (dict(initial_states=np.zeros((4, 5))), "initial states have 5 coordinates"),
        (dict(initial_states=np.zeros((0, 6))), "K >= 1"),
        (dict(initial_states=np.full((4, 6), np.nan)), "NaN or inf"),
        (dict(clamp={"q": 1.0}), "cannot clamp 'q'"),
        (dict(clamp={"x": 1.0}), "nothing left to solve for"),
        (dict(kind="ode"), "unknown kind"),
        (dict(method="newton"), "unknown method"),
        (dict(tol_unique=-1.0), "tol_unique must be a positive number"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    m = make_model("vanilla", n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(0))
    args = dict(initial_states=np.zeros((4, 6)), inputs=np.zeros(2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        find_fixed_points(m, args.pop("initial_states"), args.pop("inputs"), **args)


def test_clamp_value_of_wrong_shape_refused():
    m = make_model("nmrnn", n_in=2, n_out=1, n_hidden=6, n_nm=3, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match=r"clamp value for 'z' must be a scalar or have shape \(3,\)"):
        find_fixed_points(m, np.zeros((2, 6)), np.zeros(2), clamp={"z": np.zeros(4)})


def test_objects_without_a_step_are_refused():
    with pytest.raises(ValueError, match="recurrent model .* or a callable"):
        find_fixed_points(object(), np.zeros((2, 2)))

    class OnlyState:
        def initial_state(self):
            return None

    with pytest.raises(ValueError, match="no usable one-step map"):
        find_fixed_points(OnlyState(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="does not define a one-step map"):
        find_fixed_points(_NoStep(), np.zeros((2, 2)), np.zeros(1))


def test_function_systems_refuse_clamps_and_wrong_output_shapes():
    with pytest.raises(ValueError, match="clamp applies to model state fields"):
        find_fixed_points(cubic_field, np.zeros((2, 1)), clamp={"x": 0.0})
    with pytest.raises(ValueError, match=r"maps a state of shape \(2,\) to shape \(3,\)"):
        find_fixed_points(lambda x, u: jnp.concatenate([x, x[:1]]), np.zeros((2, 2)))


def test_sample_states_refusals():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sample_states(np.zeros((2, 3, 4)), 0, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="noise_scale must be a non-negative number"):
        sample_states(np.zeros((2, 3, 4)), 2, key=jr.PRNGKey(0), noise_scale=-1)
    with pytest.raises(ValueError, match=r"valid must have shape \(batch, time\)=\(2, 3\)"):
        sample_states(np.zeros((2, 3, 4)), 2, key=jr.PRNGKey(0), valid=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="states must have shape"):
        sample_states(np.zeros(4), 2, key=jr.PRNGKey(0))
