"""Parameters as pytree leaves (nested modules), groups over nested models, zero-parameter refusal,
the compiled forward pass, the initial-state options and the model hooks."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import (
    MODELS,
    AbstractRecurrentModel,
    check_trainable,
    group_names,
    make_model,
    match_size,
    param_breakdown,
    param_count,
    parameter_paths,
    simulate,
    trainable_filter,
)
from nmrnn.tasks import make_task
from nmrnn.train import Stage, TrainConfig, fit


class GState(NamedTuple):
    h: jax.Array


class NestedGRU(AbstractRecurrentModel):
    """A model built from nested Equinox modules (``eqx.nn.GRUCell`` + ``eqx.nn.Linear``)."""

    cell: eqx.nn.GRUCell
    head: eqx.nn.Linear
    gain: jax.Array
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    param_groups: ClassVar[dict] = {"cell": ("cell",), "readout": ("head",)}
    constants: ClassVar[tuple] = ("gain",)
    state_fields: ClassVar[tuple] = ("h",)

    def __init__(self, n_in, n_hidden, n_out, *, key):
        k1, k2 = jr.split(key)
        self.cell = eqx.nn.GRUCell(n_in, n_hidden, key=k1)
        self.head = eqx.nn.Linear(n_hidden, n_out, key=k2)
        self.gain = jnp.asarray(1.0)
        self.n_in, self.n_out, self.n_hidden, self.dt = n_in, n_out, n_hidden, 1.0

    def state_sizes(self):
        return {"h": self.n_hidden}

    @property
    def state_type(self):
        return GState

    def step(self, state, u, *, key=None):
        cell = lambda h, x: self.cell(x, h)  # noqa: E731
        h = state.h
        for _ in range(h.ndim - 1):
            cell = jax.vmap(cell)
        return GState(self.gain * cell(h, u))

    def readout(self, state):
        f = self.head
        for _ in range(state.h.ndim - 1):
            f = jax.vmap(f)
        return f(state.h)


class Wrapper(AbstractRecurrentModel):
    """A model nesting a whole library model (its groups appear as ``inner.<group>``)."""

    inner: AbstractRecurrentModel
    scale: jax.Array
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, inner):
        self.inner, self.scale = inner, jnp.ones(())
        self.n_in, self.n_out, self.dt = inner.n_in, inner.n_out, inner.dt

    def initial_state(self, batch_shape=()):
        return self.inner.initial_state(batch_shape)

    def step(self, state, u, *, key=None):
        return self.inner.step(state, u, key=key)

    def readout(self, state):
        return self.scale * self.inner.readout(state)


class Frozen(AbstractRecurrentModel):
    """Every array is a constant: nothing to train."""

    W: jax.Array
    n_in: int = eqx.field(static=True, default=3)
    n_out: int = eqx.field(static=True, default=1)
    dt: float = eqx.field(static=True, default=1.0)
    buffers: ClassVar[tuple] = ("W",)

    def __init__(self):
        self.W = jnp.ones((1, 3))

    def state_sizes(self):
        return {"h": 1}

    @property
    def state_type(self):
        return GState

    def step(self, state, u, *, key=None):
        return GState(u @ self.W.T)

    def readout(self, state):
        return state.h


def gru_count(P, N, O):
    """GRUCell: W_ih (3N, P), W_hh (3N, N), bias (3N), bias_n (N); Linear: (O, N) + (O)."""
    return 3 * N * P + 3 * N * N + 3 * N + N + O * N + O


def test_nested_model_counts_its_parameters_by_hand_formula():
    model = NestedGRU(3, 7, 1, key=jr.PRNGKey(0))
    assert param_count(model) == gru_count(3, 7, 1)
    assert param_count(model, "cell") == gru_count(3, 7, 1) - 8
    assert param_count(model, "readout") == 8
    assert set(param_breakdown(model)) == {
        "cell.weight_ih", "cell.weight_hh", "cell.bias", "cell.bias_n", "head.weight", "head.bias"
    }
    assert "gain" not in parameter_paths(model)  # a constant


def test_nested_library_model_exposes_its_groups_with_a_prefix():
    inner = make_model("nmrnn", n_in=3, n_out=1, n_hidden=12, n_nm=2, rank=2, key=jr.PRNGKey(0))
    model = Wrapper(inner)
    assert {"inner.nm", "inner.lowrank"} <= set(group_names(model))
    assert param_count(model, "inner.nm") == param_count(inner, "nm")
    assert param_count(model) == param_count(inner) + 1
    assert not any(p.startswith("inner.tau") for p in parameter_paths(model))


def test_nested_model_trains_loss_falls_and_weights_change():
    task = make_task("mwg")
    model = NestedGRU(task.n_in, 12, task.n_out, key=jr.PRNGKey(1))
    res = fit(model, task, TrainConfig(steps=60, lr=1e-2, fixed_batch=True, steps_per_call=30), key=jr.PRNGKey(2))
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-5:].mean() < 0.5 * res.losses[:3].mean()
    for before, after in zip(jax.tree.leaves(eqx.filter(model, trainable_filter(model))),
                             jax.tree.leaves(eqx.filter(res.model, trainable_filter(res.model))), strict=True):
        assert not np.array_equal(np.asarray(before), np.asarray(after))
    assert float(res.model.gain) == 1.0  # the constant did not train


def test_staged_training_on_a_nested_model_freezes_the_other_group():
    task = make_task("mwg")
    model = NestedGRU(task.n_in, 10, task.n_out, key=jr.PRNGKey(3))
    cfg = TrainConfig(stages=(Stage(20, "readout"),), lr=1e-2, fixed_batch=True, steps_per_call=20)
    res = fit(model, task, cfg, key=jr.PRNGKey(4))
    for a, b in zip(jax.tree.leaves(model.cell), jax.tree.leaves(res.model.cell), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(model.head.weight), np.asarray(res.model.head.weight))


def test_zero_parameter_model_and_group_are_refused():
    task = make_task("mwg")
    with pytest.raises(ValueError, match="Frozen has no trainable parameters"):
        fit(Frozen(), task, TrainConfig(steps=2), key=jr.PRNGKey(0))
    # the initial-state group exists only when the initial state is learned
    lr = make_model("lowrank", n_in=3, n_out=1, n_hidden=8, rank=2, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="unknown parameter group 'initial_state'"):
        fit(lr, task, TrainConfig(stages=(Stage(2, "initial_state"),)), key=jr.PRNGKey(0))

    class NoBias(Wrapper):
        param_groups: ClassVar[dict] = {"bias": ("inner.b",)}  # b is None without bias=True

    empty = NoBias(lr)
    with pytest.raises(ValueError, match="parameter group 'bias' of NoBias has no trainable parameters"):
        check_trainable(empty, "bias")
    with pytest.raises(ValueError, match="stage 0 trains group 'bias'"):
        fit(empty, task, TrainConfig(stages=(Stage(2, "bias"),)), key=jr.PRNGKey(0))


def test_match_size_uses_the_min_hidden_hook():
    assert MODELS["lowrank"].min_hidden(rank=4) == 4
    assert MODELS["vanilla"].min_hidden() == 1
    n = match_size("lowrank", 10, n_in=3, n_out=1, rank=4)
    assert n >= 4


# ------------------------------------------------------------------------------------------------
# the compiled forward pass
# ------------------------------------------------------------------------------------------------


def test_second_simulate_call_does_not_recompile():
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=16, n_nm=3, rank=2, key=jr.PRNGKey(0))
    u = jr.normal(jr.PRNGKey(1), (4, 30, 3))
    traces = []
    original = type(model).forward

    def counting(self, inputs, *, key=None, initial_state=None):
        traces.append(inputs.shape)
        return original(self, inputs, key=key, initial_state=initial_state)

    type(model).forward = counting
    try:
        a = simulate(model, u)
        other = eqx.tree_at(lambda m: m.W_z, model, model.W_z * 2)  # other weights, same structure
        b = simulate(other, u + 1.0)
        assert len(traces) == 1, traces
        simulate(model, u[:, :10])  # a new shape compiles once more
        assert len(traces) == 2
    finally:
        type(model).forward = original
    assert not np.allclose(np.asarray(a.outputs), np.asarray(b.outputs))


def test_changing_a_time_constant_does_not_recompile_and_changes_the_dynamics():
    u = jr.normal(jr.PRNGKey(1), (2, 20, 3))
    m1 = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, tau=5.0, key=jr.PRNGKey(0))
    m2 = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, tau=9.0, key=jr.PRNGKey(0))
    assert jax.tree.structure(m1) == jax.tree.structure(m2)  # tau is data, not structure
    y1, y2 = simulate(m1, u).outputs, simulate(m2, u).outputs
    assert not np.allclose(np.asarray(y1), np.asarray(y2))


def test_forward_equals_a_manual_step_loop():
    model = make_model("lstm", n_in=3, n_out=2, n_hidden=5, key=jr.PRNGKey(0))
    u = jr.normal(jr.PRNGKey(1), (2, 12, 3))
    traj = simulate(model, u)
    state = model.initial_state((2,))
    for t in range(12):
        state = model.step(state, u[:, t], key=None)
        np.testing.assert_allclose(np.asarray(traj.outputs[:, t]), np.asarray(model.readout(state)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# initial states and hooks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vanilla", "lowrank", "nmrnn", "enmrnn", "gru", "lstm", "hippo_legt"])
def test_fixed_initial_value_starts_every_state_field_there(name):
    opts = {"rank": 2} if name == "lowrank" else {"n_nm": 2, "rank": 2} if name == "nmrnn" else {}
    model = make_model(name, n_in=3, n_out=1, n_hidden=6, init_value=0.1, key=jr.PRNGKey(0), **opts)
    s0 = model.initial_state((4,))
    for field in s0._fields:
        np.testing.assert_array_equal(np.asarray(getattr(s0, field)), np.float32(0.1))
    # the first step starts from 0.1: identical to passing that state explicitly
    u = jr.normal(jr.PRNGKey(1), (4, 5, 3))
    zero = make_model(name, n_in=3, n_out=1, n_hidden=6, key=jr.PRNGKey(0), **opts)
    a = simulate(model, u).outputs
    b = simulate(zero, u, initial_state=zero.make_state((4,), **{f: 0.1 for f in s0._fields})).outputs
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert param_count(model) == param_count(zero)


def test_learned_initial_state_is_a_parameter_group_that_trains():
    task = make_task("mwg")
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=12, n_nm=2, rank=2, init_value=0.1,
                       learn_init=True, key=jr.PRNGKey(0))
    plain = make_model("nmrnn", n_in=3, n_out=1, n_hidden=12, n_nm=2, rank=2, key=jr.PRNGKey(0))
    assert param_count(model) == param_count(plain) + 12 + 2
    assert param_count(model, "initial_state") == 14
    np.testing.assert_array_equal(np.asarray(model.initial_state((3,)).z), np.float32(0.1))
    cfg = TrainConfig(stages=(Stage(15, "initial_state"),), lr=1e-2, fixed_batch=True, steps_per_call=15)
    res = fit(model, task, cfg, key=jr.PRNGKey(1))
    assert not np.allclose(np.asarray(res.model.state0.x), 0.1)
    np.testing.assert_array_equal(np.asarray(res.model.W_z), np.asarray(model.W_z))


def test_state_hooks_address_fields_by_name():
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=6, n_nm=2, rank=2, key=jr.PRNGKey(0))
    s = model.make_state((2,), z=jnp.array([0.5, -0.5]))
    np.testing.assert_array_equal(np.asarray(s.z), [[0.5, -0.5], [0.5, -0.5]])
    np.testing.assert_array_equal(np.asarray(s.x), 0.0)
    with pytest.raises(ValueError, match="no state field"):
        model.replace_state(s, q=1.0)
    traj = simulate(model, jnp.zeros((2, 4, 3)))
    np.testing.assert_allclose(np.asarray(model.modulation(traj.states)), np.asarray(model.gains(traj.states.z)))
    assert model.modulatory_fields == ("z",)
    vanilla = make_model("vanilla", n_in=3, n_out=1, n_hidden=6, key=jr.PRNGKey(0))
    assert vanilla.modulation(simulate(vanilla, jnp.zeros((1, 3, 3))).states) is None
    assert vanilla.modulatory_fields == ()
    en = make_model("enmrnn", n_in=3, n_out=1, n_hidden=6, n_nm=2, key=jr.PRNGKey(0))
    t2 = simulate(en, jnp.ones((1, 3, 3)))
    np.testing.assert_array_equal(np.asarray(en.modulation(t2.states)), np.asarray(t2.states.n))


def test_matrix_hooks_give_the_models_matrices_or_none():
    """``recurrent_weights``, ``release_matrix`` and ``modulated_weights``: the e-nmRNN's W, R and
    W + sum_k n_k T_k; the leaky and low-rank models' W; None for models without them."""
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from nmrnn.models import make_model

    key = jr.PRNGKey(0)
    enm = make_model("enmrnn", n_in=2, n_out=1, n_hidden=5, n_nm=3, dale=True, key=key)
    n = jnp.array([0.2, -0.1, 0.5])
    np.testing.assert_allclose(enm.recurrent_weights(), enm.effective_W())
    np.testing.assert_allclose(enm.release_matrix(), enm.effective_R())
    np.testing.assert_allclose(enm.modulated_weights(n), enm.effective_W() + np.einsum("k,kij->ij", n, enm.full_T()), rtol=1e-6)
    low = make_model("lowrank", n_in=2, n_out=1, n_hidden=6, rank=2, key=key)
    np.testing.assert_allclose(low.recurrent_weights(), low.L @ low.R.T / 6, rtol=1e-6)
    van = make_model("vanilla", n_in=2, n_out=1, n_hidden=4, key=key)
    np.testing.assert_allclose(van.recurrent_weights(), van.W)
    for name in ("gru", "lstm", "nmrnn"):
        m = make_model(name, n_in=2, n_out=1, n_hidden=4, key=key, **({"rank": 2, "n_nm": 2} if name == "nmrnn" else {}))
        assert m.recurrent_weights() is None and m.release_matrix() is None and m.modulated_weights(n) is None
    assert van.release_matrix() is None and van.modulated_weights(n) is None
