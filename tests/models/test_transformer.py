"""The causal Transformer (``nmrnn.models.transformer``) against PyTorch's own modules, its causality,
its position codes, its refusals where a one-step map is needed, and training through ``fit``.

The NumPy loop in ``models_reference.py`` (one step and one head at a time) checks the same
forward pass through the parametrised tests of ``test_model_equations.py``.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from models_cases import CASE_BY_ID, N_IN, N_OUT, build, jit_simulate, random_inputs

from nmrnn.models import Transformer, make_model, simulate
from nmrnn.models.transformer import sinusoidal_positions

T_STEPS = 9
BATCH = 3


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _torch_stack(torch, model, options):
    """``nn.TransformerEncoderLayer`` per layer (float64, no dropout) with our raw weights copied
    in, plus the embedding, the final LayerNorm (pre-LN) and the readout as ``nn`` modules."""
    nn = torch.nn
    D, H, F = model.n_hidden, model.n_heads, model.d_ff
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float64))  # noqa: E731
    layers = []
    for l in range(model.n_layers):
        layer = nn.TransformerEncoderLayer(
            D, H, dim_feedforward=F, dropout=0.0, activation=options.get("activation", "relu"),
            layer_norm_eps=1e-5, batch_first=True, norm_first=options.get("norm", "pre") == "pre",
            dtype=torch.float64,
        )
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(t(model.W_qkv[l]))
            layer.self_attn.in_proj_bias.copy_(t(model.b_qkv[l]))
            layer.self_attn.out_proj.weight.copy_(t(model.W_o[l]))
            layer.self_attn.out_proj.bias.copy_(t(model.b_o[l]))
            layer.linear1.weight.copy_(t(model.W_ff1[l]))
            layer.linear1.bias.copy_(t(model.b_ff1[l]))
            layer.linear2.weight.copy_(t(model.W_ff2[l]))
            layer.linear2.bias.copy_(t(model.b_ff2[l]))
            layer.norm1.weight.copy_(t(model.ln1_g[l]))
            layer.norm1.bias.copy_(t(model.ln1_b[l]))
            layer.norm2.weight.copy_(t(model.ln2_g[l]))
            layer.norm2.bias.copy_(t(model.ln2_b[l]))
        layers.append(layer)
    embed = nn.Linear(model.n_in, D, dtype=torch.float64)
    readout = nn.Linear(D, model.n_out, dtype=torch.float64)
    with torch.no_grad():
        embed.weight.copy_(t(model.W_in))
        embed.bias.copy_(t(model.b_in))
        readout.weight.copy_(t(model.C))
        readout.bias.copy_(t(model.d))
    final = None
    if model.lnf_g is not None:
        final = nn.LayerNorm(D, eps=1e-5, dtype=torch.float64)
        with torch.no_grad():
            final.weight.copy_(t(model.lnf_g))
            final.bias.copy_(t(model.lnf_b))
    return layers, embed, final, readout


def _torch_positions(torch, n_steps, d_model):
    """The sinusoidal code as the PyTorch tutorial writes it (``PositionalEncoding``)."""
    position = torch.arange(n_steps, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-np.log(10000.0) / d_model))
    pe = torch.zeros(n_steps, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe


TORCH_CASES = [
    ("pre-sinusoidal-relu", 8, dict(n_layers=2, n_heads=2, d_ff=12)),
    ("post-learned-gelu", 6, dict(n_layers=2, n_heads=3, d_ff=9, norm="post", positions="learned", max_len=20,
                                  activation="gelu")),
    ("pre-learned-one-head-odd-width", 5, dict(n_layers=1, n_heads=1, positions="learned", max_len=T_STEPS)),
    ("post-sinusoidal-odd-width", 7, dict(n_layers=1, n_heads=7, d_ff=5, norm="post")),
]


@pytest.mark.parametrize("n_hidden,options", [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_transformer_matches_pytorch_encoder_layers_with_a_causal_mask(n_hidden, options, x64):
    """Our raw weights copied into ``torch.nn.TransformerEncoderLayer`` (``norm_first`` = pre-LN,
    a causal ``src_mask``), float64 on both sides: outputs and hidden states agree to 1e-10."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    model = make_model("transformer", n_in=N_IN, n_out=N_OUT, n_hidden=n_hidden, key=jr.PRNGKey(5), **options)
    # perturb every parameter (LayerNorm gains and biases, attention biases start at 1 and 0)
    model = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64) + 0.3 * rng.normal(size=a.shape)), model)
    u = random_inputs(8, (BATCH, T_STEPS, N_IN))
    layers, embed, final, readout = _torch_stack(torch, model, options)
    for layer in layers:
        layer.train()  # the reference (non-fused) path; dropout is 0, so training mode is deterministic
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T_STEPS, dtype=torch.float64)
    with torch.no_grad():
        x = embed(torch.from_numpy(u))
        if options.get("positions", "sinusoidal") == "learned":
            x = x + torch.from_numpy(np.array(model.pos[:T_STEPS]))
        else:
            x = x + _torch_positions(torch, T_STEPS, n_hidden)
        for layer in layers:
            x = layer(x, src_mask=mask, is_causal=True)
        h = final(x) if final is not None else x
        y = readout(h).numpy()
    assert np.std(y) > 1e-2
    traj = jit_simulate(model, jnp.asarray(u))
    np.testing.assert_allclose(np.asarray(traj.states.h), h.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(traj.outputs), y, rtol=1e-10, atol=1e-10)
    # negative control: without the causal mask PyTorch gives other numbers, so the check can fail
    with torch.no_grad():
        x = embed(torch.from_numpy(u)) + (torch.from_numpy(np.array(model.pos[:T_STEPS]))
                                          if model.pos is not None else _torch_positions(torch, T_STEPS, n_hidden))
        for layer in layers:
            x = layer(x)
        unmasked = readout(final(x) if final is not None else x).numpy()
    assert np.max(np.abs(unmasked[:, :-1] - y[:, :-1])) > 1e-3


