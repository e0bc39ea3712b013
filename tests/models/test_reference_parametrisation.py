"""The NM-RNN authors' parametrisation (``nmrnn.models.reference_options``) against NumPy loops of
the equations of their code (lindermanlab/nm-rnn, ``rnn_code.py``: ``nm_rnn``, ``lr_rnn``,
``rnn``, ``simple_lstm``), run on the same raw parameters."""

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model, reference_options, simulate
from nmrnn.models.base import replace_fields
from nmrnn.tasks import MeasureWaitGo

T_X, T_Z = 10.0, 100.0


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def authors_nm_rnn(p, x0, z0, inputs, tau_x, tau_z):
    """Their NM-RNN: z first, gains of the new z, U orthonormalised by QR (unit columns), no 1/N."""
    U = np.linalg.qr(p["row_factors"])[0]
    V = p["column_factors"]
    x, z, ys = x0.copy(), z0.copy(), []
    for u in inputs:
        z = (1 - 1 / tau_z) * z + (1 / tau_z) * p["nm_rec_weight"] @ np.tanh(z) + (1 / tau_z) * p["nm_input_weight"] @ u
        s = sigmoid(p["nm_sigmoid_weight"] @ z + p["nm_sigmoid_intercept"])
        x = (1 - 1 / tau_x) * x + (1 / tau_x) * (U * s) @ (V.T @ np.tanh(x)) + (1 / tau_x) * p["input_weights"] @ u
        ys.append(p["readout_weights"] @ x + p["readout_bias"])
    return np.asarray(ys)


def authors_lr_rnn(p, x0, inputs, tau):
    U = np.linalg.qr(p["row_factors"])[0]
    n = x0.shape[0]
    x, ys = x0.copy(), []
    for u in inputs:
        x = (1 - 1 / tau) * x + (1 / (tau * n)) * U @ (p["column_factors"].T @ np.tanh(x)) + (1 / tau) * p["input_weights"] @ u
        ys.append(p["readout_weights"] @ x + p["readout_bias"])
    return np.asarray(ys)


def authors_rnn(p, x0, inputs, tau):
    n = x0.shape[0]
    x, ys = x0.copy(), []
    for u in inputs:
        x = (1 - 1 / tau) * x + (1 / (tau * n)) * p["recurrent_weights"] @ np.tanh(x) + (1 / tau) * p["input_weights"] @ u
        ys.append(p["readout_weights"] @ x + p["readout_bias"])
    return np.asarray(ys)


def authors_lstm(p, c0, h0, inputs):
    c, h, ys = c0.copy(), h0.copy(), []
    for u in inputs:
        i = sigmoid(p["W_iu"] @ u + p["W_ih"] @ h + p["b_i"])
        f = sigmoid(p["W_fu"] @ u + p["W_fh"] @ h + p["b_f"])
        g = np.tanh(p["W_gu"] @ u + p["W_gh"] @ h + p["b_g"])
        o = sigmoid(p["W_ou"] @ u + p["W_oh"] @ h + p["b_o"])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(p["C"] @ h)
    return np.asarray(ys)


def _inputs():
    batch = MeasureWaitGo().test_batch([4, 12, 26])
    return np.asarray(batch.inputs, dtype=np.float64)


def _ours(model, inputs):
    return np.asarray(simulate(model, inputs.astype(np.float32)).outputs, dtype=np.float64)


def _raw(rng, shapes, scales):
    return {k: rng.normal(size=shape) * scales[k] for k, shape in shapes.items()}


