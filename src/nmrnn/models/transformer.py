"""Causal (decoder-only) Transformer baseline (M5; Vaswani et al. 2017, in the GPT form).

Not a one-step map: the output at step ``t`` attends to every input up to ``t``, so the model
overrides the whole-sequence :meth:`Transformer.forward` and has no ``step`` or recurrent state
(``initial_state`` and ``step`` raise ``NotImplementedError``, which the fixed-point analysis and
the RL agents turn into their "no one-step map" errors). Per step ``t`` (``D = n_hidden``)::

    x_t = W_in u_t + b_in + p_t                  linear embedding plus the position code p_t
    x   = block_l(x)  for l = 1 .. n_layers       causal self-attention and a feed-forward net
    h_t = LN_f(x_t) (pre-LN) or x_t (post-LN),    y_t = C h_t + d

Blocks, ``norm="pre"`` (default; GPT-2, PyTorch ``nn.TransformerEncoderLayer(norm_first=True)``
followed by ``nn.TransformerEncoder(..., norm=nn.LayerNorm(D))``)::

    x = x + Attn(LN_1(x));   x = x + FF(LN_2(x))

``norm="post"`` (the original Transformer; PyTorch ``norm_first=False``, its default; no final
norm)::

    x = LN_1(x + Attn(x));   x = LN_2(x + FF(x))

``Attn`` is multi-head attention with ``n_heads`` heads of width ``D / n_heads`` and a causal
mask (step ``t`` sees steps ``0..t``): ``[q, k, v] = W_qkv x + b_qkv`` (PyTorch's packed
``in_proj`` layout, rows q, k, v), per head ``softmax(q k^T / sqrt(D / n_heads)) v``, heads
concatenated, then ``W_o . + b_o``. ``FF(x) = W_ff2 act(W_ff1 x + b_ff1) + b_ff2`` with width
``d_ff`` (default ``4 D``, as in Vaswani et al. and GPT-2) and ``act`` ReLU (default, PyTorch's)
or exact (erf) GELU. LayerNorms have a gain and a bias and ``eps = 1e-5`` (PyTorch's). No dropout.

Positions (``positions``): ``"sinusoidal"`` (default; Vaswani et al., fixed, not trained, any
length: ``p[t, 2i] = sin(t / 10000^(2i / D))``, ``p[t, 2i+1] = cos(t / 10000^(2i / D))``, ``t``
from 0) or ``"learned"`` (a trained table of ``max_len`` rows; longer inputs are refused).
**Choice**: sinusoidal by default, so that parameter-matched comparisons do not spend parameters
on position rows that short tasks never use, and no task length is refused.

Initialisation as PyTorch's modules: embedding, feed-forward layers and readout as ``nn.Linear``
(``U(+-1/sqrt(fan_in))`` weights and biases); ``W_qkv`` Xavier-uniform and ``b_qkv = b_o = 0``,
``W_o`` ``U(+-1/sqrt(D))`` (``nn.MultiheadAttention``); LayerNorm gains 1, biases 0; a learned
position table ``N(0, 0.02^2)`` (GPT-2). Parameters (``P`` inputs, ``O`` outputs, ``F = d_ff``,
``L = n_layers``)::

    P D + D [+ max_len D learned positions] + L (4 D^2 + 2 D F + F + 9 D) [+ 2 D pre-LN] + O D + O

States: ``h`` (the readout's input at every step, ``(*batch, T, D)``), so analysis code that reads
trajectories treats it like a hidden state.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_positive_int
from .base import AbstractRecurrentModel, Trajectory

POSITIONS = ("sinusoidal", "learned")
NORMS = ("pre", "post")
FF_ACTIVATIONS = ("relu", "gelu")
#: LayerNorm's epsilon (PyTorch's default).
LN_EPS = 1e-5


class TransformerStates(NamedTuple):
    h: Array  # (*batch, T, D) the readout's input at every step


def sinusoidal_positions(n_steps: int, d_model: int) -> np.ndarray:
    """``(n_steps, d_model)`` sinusoidal position codes of Vaswani et al. (float64, fixed)."""
    t = np.arange(n_steps, dtype=np.float64)[:, None]
    freq = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    out = np.zeros((n_steps, d_model))
    out[:, 0::2] = np.sin(t * freq)
    out[:, 1::2] = np.cos(t * freq[: d_model // 2])
    return out


def layer_norm(x: Array, gain: Array, bias: Array) -> Array:
    """LayerNorm over the last axis (biased variance, ``eps = 1e-5``, as PyTorch)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + LN_EPS) * gain + bias


def _activation(name: str):
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    return jax.nn.relu


