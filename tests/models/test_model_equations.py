"""Every model's ``simulate`` against an independent NumPy loop of its equations (SPEC.md, M1-M5).

Computed in float64 (``jax.enable_x64`` inside a fixture, so it does not leak into other tests),
where the only difference between the two is summation order; one float32 pass checks the default
precision with a tolerance to match.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from models_cases import (
    CASE_BY_ID,
    CASE_IDS,
    CASES,
    FAMILY_CASES,
    FAMILY_IDS,
    N_IN,
    N_OUT,
    SEQUENCE_MODELS,
    build,
    jit_simulate,
    random_inputs,
)
from models_reference import reference_simulate

T_STEPS = 12
BATCH = 3
UNBATCHED_CASES = FAMILY_CASES + [CASE_BY_ID["enmrnn"], CASE_BY_ID["nmrnn-symmetric"]]
UNBATCHED_IDS = [c[0] for c in UNBATCHED_CASES]


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _assert_close(actual, expected, rtol, atol, what):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_simulate_matches_numpy_reference(case, x64):
    name, options = case[1], case[3]
    model = build(case)
    u = random_inputs(1, (BATCH, T_STEPS, N_IN))
    traj = jit_simulate(model, jnp.asarray(u))
    assert traj.outputs.dtype == jnp.float64
    assert traj.outputs.shape == (BATCH, T_STEPS, N_OUT)
    ref_out, ref_states = reference_simulate(name, model, options, u)
    assert set(traj.states._fields) == set(ref_states) == set(model.state_fields)
    # the reference is not trivially flat: the output varies over time and across trials
    assert np.std(ref_out) > 1e-2
    _assert_close(traj.outputs, ref_out, 1e-10, 1e-12, "outputs")
    for field, ref in ref_states.items():
        _assert_close(getattr(traj.states, field), ref, 1e-10, 1e-12, field)


@pytest.mark.parametrize("case", UNBATCHED_CASES, ids=UNBATCHED_IDS)
def test_unbatched_simulate_matches_reference(case, x64):
    """One trial ``(T, P)`` gives ``(T, O)`` and the same numbers as the reference."""
    name, options = case[1], case[3]
    model = build(case)
    u = random_inputs(1, (BATCH, T_STEPS, N_IN))[1]
    single = jit_simulate(model, jnp.asarray(u))
    assert single.outputs.shape == (T_STEPS, N_OUT)
    ref_out, ref_states = reference_simulate(name, model, options, u)
    _assert_close(single.outputs, ref_out, 1e-10, 1e-12, "unbatched outputs")
    for field, ref in ref_states.items():
        assert getattr(single.states, field).shape == ref.shape
        _assert_close(getattr(single.states, field), ref, 1e-10, 1e-12, f"unbatched {field}")


#: Stepping by hand needs a one-step map; sequence models have none (their own tests check that
#: ``step`` and ``initial_state`` refuse with a clear message).
STEP_CASES = [
    pytest.param(c, id=c[0], marks=pytest.mark.skip(reason=f"{c[1]} is a sequence model without a one-step map"))
    if c[1] in SEQUENCE_MODELS else pytest.param(c, id=c[0])
    for c in CASES
]


@pytest.mark.parametrize("case", STEP_CASES)
def test_materialize_does_not_change_results(case, x64):
    """``simulate`` runs the materialised model; stepping the raw model by hand (one unbatched
    trial, derived weights recomputed at every step) gives the same trajectory."""
    model = build(case)
    u = random_inputs(1, (BATCH, T_STEPS, N_IN))
    traj = jit_simulate(model, jnp.asarray(u))  # compiled by the test above
    core = model.materialize()
    for buffer in type(model).buffers:
        assert getattr(core, buffer) is None, buffer
    # materialising twice is the same as once
    for a, b in zip(jax.tree.leaves(core), jax.tree.leaves(core.materialize()), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    state = model.initial_state()
    for t in range(T_STEPS):
        state = model.step(state, jnp.asarray(u[2, t]))
        _assert_close(model.readout(state), np.asarray(traj.outputs[2, t]), 1e-12, 1e-14, f"step {t}")
        for field in model.state_fields:
            expected = np.asarray(getattr(traj.states, field)[2, t])
            _assert_close(getattr(state, field), expected, 1e-12, 1e-14, f"{field} at step {t}")


@pytest.mark.parametrize("case", FAMILY_CASES, ids=FAMILY_IDS)
def test_simulate_float32_matches_reference(case):
    name, options = case[1], case[3]
    model = build(case)
    u = random_inputs(3, (BATCH, T_STEPS, N_IN))
    traj = jit_simulate(model, jnp.asarray(u, dtype=jnp.float32))
    assert traj.outputs.dtype == jnp.float32
    ref_out, ref_states = reference_simulate(name, model, options, u)
    scale = max(1.0, float(np.max(np.abs(ref_out))))
    _assert_close(traj.outputs, ref_out, 1e-4, 1e-4 * scale, "float32 outputs")


def test_initial_state_argument_is_used(x64):
    """A given initial state replaces the rest state (checked against the reference, shifted)."""
    case = CASES[CASE_IDS.index("nmrnn")]
    model = build(case)
    u = random_inputs(4, (T_STEPS, N_IN))
    full = jit_simulate(model, jnp.asarray(u))
    mid = jax.tree.map(lambda a: a[4], full.states)
    rest = jit_simulate(model, jnp.asarray(u[5:]), initial_state=mid)
    _assert_close(rest.outputs, np.asarray(full.outputs[5:]), 1e-12, 1e-14, "restart")


# ------------------------------------------------------------------------------------------------
# GRU and LSTM against PyTorch
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gated_models_match_pytorch(kind):
    """``from_torch`` loads ``torch.nn.GRU`` / ``torch.nn.LSTM`` weights and reproduces their
    hidden states and outputs (float32 on both sides)."""
    torch = pytest.importorskip("torch")
    from nmrnn.models import GRU, LSTM

    torch.manual_seed(0)
    n_hidden = CASE_BY_ID[kind][2]
    rnn_cls = torch.nn.GRU if kind == "gru" else torch.nn.LSTM
    rnn = rnn_cls(N_IN, n_hidden, batch_first=True)
    linear = torch.nn.Linear(n_hidden, N_OUT)
    with torch.no_grad():  # non-trivial biases on both the input and the hidden side
        for b in (rnn.bias_ih_l0, rnn.bias_hh_l0, linear.bias):
            b.uniform_(-0.8, 0.8)
    model = (GRU if kind == "gru" else LSTM).from_torch(rnn, linear)
    assert model.n_in == N_IN and model.n_hidden == n_hidden and model.n_out == N_OUT
    u = random_inputs(5, (BATCH, T_STEPS, N_IN)).astype(np.float32)
    with torch.no_grad():
        h_seq, _ = rnn(torch.from_numpy(u))
        y = linear(h_seq).numpy()
        h_seq = h_seq.numpy()
    assert np.std(y) > 1e-2
    traj = jit_simulate(model, jnp.asarray(u))
    _assert_close(traj.states.h, h_seq, 1e-5, 1e-6, "hidden state vs torch")
    _assert_close(traj.outputs, y, 1e-5, 1e-6, "outputs vs torch")


@pytest.mark.parametrize("shape_a,shape_w", [((4, 3), (3, 100)), ((2, 4, 100), (100, 3)), ((5,), (5, 5)), ((7, 20), (20, 30)), ((3, 8), (8, 9))])
def test_narrow_matmul_equals_matmul(shape_a, shape_w, x64):
    from nmrnn.models.base import narrow_matmul

    rng = np.random.default_rng(0)
    a, w = rng.normal(size=shape_a), rng.normal(size=shape_w)
    out = narrow_matmul(jnp.asarray(a), jnp.asarray(w))
    assert out.shape == (a @ w).shape
    np.testing.assert_allclose(np.asarray(out), a @ w, rtol=1e-12, atol=1e-12)


def test_cornn_matches_the_authors_torch_cell():
    """The default scheme is the authors' ``coRNNCell`` (tk-rusch/coRNN): one ``nn.Linear`` over
    ``(u, z, y)``, explicit in every term, read out from ``y``."""
    torch = pytest.importorskip("torch")
    from nmrnn.models import CoRNN

    model = CoRNN(N_IN, 6, N_OUT, dt=0.1, gamma=2.0, epsilon=1.5, key=jax.random.PRNGKey(3))
    i2h = torch.nn.Linear(N_IN + 12, 6)
    with torch.no_grad():
        i2h.weight.copy_(torch.from_numpy(np.concatenate([np.array(model.V), np.array(model.W_z), np.array(model.W)], 1)))
        i2h.bias.copy_(torch.from_numpy(np.array(model.b)))
    u = random_inputs(7, (BATCH, T_STEPS, N_IN)).astype(np.float32)
    hy = torch.zeros(BATCH, 6)
    hz = torch.zeros(BATCH, 6)
    ys = []
    with torch.no_grad():
        for t in range(T_STEPS):
            x = torch.from_numpy(u[:, t])
            hz = hz + 0.1 * (torch.tanh(i2h(torch.cat((x, hz, hy), 1))) - 2.0 * hy - 1.5 * hz)
            hy = hy + 0.1 * hz
            ys.append(hy.numpy())
    traj = jit_simulate(model, jnp.asarray(u))
    _assert_close(traj.states.y, np.stack(ys, 1), 1e-5, 1e-6, "y vs the authors' cell")