@pytest.mark.parametrize("case_id", ["transformer", "transformer-post-learned-gelu"])
def test_outputs_before_t_do_not_depend_on_inputs_at_or_after_t(case_id, x64):
    """Causality: changing the input at step t0 leaves every output before t0 bit-identical and
    changes the outputs from t0 on; the Jacobian dy_t/du_s vanishes exactly for s > t."""
    model = build(CASE_BY_ID[case_id])
    u = random_inputs(2, (T_STEPS, N_IN))
    t0 = 4
    v = u.copy()
    v[t0:] += random_inputs(3, (T_STEPS - t0, N_IN))
    a = np.asarray(jit_simulate(model, jnp.asarray(u)).outputs)
    b = np.asarray(jit_simulate(model, jnp.asarray(v)).outputs)
    np.testing.assert_array_equal(a[:t0], b[:t0])
    assert np.min(np.max(np.abs(a[t0:] - b[t0:]), axis=-1)) > 1e-6
    J = np.asarray(jax.jit(jax.jacfwd(lambda x: model.forward(x).outputs))(jnp.asarray(u)))  # (T, O, T, P)
    size = np.abs(J).max(axis=(1, 3))  # (t, s)
    upper = np.triu(np.ones((T_STEPS, T_STEPS), bool), k=1)
    assert np.all(size[upper] == 0.0)
    assert np.all(size[~upper] > 1e-8)  # every past input reaches every later output


def test_sinusoidal_positions_are_vaswanis():
    """p[t, 2i] = sin(t / 10000^(2i/D)), p[t, 2i+1] = cos(t / 10000^(2i/D)), written out for D = 4
    and D = 3 (the last, unpaired column is a sine)."""
    t = np.arange(4.0)
    expected4 = np.stack([np.sin(t), np.cos(t), np.sin(t / 100.0), np.cos(t / 100.0)], axis=1)
    np.testing.assert_allclose(sinusoidal_positions(4, 4), expected4, rtol=0, atol=1e-15)
    w = 10000.0 ** (-2.0 / 3.0)
    expected3 = np.stack([np.sin(t), np.cos(t), np.sin(t * w)], axis=1)
    np.testing.assert_allclose(sinusoidal_positions(4, 3), expected3, rtol=0, atol=1e-15)