class Transformer(AbstractRecurrentModel):
    """Causal Transformer with a linear readout at every step. See the module docstring.

    Per-layer weights are stacked on a leading layer axis (``W_qkv (L, 3D, D)`` ...).
    """

    W_in: Float[Array, "D P"]
    b_in: Float[Array, " D"]
    pos: Float[Array, "max_len D"] | None
    W_qkv: Float[Array, "L D3 D"]
    b_qkv: Float[Array, "L D3"]
    W_o: Float[Array, "L D D"]
    b_o: Float[Array, "L D"]
    W_ff1: Float[Array, "L F D"]
    b_ff1: Float[Array, "L F"]
    W_ff2: Float[Array, "L D F"]
    b_ff2: Float[Array, "L D"]
    ln1_g: Float[Array, "L D"]
    ln1_b: Float[Array, "L D"]
    ln2_g: Float[Array, "L D"]
    ln2_b: Float[Array, "L D"]
    lnf_g: Float[Array, " D"] | None
    lnf_b: Float[Array, " D"] | None
    C: Float[Array, "O D"]
    d: Float[Array, " O"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    n_heads: int = eqx.field(static=True)
    d_ff: int = eqx.field(static=True)
    positions: str = eqx.field(static=True)
    max_len: int = eqx.field(static=True)
    norm: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    #: Time is counted in steps (positions are step indices).
    dt: float = eqx.field(static=True, default=1.0)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "embedding": ("W_in", "b_in", "pos"),
        "attention": ("W_qkv", "b_qkv", "W_o", "b_o"),
        "feedforward": ("W_ff1", "b_ff1", "W_ff2", "b_ff2"),
        "norm": ("ln1_g", "ln1_b", "ln2_g", "ln2_b", "lnf_g", "lnf_b"),
        "readout": ("C", "d"),
    }
    state_fields: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        n_layers: int = 2,
        n_heads: int = 2,
        d_ff: int | None = None,
        positions: str = "sinusoidal",
        max_len: int = 512,
        norm: str = "pre",
        activation: str = "relu",
        key: PRNGKeyArray,
    ):
        P, D, O = check_positive_int("n_in", n_in), check_positive_int("n_hidden", n_hidden), check_positive_int("n_out", n_out)
        L, H = check_positive_int("n_layers", n_layers), check_positive_int("n_heads", n_heads)
        if D % H:
            raise ValueError(
                f"n_hidden={D} must be a multiple of n_heads={H} (each head has n_hidden / n_heads "
                f"dimensions); choose n_hidden in {H}, {2 * H}, {3 * H}, ... or another n_heads"
            )
        F = 4 * D if d_ff is None else check_positive_int("d_ff", d_ff)
        self.positions = check_choice("positions", positions, POSITIONS)
        self.max_len = check_positive_int("max_len", max_len)
        self.norm = check_choice("norm", norm, NORMS)
        self.activation = check_choice("activation", activation, FF_ACTIVATIONS)
        self.n_in, self.n_hidden, self.n_out = P, D, O
        self.n_layers, self.n_heads, self.d_ff = L, H, F
        self.dt = 1.0
        k = jr.split(key, 10)

        def uniform(kk, shape, bound):
            return jr.uniform(kk, shape, minval=-bound, maxval=bound)

        self.W_in, self.b_in = uniform(k[0], (D, P), 1 / np.sqrt(P)), uniform(k[1], (D,), 1 / np.sqrt(P))
        self.pos = 0.02 * jr.normal(k[2], (self.max_len, D)) if self.positions == "learned" else None
        self.W_qkv = uniform(k[3], (L, 3 * D, D), np.sqrt(6.0 / (D + 3 * D)))
        self.b_qkv = jnp.zeros((L, 3 * D))
        self.W_o, self.b_o = uniform(k[4], (L, D, D), 1 / np.sqrt(D)), jnp.zeros((L, D))
        self.W_ff1, self.b_ff1 = uniform(k[5], (L, F, D), 1 / np.sqrt(D)), uniform(k[6], (L, F), 1 / np.sqrt(D))
        self.W_ff2, self.b_ff2 = uniform(k[7], (L, D, F), 1 / np.sqrt(F)), uniform(k[8], (L, D), 1 / np.sqrt(F))
        self.ln1_g, self.ln1_b = jnp.ones((L, D)), jnp.zeros((L, D))
        self.ln2_g, self.ln2_b = jnp.ones((L, D)), jnp.zeros((L, D))
        if self.norm == "pre":
            self.lnf_g, self.lnf_b = jnp.ones(D), jnp.zeros(D)
        else:
            self.lnf_g = self.lnf_b = None
        kC, kd = jr.split(k[9])
        self.C, self.d = uniform(kC, (O, D), 1 / np.sqrt(D)), uniform(kd, (O,), 1 / np.sqrt(D))

    @classmethod
    def min_hidden(cls, *, n_heads: int = 2, **options: Any) -> int:
        """The smallest width with ``n_heads`` heads: ``n_heads`` (one dimension per head)."""
        return int(n_heads)

    @classmethod
    def hidden_multiple(cls, *, n_heads: int = 2, **options: Any) -> int:
        """Widths the model takes are multiples of ``n_heads`` (``match_size`` searches those)."""
        return int(n_heads)

    # -- no one-step map ------------------------------------------------------------------------
    def initial_state(self, batch_shape: tuple[int, ...] = ()):
        raise NotImplementedError(
            "the Transformer is a sequence model: it has no recurrent state and no one-step map "
            "(every output attends to the whole input so far); run it with simulate()"
        )

    @property
    def state_type(self):
        return TransformerStates

    # -- the sequence face ----------------------------------------------------------------------
    def embed(self, inputs: Float[Array, "*batch T P"]) -> Float[Array, "*batch T D"]:
        """Input embedding plus position codes of steps ``0 .. T-1``."""
        n_steps = inputs.shape[-2]
        x = inputs @ self.W_in.T + self.b_in
        if self.positions == "learned":
            if n_steps > self.max_len:
                raise ValueError(
                    f"inputs have {n_steps} time steps but the Transformer's learned position table "
                    f"has max_len={self.max_len} rows; build it with max_len >= {n_steps} or use "
                    "positions='sinusoidal'"
                )
            return x + self.pos[:n_steps]
        return x + jnp.asarray(sinusoidal_positions(n_steps, self.n_hidden), x.dtype)

    def attention(self, layer: int, x: Float[Array, "*batch T D"]) -> Float[Array, "*batch T D"]:
        """Causal multi-head self-attention of ``layer`` (without the residual)."""
        n_steps, D, H = x.shape[-2], self.n_hidden, self.n_heads
        qkv = x @ self.W_qkv[layer].T + self.b_qkv[layer]
        heads = qkv.reshape(*x.shape[:-1], 3, H, D // H)
        q, k, v = heads[..., 0, :, :], heads[..., 1, :, :], heads[..., 2, :, :]  # (*b, T, H, Dh)
        scores = jnp.einsum("...thd,...shd->...hts", q, k) / math.sqrt(D // H)
        causal = jnp.tril(jnp.ones((n_steps, n_steps), dtype=bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
        out = jnp.einsum("...hts,...shd->...thd", weights, v).reshape(x.shape)
        return out @ self.W_o[layer].T + self.b_o[layer]

    def feedforward(self, layer: int, x: Float[Array, "*batch T D"]) -> Float[Array, "*batch T D"]:
        act = _activation(self.activation)
        hidden = act(x @ self.W_ff1[layer].T + self.b_ff1[layer])
        return hidden @ self.W_ff2[layer].T + self.b_ff2[layer]

    def block(self, layer: int, x: Float[Array, "*batch T D"]) -> Float[Array, "*batch T D"]:
        ln1 = lambda a: layer_norm(a, self.ln1_g[layer], self.ln1_b[layer])  # noqa: E731
        ln2 = lambda a: layer_norm(a, self.ln2_g[layer], self.ln2_b[layer])  # noqa: E731
        if self.norm == "pre":
            x = x + self.attention(layer, ln1(x))
            return x + self.feedforward(layer, ln2(x))
        x = ln1(x + self.attention(layer, x))
        return ln2(x + self.feedforward(layer, x))

    def forward(
        self,
        inputs: Float[Array, "*batch T n_in"],
        *,
        key: PRNGKeyArray | None = None,
        initial_state: Any = None,
    ) -> Trajectory:
        """Outputs ``(*batch, T, n_out)`` and states ``h (*batch, T, D)``. ``key`` is unused (no
        noise, no dropout); an ``initial_state`` is refused (there is no recurrent state)."""
        if initial_state is not None:
            raise ValueError("the Transformer has no recurrent state; initial_state must be None")
        x = self.embed(inputs)
        for layer in range(self.n_layers):
            x = self.block(layer, x)
        h = layer_norm(x, self.lnf_g, self.lnf_b) if self.norm == "pre" else x
        return Trajectory(self.readout(TransformerStates(h)), TransformerStates(h))

    def readout(self, state):
        return state.h @ self.C.T + self.d


__all__ = [
    "FF_ACTIVATIONS",
    "NORMS",
    "POSITIONS",
    "Transformer",
    "TransformerStates",
    "layer_norm",
    "sinusoidal_positions",
]