def test_nmrnn_under_the_reference_options_equals_the_authors_nm_rnn():
    n, m, k, p_in = 100, 5, 3, 3
    rng = np.random.default_rng(0)
    # The authors' initial scales (util.random_nmrnn_params), on which the two are compared.
    raw = _raw(rng, dict(row_factors=(n, k), column_factors=(n, k), input_weights=(n, p_in), readout_weights=(1, n),
                         readout_bias=(1,), nm_rec_weight=(m, m), nm_input_weight=(m, p_in), nm_sigmoid_weight=(k, m),
                         nm_sigmoid_intercept=(k,)),
               dict(row_factors=1.0, column_factors=1.0, input_weights=p_in**-0.5, readout_weights=n**-0.5,
                    readout_bias=n**-0.5, nm_rec_weight=0.1, nm_input_weight=p_in**-0.5, nm_sigmoid_weight=0.1,
                    nm_sigmoid_intercept=0.1))
    model = make_model("nmrnn", n_in=p_in, n_out=1, n_hidden=n, key=jr.PRNGKey(0),
                       **reference_options("nmrnn", n_nm=m, rank=k, tau_x=T_X, tau_z=T_Z))
    model = eqx.tree_at(
        lambda md: (md.L, md.R, md.B_x, md.C, md.d, md.W_z, md.B_z, md.A_z, md.b_z), model,
        tuple(np.asarray(raw[f], np.float32) for f in ("row_factors", "column_factors", "input_weights", "readout_weights",
                                                        "readout_bias", "nm_rec_weight", "nm_input_weight",
                                                        "nm_sigmoid_weight", "nm_sigmoid_intercept")),
    )
    raw32 = {kk: np.asarray(v, np.float32).astype(np.float64) for kk, v in raw.items()}
    inputs = _inputs()
    want = np.stack([authors_nm_rnn(raw32, np.full(n, 0.1), np.full(m, 0.1), u, T_X, T_Z) for u in inputs])
    got = _ours(model, inputs)
    assert np.abs(want).max() > 0.1  # a real trajectory, not a trivial one
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The library's default parametrisation is a different model on the same raw parameters.
    default = replace_fields(model, orthonormalize=False, scale_by_n=True)
    assert np.abs(_ours(default, inputs) - want).max() > 1e-2


def test_lowrank_vanilla_and_lstm_under_the_reference_options_equal_the_authors_models():
    rng = np.random.default_rng(1)
    inputs = _inputs()
    n, k = 106, 3
    raw = {"row_factors": rng.normal(size=(n, k)), "column_factors": rng.normal(size=(n, k)),
           "input_weights": rng.normal(size=(n, 3)) / np.sqrt(3), "readout_weights": rng.normal(size=(1, n)) / np.sqrt(n),
           "readout_bias": rng.normal(size=(1,)) / np.sqrt(n)}
    raw = {kk: np.asarray(v, np.float32).astype(np.float64) for kk, v in raw.items()}
    lr = make_model("lowrank", n_in=3, n_out=1, n_hidden=n, key=jr.PRNGKey(0), **reference_options("lowrank", rank=k, tau=T_X))
    lr = eqx.tree_at(lambda md: (md.L, md.R, md.B, md.C, md.d), lr,
                     tuple(np.asarray(raw[f], np.float32) for f in ("row_factors", "column_factors", "input_weights",
                                                                     "readout_weights", "readout_bias")))
    want = np.stack([authors_lr_rnn(raw, np.full(n, 0.1), u, T_X) for u in inputs])
    np.testing.assert_allclose(_ours(lr, inputs), want, rtol=1e-4, atol=1e-5)

    n = 31
    raw = {"recurrent_weights": rng.normal(size=(n, n)), "input_weights": rng.normal(size=(n, 3)) / np.sqrt(3),
           "readout_weights": rng.normal(size=(1, n)) / np.sqrt(n), "readout_bias": rng.normal(size=(1,)) / np.sqrt(n)}
    raw = {kk: np.asarray(v, np.float32).astype(np.float64) for kk, v in raw.items()}
    van = make_model("vanilla", n_in=3, n_out=1, n_hidden=n, key=jr.PRNGKey(0), **reference_options("vanilla", tau=T_X))
    van = eqx.tree_at(lambda md: (md.W, md.B, md.C, md.d), van,
                      tuple(np.asarray(raw[f], np.float32) for f in ("recurrent_weights", "input_weights",
                                                                      "readout_weights", "readout_bias")))
    want = np.stack([authors_rnn(raw, np.full(n, 0.1), u, T_X) for u in inputs])
    np.testing.assert_allclose(_ours(van, inputs), want, rtol=1e-4, atol=1e-5)

    n = 15
    raw = {f"W_{g}u": rng.normal(size=(n, 3)) / np.sqrt(3) for g in "ifgo"}
    raw |= {f"W_{g}h": rng.normal(size=(n, n)) / np.sqrt(n) for g in "ifgo"}
    raw |= {f"b_{g}": rng.normal(size=(n,)) / np.sqrt(n) for g in "ifgo"}
    raw["C"] = rng.normal(size=(1, n)) / np.sqrt(n)
    raw = {kk: np.asarray(v, np.float32).astype(np.float64) for kk, v in raw.items()}
    lstm = make_model("lstm", n_in=3, n_out=1, n_hidden=n, key=jr.PRNGKey(0), **reference_options("lstm"))
    assert lstm.d is None  # no readout bias
    stack = lambda kind: np.concatenate([raw[f"W_{g}{kind}"] for g in "ifgo"]).astype(np.float32)  # noqa: E731
    lstm = eqx.tree_at(lambda md: (md.W_ih, md.W_hh, md.b, md.C), lstm,
                       (stack("u"), stack("h"), np.concatenate([raw[f"b_{g}"] for g in "ifgo"]).astype(np.float32),
                        raw["C"].astype(np.float32)))
    want = np.stack([authors_lstm(raw, np.full(n, 0.1), np.full(n, 0.1), u) for u in inputs])
    np.testing.assert_allclose(_ours(lstm, inputs), want, rtol=1e-4, atol=1e-5)


