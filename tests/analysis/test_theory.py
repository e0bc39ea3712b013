"""NM-RNN theory (paper 001, supplement A-B): Proposition 1's semilinear LSTM and the exact
rank-1 neuromodulatory signal, checked against plain NumPy loops of the equations."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.analysis.theory import (
    Rank1Params,
    SemilinearLSTM,
    SemilinearLSTMWeights,
    approximate_rank1_signal,
    exact_rank1_signal,
    lagged_inputs,
    make_mwg_rank1_nmrnn,
    mwg_rank1_setting,
    nm_state_decoder,
    proposition1_parameter_count,
    ramp_power_law,
    ramp_power_law_coefficients,
    rank1_params,
    reproduce_nmrnn,
    semilinear_lstm_from_nmrnn,
)
from nmrnn.models import LSTM, NMRNN, simulate
from nmrnn.tasks.mwg import MeasureWaitGo

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np(a):
    return np.asarray(a, dtype=np.float64)


def _random_model(cls, *args, seed, scale=0.5, **kwargs):
    """``cls(*args, **kwargs)`` with every array field drawn N(0, scale^2) from a seeded NumPy
    generator (the skeleton comes from ``eval_shape``, so no device work until the model runs)."""
    skeleton = eqx.filter_eval_shape(lambda: cls(*args, key=jr.PRNGKey(0), **kwargs))
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(skeleton)
    new = [
        jnp.asarray(scale * rng.standard_normal(leaf.shape), dtype=leaf.dtype)
        if isinstance(leaf, jax.ShapeDtypeStruct)
        else leaf
        for leaf in leaves
    ]
    return jax.tree.unflatten(treedef, new)


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=jnp.float32)


def _prop1_nmrnn(n, m, k, p, o, *, feedback=True, seed=0, **options):
    """A linearized symmetric NM-RNN with random parameters (z linear, tau_x = dt)."""
    model = _random_model(
        NMRNN, p, n, o, n_nm=m, rank=k, linearized=True, activation="identity", symmetric=True,
        feedback=feedback, tau_z=4.0, seed=seed, **options,
    )  # fmt: skip
    # Keep the linear z dynamics contracting so states stay O(1) over the test horizon.
    return eqx.tree_at(lambda mdl: mdl.W_z, model, 0.3 * model.W_z / np.sqrt(m))


def _paper_linearized_loop(model, inputs):
    """Supplement eq. 1-3 written out in NumPy (paper's notation, dt = 1)."""
    m = model.materialize()
    L, R = (_np(a) for a in m.factors())
    N, M = m.n_hidden, m.n_nm
    tau_z = m.tau_z / m.dt
    W_z, B_z, B_x = _np(m.W_z), _np(m.B_z), _np(m.B_x)
    B_zx = np.zeros((M, N)) if m.B_zx is None else _np(m.B_zx)
    A_z, b_z, C, d = _np(m.A_z), _np(m.b_z), _np(m.C), _np(m.d)
    x, z = np.zeros(N), np.zeros(M)
    ys, xs, zs = [], [], []
    for u in _np(inputs):
        z_new = ((1 - 1 / tau_z) * np.eye(M) + W_z / tau_z) @ z + (B_zx @ x + B_z @ u) / tau_z
        s = _sigmoid(A_z @ z_new + b_z)
        x = L @ np.diag(s) @ R.T @ x / N + B_x @ u
        z = z_new
        ys.append(C @ x + d)
        xs.append(x)
        zs.append(z)
    return np.array(ys), np.array(xs), np.array(zs)


# ----------------------------------------------------------------------------------------------
# the semilinear LSTM itself and the lagged inputs
# ----------------------------------------------------------------------------------------------


def test_semilinear_lstm_matches_numpy_loop():
    """Supplement eq. 4-6 in NumPy vs SemilinearLSTM.step, with a nonzero initial cell."""
    n_in, n_h, n_out, T = 3, 5, 2, 9
    shapes = [(n_h, n_h + n_in), (n_h,)] * 4 + [(n_out, n_h), (n_out,)]
    arrays = [0.4 * _normal(i, s) for i, s in enumerate(shapes)]
    c_init = _normal(10, (n_h,))
    model = SemilinearLSTM(n_in, n_h, n_out, weights=SemilinearLSTMWeights(*arrays, c_init=c_init))
    u = _normal(11, (T, n_in))
    traj = simulate(model, u)

    W_f, b_f, W_i, b_i, W_c, b_c, W_o, b_o, C, d = (_np(a) for a in arrays)
    h, c = np.zeros(n_h), _np(c_init)
    ys = []
    for ut in _np(u):
        hu = np.concatenate([h, ut])
        f, i = _sigmoid(W_f @ hu + b_f), _sigmoid(W_i @ hu + b_i)
        c = f * c + i * (W_c @ hu + b_c)
        h = (W_o @ hu + b_o) * c
        ys.append(C @ h + d)
    np.testing.assert_allclose(traj.outputs, np.array(ys), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(traj.states.c[-1], c, rtol=1e-5, atol=1e-5)


def test_semilinear_lstm_random_init_and_counts():
    model = SemilinearLSTM(4, 6, 2, key=jr.PRNGKey(0))
    assert model.c_init.shape == (6,) and not np.any(np.asarray(model.c_init))
    again = SemilinearLSTM(4, 6, 2, key=jr.PRNGKey(0))
    np.testing.assert_array_equal(model.W_f, again.W_f)
    from nmrnn.models import param_count

    # 4 gates of (H, H + P) plus biases, readout; c_init is a buffer, not a parameter.
    assert param_count(model) == 4 * 6 * (6 + 4) + 4 * 6 + 2 * 6 + 2


def test_lagged_inputs_against_manual():
    u = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3) + 1.0
    out = np.asarray(lagged_inputs(u))
    assert out.shape == (2, 4, 6)
    np.testing.assert_array_equal(out[:, :, :3], u)
    np.testing.assert_array_equal(out[:, 0, 3:], 0.0)
    np.testing.assert_array_equal(out[:, 1:, 3:], u[:, :-1])
    ext = np.asarray(lagged_inputs(u[0], extra_step=True))
    assert ext.shape == (5, 6)
    np.testing.assert_array_equal(ext[:4, :3], u[0])
    np.testing.assert_array_equal(ext[4, :3], 0.0)
    np.testing.assert_array_equal(ext[1:, 3:], u[0])
    with pytest.raises(ValueError, match="shape"):
        lagged_inputs(np.zeros(3))


# ----------------------------------------------------------------------------------------------
# Proposition 1
# ----------------------------------------------------------------------------------------------


def test_library_linearized_nmrnn_is_supplement_eq_1_3():
    """The conventions the construction rests on: our NMRNN = supplement eq. 1-3."""
    model = _prop1_nmrnn(10, 4, 2, 3, 2)
    u = _normal(3, (15, 3))
    traj = simulate(model, u)
    ys, xs, zs = _paper_linearized_loop(model, u)
    np.testing.assert_allclose(traj.outputs, ys, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(traj.states.x, xs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(traj.states.z, zs, rtol=1e-4, atol=1e-4)


SIZES = [  # (N, M, K, P, O, feedback)
    (8, 3, 1, 1, 1, True),
    (12, 5, 2, 3, 2, True),
    (20, 4, 3, 2, 1, False),
    (16, 6, 4, 4, 3, True),
]


@pytest.mark.parametrize("n,m,k,p,o,feedback", SIZES)
def test_semilinear_lstm_reproduces_nmrnn(n, m, k, p, o, feedback):
    """Outputs lag by one step (LSTM step t+1 gives y_t; step 0 gives y_{-1} = d); the cell holds
    w_{t-1} = R^T x_{t-1} / N; W_zh h_t = z_t without lag."""
    model = _prop1_nmrnn(n, m, k, p, o, feedback=feedback, seed=n + m)
    u = _normal(k + p, (3, 14, p))
    ref = simulate(model, u)
    ys, _, _ = _paper_linearized_loop(model, u[1])
    np.testing.assert_allclose(ref.outputs[1], ys, rtol=1e-4, atol=1e-4)

    lstm = semilinear_lstm_from_nmrnn(model)
    assert lstm.n_hidden == k + m + p and lstm.n_in == 2 * p
    rep = reproduce_nmrnn(model, u)
    traj = rep.lstm  # the LSTM's own trajectory on lagged_inputs(u, extra_step=True): T + 1 steps
    assert traj.outputs.shape == (3, 15, o)
    scale = 1.0 + float(np.abs(ref.outputs).max())
    tol = {"rtol": 1e-5, "atol": 2e-5 * scale}
    np.testing.assert_allclose(traj.outputs[:, 1:], ref.outputs, **tol)
    np.testing.assert_allclose(traj.outputs[:, 0], np.broadcast_to(model.d, (3, o)), atol=1e-6)

    L, _ = model.materialize().factors()
    w = np.asarray(ref.states.x @ L) / n
    np.testing.assert_allclose(traj.states.c[:, 1:, :k], w, **tol)
    np.testing.assert_array_equal(traj.states.c[:, :, k:], 1.0)
    z = traj.states.h[:, :-1] @ nm_state_decoder(model).T
    np.testing.assert_allclose(z, ref.states.z, **tol)

    np.testing.assert_allclose(rep.outputs, ref.outputs, **tol)
    np.testing.assert_allclose(rep.w, w, **tol)
    np.testing.assert_allclose(rep.z, ref.states.z, **tol)


def test_semilinear_lstm_without_lag_correction_is_off():
    """Sanity of the lag claim: the unshifted outputs do not match (the test above can fail)."""
    model = _prop1_nmrnn(12, 5, 2, 3, 2)
    u = _normal(0, (14, 3))
    ref = simulate(model, u)
    traj = simulate(semilinear_lstm_from_nmrnn(model), lagged_inputs(u))
    assert np.abs(np.asarray(traj.outputs - ref.outputs)).max() > 1e-2


def test_semilinear_lstm_with_input_routing():
    """x and z see different input channels (the multitask form)."""
    model = _prop1_nmrnn(10, 4, 2, 4, 1, x_inputs=(0, 1), z_inputs=(1, 2, 3))
    u = _normal(7, (2, 12, 4))
    ref = simulate(model, u)
    rep = reproduce_nmrnn(model, u)
    np.testing.assert_allclose(rep.outputs, ref.outputs, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(rep.z, ref.states.z, rtol=1e-5, atol=1e-4)


def test_gates_take_the_values_of_the_proof():
    """i_t = 1/2, f_t = [s_{t-1}; 1], h_t bottom = u_{t-1}: gate values of the proof."""
    model = _prop1_nmrnn(12, 5, 2, 3, 2)
    u = _normal(2, (10, 3))
    ref = simulate(model, u)
    lstm = semilinear_lstm_from_nmrnn(model)
    traj = simulate(lstm, lagged_inputs(u))
    h_prev = np.concatenate([np.zeros((1, lstm.n_hidden)), np.asarray(traj.states.h[:-1])])
    hu = np.concatenate([h_prev, np.asarray(lagged_inputs(u))], axis=-1)
    f = _sigmoid(hu @ _np(lstm.W_f).T + _np(lstm.b_f))
    i = _sigmoid(hu @ _np(lstm.W_i).T + _np(lstm.b_i))
    s = np.asarray(model.gains(ref.states.z))
    np.testing.assert_allclose(f[1:, :2], s[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(f[:, 2:], 1.0)
    np.testing.assert_array_equal(i, 0.5)
    np.testing.assert_allclose(traj.states.h[1:, 2 + 5 :], u[:-1], rtol=1e-6, atol=1e-6)


def test_parameter_count_formula_and_support():
    # Hand count for the rank-1 MWG sizes, K=1, M=20, P=3, O=1:
    # forget 2*24 = 48, cell 3, output 20*(1+20+9) + 3 = 603, readout 1*(1+1+3) = 5 -> 659.
    count = proposition1_parameter_count(1, 20, 3, 1)
    assert (count.forget, count.input, count.cell, count.output, count.readout) == (
        48, 0, 3, 603, 5,
    )  # fmt: skip
    assert count.paper_total == 659 and count.total == 660
    assert count.structural_zeros == 21 * 3 and count.nonzero == 660 - 63

    # The built LSTM's nonzero entries are exactly the corrected count (generic parameters,
    # feedback on, nonzero d), and everything else in its gates and readout is zero.
    for n, m, k, p, o in [(12, 5, 2, 3, 2), (9, 3, 1, 2, 1), (16, 6, 4, 4, 3)]:
        model = _prop1_nmrnn(n, m, k, p, o, seed=3 * n + k)
        lstm = semilinear_lstm_from_nmrnn(model)
        arrays = [lstm.W_f, lstm.W_i, lstm.W_c, lstm.W_o, lstm.b_i, lstm.b_c, lstm.b_o,
                  lstm.b_f, lstm.C, lstm.d]  # fmt: skip
        nonzero = sum(int(np.count_nonzero(np.asarray(a))) for a in arrays)
        assert nonzero == proposition1_parameter_count(k, m, p, o).nonzero

    # O(max{K^2, M^2, PK, PM, OK, OP}): each of the 14 monomials of the formula is at most its
    # coefficient times that max (K <= K^2, M <= M^2, P <= PK, O <= OK, KM <= max(K^2, M^2)),
    # and the coefficients sum to 16, reached at K = M = P = O = 1.
    assert proposition1_parameter_count(1, 1, 1, 1).paper_total == 16
    for k, m, p, o in [(3, 20, 5, 2), (50, 2, 1, 1), (1, 2, 40, 30), (7, 7, 7, 7)]:
        big = max(k * k, m * m, p * k, p * m, o * k, o * p)
        assert proposition1_parameter_count(k, m, p, o).paper_total <= 16 * big


def test_forget_bias_gives_exact_ones():
    for dtype in (jnp.float32,):
        assert float(jax.nn.sigmoid(jnp.asarray(50.0, dtype))) == 1.0


# ----------------------------------------------------------------------------------------------
# Proposition 1: refusals
# ----------------------------------------------------------------------------------------------


def _nm(**options):
    base = {"n_nm": 3, "rank": 2, "linearized": True, "activation": "identity", "symmetric": True}
    base.update(options)
    return _random_model(NMRNN, 2, 8, 1, seed=0, **base)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"linearized": False, "activation": "tanh"}, "linearized"),
        ({"linearized": True, "activation": "tanh"}, "linear neuromodulatory"),
        ({"linearized": False, "tau_x": 2.0}, "tau_x = dt"),
        ({"symmetric": False}, "symmetric"),
        ({"scale_by_n": False}, "scale_by_n"),
        ({"orthonormalize": False}, "orthonormal"),
    ],
)
def test_proposition1_refuses_models_outside_its_hypotheses(options, match):
    model = _nm(**options)
    with pytest.raises(ValueError, match=match):
        semilinear_lstm_from_nmrnn(model)
    with pytest.raises(ValueError, match=match):
        reproduce_nmrnn(model, jnp.zeros((3, 2)))


def test_proposition1_refuses_other_bad_input():
    with pytest.raises(ValueError, match="needs an NMRNN"):
        semilinear_lstm_from_nmrnn(_random_model(LSTM, 2, 4, 1, seed=0))
    with pytest.raises(ValueError, match="forget_bias"):
        semilinear_lstm_from_nmrnn(_nm(), forget_bias=-1.0)
    with pytest.raises(ValueError, match="channels"):
        reproduce_nmrnn(_nm(), jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="exactly one"):
        SemilinearLSTM(2, 3, 1)
    bad = SemilinearLSTMWeights(*(jnp.zeros((3, 3)) for _ in range(10)))
    with pytest.raises(ValueError, match="W_f must have shape"):
        SemilinearLSTM(2, 3, 1, weights=bad)
    with pytest.raises(ValueError, match="rank"):
        proposition1_parameter_count(0, 2, 2, 1)


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


# ----------------------------------------------------------------------------------------------
# the paper's rank-1 MWG setting
# ----------------------------------------------------------------------------------------------


def test_mwg_rank1_setting_builds_the_paper_network():
    from nmrnn.train import TrainConfig

    setting = mwg_rank1_setting()
    model = make_mwg_rank1_nmrnn(key=jr.PRNGKey(0))
    assert (model.n_hidden, model.n_nm, model.rank) == (100, 20, 1)
    assert (model.tau_x, model.tau_z, model.dt) == (2.0, 10.0, 1.0)
    assert model.symmetric and model._x_phi()(jnp.asarray(3.0)) == 3.0
    assert setting.test_intervals == (7, 15, 23)
    config = TrainConfig(**setting.train)
    assert (config.steps, config.lr, config.batch_size) == (50_000, 1e-3, 40)

    # The theory applies to this network: its own MWG outputs give back its gains.
    batch = MeasureWaitGo().test_batch(list(setting.test_intervals))
    traj = simulate(model, batch.inputs)
    sig = exact_rank1_signal(rank1_params(model), traj.outputs[..., 0], batch.inputs)
    s_model = np.asarray(model.gains(traj.states.z)[..., 0])
    driven = np.isfinite(np.asarray(sig.s))
    assert driven[:, -40:].all()  # after the pulses x has a rank-1 component
    np.testing.assert_allclose(np.asarray(sig.s)[driven], s_model[driven], rtol=5e-3, atol=1e-3)
