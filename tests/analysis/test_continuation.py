"""Continuation and bifurcation detection against closed forms."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.analysis import (
    TWO_NEURON_W,
    ModelFamily,
    TwoNeuronFamily,
    continue_fixed_point,
    two_neuron_origin_eigenvalues,
)
from nmrnn.analysis.systems import saddle_node_field
from nmrnn.models import LeakyRNN, make_model


def transcritical(x, mu):
    """dx/dt = mu x - x^2: the branch x = 0 has eigenvalue mu (a branch point at mu = 0)."""
    return mu * x - x**2


def logistic(x, r):
    """x' = r x (1 - x): fixed point 1 - 1/r, multiplier 2 - r (period doubling at r = 3)."""
    return r * x * (1 - x)


THETA = 0.7


def rotation_map(x, p):
    """x' = p R(theta) x: multipliers p e^{+/- i theta}, a Neimark-Sacker (Hopf) point at p = 1."""
    c, s = jnp.cos(THETA), jnp.sin(THETA)
    return p * jnp.stack([c * x[0] - s * x[1], s * x[0] + c * x[1]])


def test_two_neuron_hopf_at_one_half_and_eigenvalues_on_a_grid():
    br = continue_fixed_point(TwoNeuronFamily("n", 0.0), jnp.zeros(2), 0.1, 1.0, ds_max=0.05)
    assert br.status.startswith("reached p_end")
    assert br.params[0] == pytest.approx(0.1) and br.params[-1] == pytest.approx(1.0)
    hopfs = br.of_kind("hopf")
    assert len(hopfs) == 1 and len(br.bifurcations) == 1
    h = hopfs[0]
    assert abs(h.param - 0.5) < 1e-3
    assert abs(h.frequency - 0.5) < 1e-3  # Im(lambda) = n at the origin
    np.testing.assert_allclose(h.point, [0, 0], atol=1e-6)
    np.testing.assert_allclose(np.sort(h.eigenvalues.imag), [-0.5, 0.5], atol=1e-3)
    assert abs(h.margin) < 1e-5
    # every point of the branch is the origin, with eigenvalues (2n - 1) +/- i n
    np.testing.assert_allclose(br.points, 0.0, atol=1e-6)
    closed = two_neuron_origin_eigenvalues(br.params)  # sorted by decreasing Im
    numeric = np.take_along_axis(br.eigenvalues, np.argsort(-br.eigenvalues.imag, axis=1), axis=1)
    np.testing.assert_allclose(numeric, closed, atol=1e-5)
    assert len(br.params) >= 15
    # stability flips exactly at the Hopf
    for p, st in zip(br.params, br.stability, strict=True):
        assert st == ("stable" if p < h.param else "unstable")


def test_natural_continuation_on_a_uniform_grid():
    br = continue_fixed_point(TwoNeuronFamily("n", 0.0), jnp.zeros(2), 0.2, 0.8, method="natural", ds=0.05)
    np.testing.assert_allclose(br.params, np.linspace(0.2, 0.8, 13), atol=1e-5)
    closed = two_neuron_origin_eigenvalues(br.params)
    numeric = np.take_along_axis(br.eigenvalues, np.argsort(-br.eigenvalues.imag, axis=1), axis=1)
    np.testing.assert_allclose(numeric, closed, atol=1e-5)
    assert abs(br.of_kind("hopf")[0].param - 0.5) < 1e-3


def test_additive_input_moves_the_fixed_point_as_the_closed_form_predicts():
    n = 0.3
    br = continue_fixed_point(TwoNeuronFamily("r3", n), jnp.zeros(2), 0.0, 0.2)
    t = br.tangents[0]
    slope = t[:2] / t[2]
    np.testing.assert_allclose(slope, np.linalg.solve(np.eye(2) - n * TWO_NEURON_W, np.ones(2)), atol=1e-4)
    # every point on the curve solves r = tanh(n W r + r3)
    resid = br.points - np.tanh(n * br.points @ TWO_NEURON_W.T + br.params[:, None])
    assert np.abs(resid).max() < 1e-5
    assert np.linalg.norm(br.points[-1]) > 0.1


def test_saddle_node_located_and_passed_by_arclength():
    br = continue_fixed_point(saddle_node_field, jnp.array([1.0]), 1.0, -1.0, ds_max=0.1)
    folds = br.of_kind("fold")
    assert len(folds) == 1 and len(br.bifurcations) == 1
    assert abs(folds[0].param) < 1e-4 and abs(folds[0].point[0]) < 1e-2
    # the curve turns: x > 0 stable before the fold, x < 0 unstable after
    i = folds[0].step
    assert br.points[i, 0] > 0 and br.points[i + 1, 0] < 0
    assert set(br.stability[: i + 1]) == {"stable"} and set(br.stability[i + 1 :]) == {"unstable"}
    np.testing.assert_allclose(br.points[:, 0] ** 2, br.params, atol=1e-5)  # x^2 = mu on the curve
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, -2 * br.points[:, 0], atol=1e-5)
    assert "left p_bounds" in br.status


def test_natural_continuation_stops_at_the_fold():
    br = continue_fixed_point(saddle_node_field, jnp.array([1.0]), 1.0, -1.0, method="natural", ds=0.05)
    assert -1e-5 < br.params.min() < 0.06  # it gets to the fold (within float32) but not past it
    assert "a fold?" in br.status


