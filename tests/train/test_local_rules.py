"""The leading-order local learning rules: against the gradient of the truncated expansion by
autodiff, against hand-written NumPy formulas on a tiny network, and through the training loop."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import ENMRNN, make_model
from nmrnn.tasks.base import Batch, masked_mse
from nmrnn.tasks.standard import FlipFlop
from nmrnn.train import LocalRules, TrainConfig, fit, local_gradients

sg = jax.lax.stop_gradient


def batch(key, B=3, T=6, P=2, O=1):
    k = jr.split(key, 3)
    return Batch(jr.normal(k[0], (B, T, P)), jr.normal(k[1], (B, T, O)), (jr.uniform(k[2], (B, T, O)) > 0.3).astype(float))


def truncated_loss(mdl, data, states, s0):
    """The loss with every earlier state held fixed except one step of the concentrations: its
    gradient is the leading order of the expansion (O(dt) for W, T, U, b, E, e and D, d; the
    O(dt^2) path through n for R, Z)."""
    m = mdl.materialize()
    r, n = sg(states.r), sg(states.n)
    cat = lambda a, b: jnp.concatenate([a[:, None], b[:, :-1]], 1)  # noqa: E731
    rp, npv = cat(s0.r, r), cat(s0.n, n)
    rpp, npp = cat(s0.r, rp), cat(s0.n, npv)
    an, ar = m.rate("tau_n"), m.rate("tau_r")
    from nmrnn.activations import get_activation
    nloc = npp + an * (-npp + get_activation(m.nm_activation)(rpp @ m.R.T + npp @ m.Z.T))
    nloc = jnp.concatenate([npv[:, :1], nloc[:, 1:]], 1)  # no earlier release before step 1
    nuse = sg(npv) + nloc - sg(nloc)
    pre = rp @ m.W.T + m.modulatory_drive(rp, nuse) + data.inputs @ m.U.T + m.b
    rt = rp + ar * (-rp + m.phi(pre))
    return masked_mse(rt @ m.D.T + m.d, data.targets, data.mask)


@pytest.mark.parametrize("opts", [
    dict(),
    dict(t_rank=2),
    dict(activation="tanh", nm_activation="tanh"),
    dict(learn_init=True, init_value=0.2),
])
def test_local_rules_are_the_gradient_of_the_truncated_expansion(opts):
    with jax.enable_x64(True):
        m = ENMRNN(2, 5, 1, n_nm=2, tau_r=2.0, tau_n=3.0, key=jr.PRNGKey(0), **{"init_value": 0.1, **opts})
        data = batch(jr.PRNGKey(1))
        value, g, traj = local_gradients(m, data)
        s0 = m.materialize().initial_state((3,))
        ref = eqx.filter_grad(truncated_loss)(m, data, traj.states, s0)
        np.testing.assert_allclose(float(value), float(masked_mse(traj.outputs, data.targets, data.mask)), rtol=1e-12)
        for name, grad in g.items():
            np.testing.assert_allclose(np.asarray(grad), np.asarray(getattr(ref, name)), atol=1e-14, rtol=1e-10,
                                       err_msg=name)
            assert float(jnp.max(jnp.abs(grad))) > 0, name


def test_hand_computed_tiny_case():
    """N = 2 neurons, M = 1 NM, tanh, 3 steps: every rule written out as a NumPy loop."""
    with jax.enable_x64(True):
        m = ENMRNN(1, 2, 1, n_nm=1, tau_r=2.0, tau_n=4.0, activation="tanh", nm_activation="tanh",
                   init_value=0.3, key=jr.PRNGKey(3))
        data = Batch(jnp.array([[[0.5], [-1.0], [0.25]]]), jnp.array([[[0.2], [-0.1], [0.4]]]), jnp.ones((1, 3, 1)))
        value, g, _ = local_gradients(m, data)
        W, T, U, b = (np.asarray(x) for x in (m.W, m.T[0], m.U, m.b))
        R, Z, D, d = np.asarray(m.R[0]), float(m.Z[0, 0]), np.asarray(m.D), np.asarray(m.d)
        ar, an = 0.5, 0.25
        r, n = np.full(2, 0.3), 0.3
        rs, ns, pres, Bs = [r], [n], [], []
        for t in range(3):
            u = np.asarray(data.inputs[0, t])
            A = W @ r + n * (T @ r) + U @ u + b
            B = R @ r + Z * n
            r, n = r + ar * (-r + np.tanh(A)), n + an * (-n + np.tanh(B))
            rs.append(r), ns.append(n), pres.append(A), Bs.append(B)
        e = [2 * (D @ rs[t + 1] + d - np.asarray(data.targets[0, t])) / 3 for t in range(3)]  # d(mean sq)/dy
        delta = [ar * (1 - np.tanh(pres[t]) ** 2) * (D.T @ e[t]) for t in range(3)]
        gW = sum(np.outer(delta[t], rs[t]) for t in range(3))
        gT = sum(ns[t] * np.outer(delta[t], rs[t]) for t in range(3))
        gU = sum(np.outer(delta[t], np.asarray(data.inputs[0, t])) for t in range(3))
        # step t's error credits NM release one step earlier (through n at step t - 1)
        gk = [an * (1 - np.tanh(Bs[t - 1]) ** 2) * (delta[t] @ (T @ rs[t])) for t in range(1, 3)]
        gR = sum(gk[i] * rs[i] for i in range(2))
        gZ = sum(gk[i] * ns[i] for i in range(2))
        gD = sum(np.outer(e[t], rs[t + 1]) for t in range(3))
        for name, want in [("W", gW), ("T", gT[None]), ("U", gU), ("b", sum(delta)), ("R", gR[None]),
                           ("Z", np.array([[gZ]])), ("D", gD), ("d", sum(e))]:
            np.testing.assert_allclose(np.asarray(g[name]), want, atol=1e-13, err_msg=name)


def test_gated_input_rule_multiplies_by_the_total_concentration():
    m = ENMRNN(2, 4, 1, n_nm=2, key=jr.PRNGKey(0), init_value=0.2)
    data = batch(jr.PRNGKey(2))
    _, plain, traj = local_gradients(m, data)
    _, gated, _ = local_gradients(m, data, input_rule="gated")
    # one step: the gate is the total concentration before the step
    one = data.take(slice(0, 1))
    one = Batch(one.inputs[:, :1], one.targets[:, :1], one.mask[:, :1])
    _, p1, _ = local_gradients(m, one)
    _, g1, _ = local_gradients(m, one, input_rule="gated")
    np.testing.assert_allclose(np.asarray(g1["U"]), 0.4 * np.asarray(p1["U"]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gated["W"]), np.asarray(plain["W"]))
    assert not np.allclose(np.asarray(gated["U"]), np.asarray(plain["U"]))


def test_fit_applies_the_local_direction():
    task = FlipFlop(n_bits=2, n_steps=30)
    m = ENMRNN(2, 8, 2, n_nm=2, tau_r=2.0, key=jr.PRNGKey(0))
    cfg = TrainConfig(steps=1, lr=1e-3, optimizer="adam", clip=None, batch_size=4, steps_per_call=1)
    res = fit(m, task, cfg, key=jr.PRNGKey(5), objective=LocalRules())
    data = task.sample(jr.split(jr.fold_in(jr.PRNGKey(5), 0))[0], 4)
    _, g, _ = local_gradients(m, data)
    # Adam's first step moves every coordinate by lr * g / (|g| + eps)
    for name in ("W", "T", "R", "D"):
        want = -1e-3 * np.asarray(g[name]) / (np.abs(np.asarray(g[name])) + 1e-8)
        np.testing.assert_allclose(np.asarray(getattr(res.model, name)) - np.asarray(getattr(m, name)), want,
                                   atol=2e-6, err_msg=name)


def test_rules_subset_freezes_the_rest_and_alignment_is_recorded():
    task = FlipFlop(n_bits=2, n_steps=30)
    m = ENMRNN(2, 8, 2, n_nm=2, tau_r=2.0, key=jr.PRNGKey(0), learn_init=True)
    cfg = TrainConfig(steps=20, lr=1e-2, optimizer="adam", batch_size=8, steps_per_call=10)
    res = fit(m, task, cfg, key=jr.PRNGKey(1), objective=LocalRules(rules=("D", "d", "T"), alignment=True))
    for name in ("W", "U", "b", "R", "Z"):
        np.testing.assert_array_equal(np.asarray(getattr(res.model, name)), np.asarray(getattr(m, name)))
    np.testing.assert_array_equal(np.asarray(res.model.state0.r), np.asarray(m.state0.r))
    assert not np.allclose(np.asarray(res.model.T), np.asarray(m.T))
    assert set(res.terms) == {"mse", "cos_T", "null_T", "cos_D", "null_D", "cos_d", "null_d"}
    np.testing.assert_allclose(np.asarray(res.terms["cos_D"]), 1.0, atol=1e-5)  # the readout rule is exact
    cos = np.asarray(res.terms["cos_T"])
    assert np.all(np.abs(cos) <= 1 + 1e-6) and np.mean(cos) > 0.2


def test_local_rules_learn_the_flip_flop():
    task = FlipFlop(n_bits=2, n_steps=30)
    m = ENMRNN(2, 16, 2, n_nm=2, tau_r=2.0, key=jr.PRNGKey(0))
    cfg = TrainConfig(steps=200, lr=1e-2, optimizer="adam", batch_size=16, steps_per_call=200)
    held = task.sample(jr.PRNGKey(99), 128)
    loss = lambda mdl: float(masked_mse(mdl.forward(held.inputs).outputs, held.targets, held.mask))  # noqa: E731
    local = fit(m, task, cfg, key=jr.PRNGKey(1), objective=LocalRules()).model
    readout = fit(m, task, cfg, key=jr.PRNGKey(1), objective=LocalRules(rules=("D", "d"))).model
    assert loss(local) < 0.5 * loss(m)
    assert loss(local) < 0.5 * loss(readout)  # the recurrent rules do the work, not the readout alone


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="input_rule"):
        LocalRules(input_rule="other")
    with pytest.raises(ValueError, match="rule"):
        LocalRules(rules=("W", "Q"))
    task = FlipFlop(n_bits=2, n_steps=10)
    cfg = TrainConfig(steps=1, batch_size=2)
    vanilla = make_model("vanilla", n_in=2, n_hidden=4, n_out=2, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="e-nmRNN"):
        fit(vanilla, task, cfg, key=jr.PRNGKey(0), objective=LocalRules())
    dale = ENMRNN(2, 4, 2, dale=True, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="dale"):
        fit(dale, task, cfg, key=jr.PRNGKey(0), objective=LocalRules())
    factorised = ENMRNN(2, 4, 2, t_rank=1, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="does not have"):
        fit(factorised, task, cfg, key=jr.PRNGKey(0), objective=LocalRules(rules=("T",)))
