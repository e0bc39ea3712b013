"""Proposition 1 of paper 001 (supplement A): the semilinear LSTM and the construction that
reproduces a linearised symmetric NM-RNN, checked against plain NumPy loops of the equations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from theory_helpers import (
    _normal,
    _np,
    _paper_linearized_loop,
    _prop1_nmrnn,
    _random_model,
    _sigmoid,
)

from nmrnn.analysis.proposition1 import (
    lagged_inputs,
    nm_state_decoder,
    proposition1_parameter_count,
    reproduce_nmrnn,
    semilinear_lstm_from_nmrnn,
)
from nmrnn.models import LSTM, NMRNN, SemilinearLSTM, SemilinearLSTMWeights, simulate

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


def test_semilinear_lstm_is_registered():
    from nmrnn.models import MODELS, make_model, model_options

    assert MODELS["semilinear_lstm"] is SemilinearLSTM
    model = make_model("semilinear_lstm", n_in=4, n_out=2, n_hidden=6, key=jr.PRNGKey(0))
    direct = SemilinearLSTM(4, 6, 2, key=jr.PRNGKey(0))
    np.testing.assert_array_equal(model.W_o, direct.W_o)
    assert model.state_fields == ("h", "c") and model.modulatory_fields == ()
    assert set(model_options("semilinear_lstm")) == {"weights"}


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