def test_branch_point_when_the_curve_does_not_turn():
    br = continue_fixed_point(transcritical, jnp.array([0.0]), -1.0, 1.0, ds_max=0.1)
    bps = br.of_kind("branch_point")
    assert len(bps) == 1 and abs(bps[0].param) < 1e-4
    np.testing.assert_allclose(br.points, 0.0, atol=1e-6)


def test_period_doubling_of_the_logistic_map():
    br = continue_fixed_point(logistic, jnp.array([0.5]), 2.0, 3.5, kind="map", ds_max=0.05)
    pd = br.of_kind("period_doubling")
    assert len(pd) == 1 and abs(pd[0].param - 3.0) < 1e-4
    np.testing.assert_allclose(br.points[:, 0], 1 - 1 / br.params, atol=1e-5)
    np.testing.assert_allclose(br.eigenvalues[:, 0].real, 2 - br.params, atol=1e-4)


def test_neimark_sacker_hopf_of_a_map():
    br = continue_fixed_point(rotation_map, jnp.zeros(2), 0.8, 1.2, kind="map", ds_max=0.05)
    hopfs = br.of_kind("hopf")
    assert len(hopfs) == 1 and abs(hopfs[0].param - 1.0) < 1e-4
    assert abs(hopfs[0].frequency - THETA) < 1e-4  # arg(lambda) in radians per step


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((jnp.zeros(2), 0.5, 0.5), {}, "must be finite and different"),
        ((jnp.zeros((2, 2)), 0.1, 0.5), {}, r"x0 must be a state vector of shape \(D,\)"),
        ((jnp.zeros(3), 0.1, 0.5), {}, "failed"),
        ((jnp.zeros(2), 0.1, 0.5), {"method": "secant"}, "unknown method"),
        ((jnp.zeros(2), 0.1, 0.5), {"kind": "ode"}, "unknown kind"),
        ((jnp.zeros(2), 0.1, 0.5), {"ds": 1.0, "ds_max": 0.1}, "ds_min <= ds <= ds_max"),
        ((jnp.zeros(2), 0.1, 0.5), {"p_bounds": (0.2, 0.6)}, "outside p_bounds"),
    ],
)
def test_bad_continuation_arguments_are_refused(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        continue_fixed_point(TwoNeuronFamily("n", 0.0), *args, **kwargs)


def test_no_fixed_point_near_x0_is_refused():
    with pytest.raises(ValueError, match="no fixed point found near x0"):
        continue_fixed_point(saddle_node_field, jnp.array([0.0]), -1.0, -2.0)
    with pytest.raises(ValueError, match="must return shape"):
        continue_fixed_point(lambda x, p: jnp.concatenate([x, x]), jnp.zeros(1), 0.0, 1.0)
    with pytest.raises(ValueError, match="f must be a callable"):
        continue_fixed_point(3.0, jnp.zeros(1), 0.0, 1.0)


def test_model_family_input_direction_linear_rnn_closed_form():
    m = LeakyRNN(2, 5, 1, activation="identity", tau=4.0, gain=0.5, key=jr.PRNGKey(0))
    du = np.array([1.0, -0.5])
    fam = ModelFamily(m, input_direction=du, kind="map")
    br = continue_fixed_point(fam, jnp.zeros(5), 0.0, 2.0, kind="map", ds_max=0.5)
    W, B = np.asarray(m.W, np.float64), np.asarray(m.B, np.float64)
    per_unit = np.linalg.solve(np.eye(5) - W, B @ du)
    np.testing.assert_allclose(br.points, br.params[:, None] * per_unit, atol=1e-4)
    assert br.params[-1] == pytest.approx(2.0)


def test_model_family_scaling_clamped_neuromodulators():
    m = make_model("enmrnn", n_in=2, n_out=1, n_hidden=6, key=jr.PRNGKey(4))
    n0 = np.array([0.3, 0.8, 0.1, 0.5])
    u = np.array([0.7, -0.3])
    fam = ModelFamily(m, inputs=u, clamp={"n": n0}, clamp_direction={"n": n0}, kind="flow")
    from nmrnn.analysis import find_fixed_points

    x0 = find_fixed_points(m, 0.3 * jr.normal(jr.PRNGKey(5), (8, 6)), u, clamp={"n": n0}).points[0]
    br = continue_fixed_point(fam, jnp.asarray(x0), 0.0, 1.0, ds_max=0.2)
    W, T, U, b = (np.asarray(a, np.float64) for a in (m.effective_W(), m.full_T(), m.U, m.b))
    E, e = np.asarray(m.E, np.float64), np.asarray(m.e, np.float64)
    for p, r in zip(br.params, br.points.astype(np.float64), strict=True):
        pre = (W + np.einsum("k,kij->ij", (1 + p) * n0, T)) @ r + U @ u + b
        np.testing.assert_allclose(r, E * np.maximum(np.tanh(pre) + e, 0.0), atol=2e-5)
    with pytest.raises(ValueError, match="not clamped"):
        ModelFamily(m, clamp_direction={"n": n0})
    with pytest.raises(ValueError, match=r"inputs must have shape \(2,\)"):
        ModelFamily(m, inputs=np.zeros(3))
