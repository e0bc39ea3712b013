"""The hand-written backward passes (nmrnn.models.bptt) against autodiff of the plain scan."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model
from nmrnn.models.bptt import scan_steps

P, O, B, T = 3, 2, 4, 25

CASES = [
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=2)),
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=2, feedback=True)),
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=2, symmetric=True)),
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=3, orthonormalize=True, scale_by_n=False)),
    ("nmrnn", dict(n_hidden=12, n_nm=3, rank=1, x_activation="identity", tau_x=2.0, tau_z=5.0)),
    ("nmrnn", dict(n_hidden=10, n_nm=3, rank=2, linearized=True, symmetric=True, activation="identity")),
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=2, x_inputs=[0, 1], z_inputs=[2], learn_init=True, init_value=0.1)),
    ("nmrnn", dict(n_hidden=12, n_nm=4, rank=2, activation="relu", sigma_rec=0.1)),
    ("lowrank", dict(n_hidden=12, rank=2)),
    ("lowrank", dict(n_hidden=12, rank=3, bias=True, orthonormalize=True, learn_init=True)),
    ("lowrank", dict(n_hidden=12, rank=2, activation="softplus", sigma_rec=0.1, readout_from="rate")),
    ("enmrnn", dict(n_hidden=9, n_nm=3)),
    ("enmrnn", dict(n_hidden=9, n_nm=3, t_rank=2, dale=True, cell_types=True, learn_init=True)),
    ("enmrnn", dict(n_hidden=9, n_nm=2, activation="tanh", nm_activation="softplus", sigma_rec=0.1)),
    ("vanilla", dict(n_hidden=9)),
    ("vanilla", dict(n_hidden=9, dale=True, bias=True, mask=np.triu(np.ones((9, 9))))),
    ("vanilla", dict(n_hidden=9, sigma_rec=0.1, readout_from="rate", learn_init=True)),
]


def _ids():
    return [f"{name}-" + ",".join(f"{k}={v if not hasattr(v, 'shape') else 'array'}" for k, v in opts.items())
            for name, opts in CASES]


def _loss(model, inputs, manual, key):
    """Outputs and every state field enter the loss, so all state cotangents are non-zero."""
    core = model.materialize()
    s0 = core.initial_state(inputs.shape[:-2])
    xs = jnp.moveaxis(inputs, -2, 0)
    keys = None if key is None else jr.split(key, xs.shape[0])
    states = scan_steps(core, s0, xs, keys, manual=manual)
    y = core.readout(states)
    target = jnp.sin(jnp.arange(xs.shape[0]) / 5.0)[:, None, None]
    loss = jnp.mean((y - target) ** 2)
    for i, field in enumerate(states):
        loss = loss + 0.1 * (i + 1) * jnp.mean(jnp.tanh(field) ** 2)
    return loss


def _max_rel_err(ref, got):
    errs = []
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ref), jax.tree.leaves(got), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        scale = max(float(np.max(np.abs(a))), 1e-12)
        errs.append((float(np.max(np.abs(a - b))) / scale, jax.tree_util.keystr(path)))
    return max(errs)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name,opts", CASES, ids=_ids())
def test_manual_backward_equals_autodiff(name, opts, x64):
    """In float64, so that the comparison measures the recursion and not float32 rounding of
    sums taken in another order (time-constant gradients cancel strongly)."""
    model = make_model(name, n_in=P, n_out=O, key=jr.key(0), **opts)
    assert model.materialize().manual_backward
    inputs = jr.normal(jr.key(1), (B, T, P), jnp.float64)
    key = jr.key(2) if opts.get("sigma_rec", 0) > 0 else None
    # every inexact leaf, time constants included (those go through the exact fallback)
    dyn, static = eqx.partition(model, eqx.is_inexact_array)

    def grads(manual):
        f = lambda d, u: _loss(eqx.combine(d, static), u, manual, key)  # noqa: E731
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(dyn, inputs)

    (l_ref, g_ref), (l_man, g_man) = grads(False), grads(True)
    assert float(l_ref) == float(l_man)  # the forward pass is the same scan
    err, where = _max_rel_err(g_ref, g_man)
    assert err < 1e-9, f"{where}: relative error {err:.2e}"
    assert _max_rel_err(g_ref, jax.tree.map(lambda a: 1.0001 * a, g_man))[0] > 1e-5  # the check can fail


def test_float32_training_gradients_equal_autodiff():
    """The trainable parameters in float32, as training computes them: equal to 1e-5."""
    from nmrnn.models import trainable_filter
    from nmrnn.tasks import make_task, masked_mse

    batch = make_task("mwg").fixed_batch()
    for name, opts in [("nmrnn", dict(n_hidden=100, n_nm=5, rank=3)), ("lowrank", dict(n_hidden=106, rank=3)),
                       ("enmrnn", dict(n_hidden=14, n_nm=4))]:
        model = make_model(name, n_in=3, n_out=1, key=jr.key(0), **opts)
        dyn, static = eqx.partition(model, trainable_filter(model))

        def loss(d, manual, static=static):
            m = eqx.combine(d, static).materialize()
            xs = jnp.moveaxis(batch.inputs, 1, 0)
            states = scan_steps(m, m.initial_state(xs.shape[1:2]), xs, manual=manual)
            return masked_mse(jnp.moveaxis(m.readout(states), 0, 1), batch.targets, batch.mask)

        ref = jax.jit(jax.grad(lambda d: loss(d, False)))(dyn)
        got = jax.jit(jax.grad(lambda d: loss(d, True)))(dyn)
        err, where = _max_rel_err(ref, got)
        assert err < 1e-5, f"{name} {where}: relative error {err:.2e}"


def test_forward_uses_the_manual_backward_and_matches_simulate():
    from nmrnn.models import simulate

    model = make_model("nmrnn", n_in=P, n_hidden=12, n_out=O, key=jr.key(0))
    inputs = jr.normal(jr.key(1), (B, T, P))
    assert "custom_vjp" in str(jax.make_jaxpr(lambda m: m.forward(inputs).outputs)(model))
    gru = make_model("gru", n_in=P, n_hidden=6, n_out=O, key=jr.key(0))
    assert "custom_vjp" not in str(jax.make_jaxpr(lambda m: m.forward(inputs).outputs)(gru))
    traj = simulate(model, inputs)
    ref = model.materialize()
    states = scan_steps(ref, ref.initial_state((B,)), jnp.moveaxis(inputs, 1, 0), manual=False)
    np.testing.assert_array_equal(np.asarray(traj.states.x), np.moveaxis(np.asarray(states.x), 0, 1))


def test_vmapped_ensemble_gradients_match():
    """Ensembles vmap the training step over members: the custom backward batches too."""
    models = [make_model("nmrnn", n_in=P, n_hidden=12, n_out=O, n_nm=4, rank=2, key=jr.key(s)) for s in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[eqx.filter(m, eqx.is_array) for m in models])
    static = eqx.filter(models[0], eqx.is_array, inverse=True)
    inputs = jr.normal(jr.key(1), (B, T, P))

    def g(d, manual):
        return jax.grad(lambda dd: _loss(eqx.combine(dd, static), inputs, manual, None))(d)

    got = jax.vmap(lambda d: g(d, True))(stacked)
    ref = jax.vmap(lambda d: g(d, False))(stacked)
    assert _max_rel_err(ref, got)[0] < 1e-5


def test_manual_backward_refused_for_models_without_one():
    model = make_model("gru", n_in=P, n_hidden=6, n_out=O, key=jr.key(0))
    core = model.materialize()
    with pytest.raises(ValueError, match="no manual backward"):
        scan_steps(core, core.initial_state((B,)), jnp.zeros((T, B, P)), manual=True)