def test_sinusoidal_positions_are_fixed_and_learned_ones_are_parameters():
    sin = make_model("transformer", n_in=2, n_out=1, n_hidden=4, key=jr.PRNGKey(0))
    learned = make_model("transformer", n_in=2, n_out=1, n_hidden=4, positions="learned", max_len=30,
                         key=jr.PRNGKey(0))
    from nmrnn.models import param_count

    assert sin.pos is None
    assert param_count(learned) == param_count(sin) + 30 * 4
    assert param_count(learned, "embedding") == 2 * 4 + 4 + 30 * 4


def test_learned_positions_refuse_inputs_longer_than_max_len():
    model = make_model("transformer", n_in=2, n_out=1, n_hidden=4, positions="learned", max_len=6,
                       key=jr.PRNGKey(0))
    simulate(model, jnp.zeros((2, 6, 2)))  # exactly max_len steps is fine
    message = ("inputs have 7 time steps but the Transformer's learned position table has max_len=6 rows; "
               "build it with max_len >= 7 or use positions='sinusoidal'")
    with pytest.raises(ValueError, match=re.escape(message)):
        simulate(model, jnp.zeros((2, 7, 2)))
    sinusoidal = make_model("transformer", n_in=2, n_out=1, n_hidden=4, max_len=6, key=jr.PRNGKey(0))
    assert simulate(sinusoidal, jnp.zeros((7, 2))).outputs.shape == (7, 1)


def test_no_one_step_map_is_refused_clearly_where_one_is_needed():
    """No recurrent state: ``initial_state``/``step`` raise, an initial state is refused, and the
    fixed-point analysis and the RL agents (which need a one-step map) refuse the model."""
    from nmrnn.analysis.fixed_points import make_system
    from nmrnn.rl.a2c import check_agent
    from nmrnn.rl.env import BlockBandit

    model = make_model("transformer", n_in=3, n_out=3, n_hidden=4, key=jr.PRNGKey(0))
    assert isinstance(model, Transformer)
    with pytest.raises(NotImplementedError, match="the Transformer is a sequence model: it has no recurrent state"):
        model.initial_state(())
    with pytest.raises(NotImplementedError, match="without a one-step map; use simulate"):
        model.step(None, jnp.zeros(3))
    with pytest.raises(ValueError, match="the Transformer has no recurrent state; initial_state must be None"):
        simulate(model, jnp.zeros((5, 3)), initial_state=jnp.zeros(4))
    with pytest.raises(ValueError, match="Transformer does not define initial_state()"):
        make_system(model)
    with pytest.raises(ValueError, match="Transformer has no one-step map and cannot be an agent"):
        check_agent(model, BlockBandit())
    # the readout still maps any stack of hidden states, as for the recurrent models
    traj = simulate(model, jnp.ones((2, 5, 3)))
    np.testing.assert_allclose(np.asarray(model.readout(traj.states)), np.asarray(traj.outputs), rtol=1e-6)


def test_trains_through_fit_and_the_loss_falls():
    """The one training loop (``nmrnn.train.fit``) on a small flip-flop task, with activity L2 on
    the hidden sequence: the loss falls and every parameter group changes."""
    import equinox as eqx

    from nmrnn.models import parameter_paths, trainable_filter
    from nmrnn.tasks.standard import FlipFlop
    from nmrnn.train import TrainConfig, fit

    task = FlipFlop(n_bits=2, n_steps=20)
    model = make_model("transformer", n_in=2, n_out=2, n_hidden=8, n_layers=1, key=jr.PRNGKey(0))
    cfg = TrainConfig(steps=60, lr=1e-2, batch_size=16, fixed_batch=True, steps_per_call=30, activity_l2=1e-4)
    res = fit(model, task, cfg, key=jr.PRNGKey(1))
    losses = np.asarray(res.losses)
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < 0.6 * losses[:3].mean()
    before = jax.tree.leaves(eqx.filter(model, trainable_filter(model)))
    after = jax.tree.leaves(eqx.filter(res.model, trainable_filter(res.model)))
    for path, a, b in zip(parameter_paths(model), before, after, strict=True):
        assert not np.array_equal(np.asarray(a), np.asarray(b)), path