def test_reference_initial_scales():
    key = jr.PRNGKey(3)
    nm = make_model("nmrnn", n_in=3, n_out=1, n_hidden=400, key=key, **reference_options("nmrnn", n_nm=5, rank=3))
    assert 0.9 < float(np.std(nm.L)) < 1.1 and 0.9 < float(np.std(nm.R)) < 1.1
    L_used, _ = nm.factors()
    np.testing.assert_allclose(np.asarray(L_used.T @ L_used), np.eye(3), atol=1e-5)  # unit-norm columns
    assert float(nm.d[0]) != 0.0
    van = make_model("vanilla", n_in=3, n_out=1, n_hidden=200, key=key, **reference_options("vanilla"))
    assert 0.95 < float(np.std(van.W)) < 1.05
    np.testing.assert_allclose(np.asarray(van.effective_W()), np.asarray(van.W) / 200, rtol=1e-6)
    lstm = make_model("lstm", n_in=3, n_out=1, n_hidden=400, key=key, **reference_options("lstm"))
    assert 0.9 < float(np.std(lstm.W_hh)) * np.sqrt(400) < 1.1
    assert float(lstm.initial_state(()).h[0]) == pytest.approx(0.1)
    # The library's defaults are unchanged by the new options.
    std = make_model("nmrnn", n_in=3, n_out=1, n_hidden=100, key=key)
    assert float(std.d[0]) == 0.0 and not std.orthonormalize


def test_clamped_gains_hold_the_gain_and_the_rest_follow_the_equations():
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=20, n_nm=4, rank=3, key=jr.PRNGKey(0))
    clamped = make_model("nmrnn", n_in=3, n_out=1, n_hidden=20, n_nm=4, rank=3, key=jr.PRNGKey(0), clamp_gains=[(1, 0.25)])
    inputs = _inputs().astype(np.float32)
    s = np.asarray(clamped.modulation(simulate(clamped, inputs).states))
    np.testing.assert_array_equal(s[..., 1], 0.25)
    free = np.asarray(model.modulation(simulate(model, inputs).states))
    np.testing.assert_allclose(s[..., [0, 2]], free[..., [0, 2]], rtol=1e-6)  # z does not see x
    assert np.abs(np.asarray(simulate(clamped, inputs).outputs) - np.asarray(simulate(model, inputs).outputs)).max() > 1e-4


@pytest.mark.parametrize(
    "name, kwargs, msg",
    [
        ("nmrnn", {"orthonormal_scale": "half"}, "orthonormal_scale"),
        ("nmrnn", {"readout_bias_init": "ones"}, "readout_bias_init"),
        ("nmrnn", {"factor_std": 0.0}, "factor_std"),
        ("nmrnn", {"clamp_gains": [(3, 0.5)]}, "clamp_gains component 3"),
        ("nmrnn", {"clamp_gains": [(0, 1.5)]}, r"\[0, 1\]"),
        ("lowrank", {"orthonormal_scale": "x"}, "orthonormal_scale"),
        ("lstm", {"init": "xavier"}, "init"),
        ("vanilla", {"readout_bias_init": "x"}, "readout_bias_init"),
    ],
)
def test_bad_reference_options_are_refused(name, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        make_model(name, n_in=3, n_out=1, n_hidden=8, key=jr.PRNGKey(0), **kwargs)


def test_reference_options_of_a_model_the_authors_do_not_have_is_refused():
    with pytest.raises(ValueError, match="no 'gru' model"):
        reference_options("gru")
