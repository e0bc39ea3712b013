"""The exact neuromodulatory signal of a rank-1 NM-RNN (paper 001, supplement B, eq. 10-16),
eq. 16 and its power law, checked against the model's own gains and closed forms."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from theory_helpers import _normal, _np, _random_model

from nmrnn.analysis.rank1 import (
    Rank1Params,
    approximate_rank1_signal,
    exact_rank1_signal,
    ramp_power_law,
    ramp_power_law_coefficients,
    rank1_params,
)
from nmrnn.models import LSTM, NMRNN, simulate
from nmrnn.tasks.mwg import MeasureWaitGo

# ----------------------------------------------------------------------------------------------
# rank-1 exact signal
# ----------------------------------------------------------------------------------------------


def _rank1_model(*, symmetric, activation="identity", tau_x=2.0, x_inputs=None, seed=0):
    model = _random_model(
        NMRNN, 3, 10, 1, n_nm=4, rank=1, tau_x=tau_x, tau_z=5.0, activation=activation,
        symmetric=symmetric, x_inputs=x_inputs, seed=seed,
    )  # fmt: skip
    return eqx.tree_at(lambda mdl: mdl.W_z, model, 0.3 * model.W_z)


@pytest.mark.parametrize(
    "symmetric,activation,x_inputs",
    [(True, "identity", None), (False, "identity", (0, 2)), (False, "tanh", None)],
)
def test_exact_signal_recovers_the_models_own_gains(symmetric, activation, x_inputs):
    """Target = the model's own output -> the formula returns the model's s_t (eq. 12-14)."""
    model = _rank1_model(symmetric=symmetric, activation=activation, x_inputs=x_inputs)
    u = _normal(4, (2, 25, 3))
    traj = simulate(model, u)
    params = rank1_params(model)
    sig = exact_rank1_signal(params, traj.outputs[..., 0], u)
    s_model = np.asarray(model.gains(traj.states.z)[..., 0])
    assert np.all(np.isnan(np.asarray(sig.s[:, 0])))  # x_{-1} = 0: s_0 undetermined
    np.testing.assert_allclose(sig.s[:, 1:], s_model[:, 1:], rtol=2e-3, atol=2e-4)
    L = _np(params.L)
    l_hat = L / np.linalg.norm(L)
    x = _np(traj.states.x)
    np.testing.assert_allclose(sig.w, x @ l_hat, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sig.w_perp, x - (x @ l_hat)[..., None] * l_hat, atol=1e-4)


def test_exact_signal_fed_back_reproduces_the_mwg_ramp():
    """s from the formula, fed into a NumPy loop of the rank-1 linear dynamics, gives f exactly."""
    model = _rank1_model(symmetric=True)
    model = eqx.tree_at(lambda mdl: mdl.d, model, jnp.array([1.5]))  # f - d never vanishes
    params = rank1_params(model)
    batch = MeasureWaitGo().test_batch([7, 15, 23])
    f = batch.targets[..., 0]
    l_hat = params.L / jnp.linalg.norm(params.L)
    w_start = (f[:, 0] - params.d) / jnp.dot(params.c, l_hat)
    x_init = w_start[:, None] * l_hat + 0.3 * _normal(9, (3, 10))
    sig = exact_rank1_signal(params, f, batch.inputs, x_init)
    assert np.all(np.isfinite(np.asarray(sig.s)))

    L, R, B_x, c = (_np(a) for a in (params.L, params.R, params.B_x, params.c))
    a, d, scale = params.alpha, float(params.d), params.scale
    for trial in range(3):
        x = _np(x_init[trial])
        ys = []
        for t, u in enumerate(_np(batch.inputs[trial])):
            s = float(sig.s[trial, t])
            x = (1 - a) * x + a * (scale * L * s * (R @ x) + B_x @ u)
            ys.append(c @ x + d)
        np.testing.assert_allclose(ys, _np(f[trial]), rtol=0, atol=1e-4)


def test_power_law_matches_the_general_formula_on_a_ramp():
    model = _rank1_model(symmetric=False, seed=3)
    model = eqx.tree_at(lambda mdl: mdl.d, model, jnp.array([-1.2]))
    params = rank1_params(model)
    t_go, interval, T = 20, 15, 60
    t = np.arange(T)
    f = -0.5 + np.clip((t - t_go) / interval, 0.0, 1.0)

    # Discrete closed form == eq.-16 (Euler) == exact formula without inputs or residual.
    law = np.asarray(ramp_power_law(params, t, t_go=t_go, interval=interval))
    approx = approximate_rank1_signal(params, f)
    np.testing.assert_allclose(approx.s, law, rtol=1e-5)
    l_hat = params.L / jnp.linalg.norm(params.L)
    x_init = approx.w[0] * l_hat  # at rest on the rank-1 mode, w_{-1} = w_0
    exact = exact_rank1_signal(params, f, x_init=x_init)
    np.testing.assert_allclose(exact.s, law, rtol=1e-4)
    np.testing.assert_allclose(exact.w, approx.w, rtol=1e-5, atol=1e-6)

    # Hand-written power law: s_inf (1 + tau / (t - 1 - t0)) on the ramp, t0 = t_go + (d-low)/k.
    s_inf = 1.0 / (params.scale * float(params.R @ params.L))
    k, tau = 1.0 / interval, 2.0
    t0 = t_go + (-1.2 + 0.5) / k
    ramp = (t > t_go) & (t <= t_go + interval)
    expected = np.where(ramp, s_inf * (1 + tau / (t - 1 - t0)), s_inf)
    np.testing.assert_allclose(law, expected, rtol=1e-5)
    coeffs = ramp_power_law_coefficients(params, t_go=t_go, interval=interval)
    np.testing.assert_allclose([coeffs.s_inf, coeffs.t0, coeffs.tau], [s_inf, t0, tau], rtol=1e-5)

    # Continuous eq. 16 with the analytic slope == the continuous closed form on the ramp.
    slope = np.where((t >= t_go) & (t < t_go + interval), k, 0.0)
    cont = approximate_rank1_signal(params, f, slope, discrete=False)
    law_c = ramp_power_law(params, t, t_go=t_go, interval=interval, discrete=False)
    np.testing.assert_allclose(cont.s, law_c, rtol=1e-5)
    inside = (t >= t_go) & (t < t_go + interval)
    np.testing.assert_allclose(
        np.asarray(law_c)[inside], s_inf * (1 + tau / (t[inside] - t0)), rtol=1e-5
    )


def test_discrete_power_law_converges_to_eq16_at_first_order():
    """Refining the step (time in steps scaled by n, tau_x / dt = 2n) takes the Euler signal to
    the continuous eq. 16, with error O(1/n)."""
    base = rank1_params(_rank1_model(symmetric=False, seed=3))
    base = eqx.tree_at(lambda prm: prm.d, base, jnp.asarray(-1.2))
    times = np.array([22.0, 26.0, 30.0])  # physical times inside the ramp [20, 35]
    errors = []
    for n in (1, 2, 4, 8, 16):
        params = Rank1Params(base.L, base.R, base.B_x, base.c, base.d, 1.0 / (2 * n), base.scale,
                             base.activation)  # fmt: skip
        kwargs = {"t_go": 20 * n, "interval": 15 * n}
        disc = ramp_power_law(params, times * n, discrete=True, **kwargs)
        cont = ramp_power_law(params, times * n, discrete=False, **kwargs)
        errors.append(float(np.max(np.abs(np.asarray(disc - cont)))))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[0] > 1e-3
    np.testing.assert_allclose(ratios, 2.0, rtol=0.15)


def test_symmetric_orthonormal_plateau_is_one():
    params = rank1_params(_rank1_model(symmetric=True))
    np.testing.assert_allclose(params.plateau, 1.0, rtol=1e-5)
    # A constant target needs the plateau value exactly.
    sig = approximate_rank1_signal(params, jnp.full(5, 0.3))
    np.testing.assert_allclose(sig.s, 1.0, rtol=1e-5)


def test_rank1_refusals():
    with pytest.raises(ValueError, match="rank 1, got rank=3"):
        rank1_params(_random_model(NMRNN, 3, 10, 1, rank=3, seed=0))
    with pytest.raises(ValueError, match="needs an NMRNN"):
        rank1_params(_random_model(LSTM, 3, 4, 1, seed=0))
    model = _rank1_model(symmetric=False)
    with pytest.raises(ValueError, match="out of range"):
        rank1_params(model, output=1)
    params = rank1_params(model)
    with pytest.raises(ValueError, match="inputs must have shape"):
        exact_rank1_signal(params, jnp.zeros(8), jnp.zeros((8, 2)))
    with pytest.raises(ValueError, match="inputs must have shape"):
        exact_rank1_signal(params, jnp.zeros(8), jnp.zeros((7, 3)))
    with pytest.raises(ValueError, match="x_init"):
        exact_rank1_signal(params, jnp.zeros(8), x_init=jnp.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        exact_rank1_signal(params, jnp.asarray(1.0))
    with pytest.raises(ValueError, match="slopes"):
        approximate_rank1_signal(params, jnp.zeros(8), jnp.zeros(7), discrete=False)
    with pytest.raises(ValueError, match="interval"):
        ramp_power_law(params, np.arange(5), t_go=1, interval=0)
    with pytest.raises(ValueError, match="high != low"):
        ramp_power_law(params, np.arange(5), t_go=1, interval=3, low=0.5, high=0.5)
    tanh_params = rank1_params(_rank1_model(symmetric=False, activation="tanh"))
    with pytest.raises(ValueError, match="phi = identity"):
        approximate_rank1_signal(tanh_params, jnp.zeros(8))
    with pytest.raises(ValueError, match="phi = identity"):
        ramp_power_law(tanh_params, np.arange(5), t_go=1, interval=3)
