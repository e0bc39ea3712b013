"""Gated baselines (M5): GRU and LSTM with PyTorch's gate equations, and a linear readout.

LSTM (gate order i, f, g, o as in ``torch.nn.LSTM``)::

    [i, f, g, o] = W_ih u_t + W_hh h_{t-1} + b
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

GRU (gate order r, z, n as in ``torch.nn.GRU``)::

    r = sigmoid(W_ir u + b_ir + W_hr h),  z = sigmoid(W_iz u + b_iz + W_hz h)
    n = tanh(W_in u + b_in + r * (W_hn h + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

Readout ``y_t = C h_t + d``.

Parameter counts count *identifiable* parameters: PyTorch keeps two bias vectors (``b_ih`` and
``b_hh``) whose sum is all that matters in the LSTM and in the r, z gates of the GRU, so here they
are one vector; the GRU keeps the separate ``b_hn`` (it sits inside ``r * (...)`` and is not
redundant). :meth:`from_torch` loads PyTorch weights exactly by summing the redundant pairs. This is
the counting that reproduces the NM-RNN paper's parameter-matched LSTM size (N = 15 on MWG).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_positive_int
from .base import AbstractRecurrentModel, initial_state_parameter


class HState(NamedTuple):
    h: Array  # (*batch, N)


class LSTMState(NamedTuple):
    h: Array  # (*batch, N) hidden state
    c: Array  # (*batch, N) cell state


def _uniform(key, shape, bound):
    return jr.uniform(key, shape, minval=-bound, maxval=bound)


#: LSTM initialisations: PyTorch's uniform one, or the NM-RNN authors' normal one.
LSTM_INITS = ("uniform", "normal")


class LSTM(AbstractRecurrentModel):
    """LSTM with a linear readout. Parameters ``W_ih (4N, P)``, ``W_hh (4N, N)``, ``b (4N)``,
    ``C (O, N)``, ``d (O)`` (absent with ``readout_bias=False``).

    ``init="uniform"``: as PyTorch, U(-1/sqrt(N), 1/sqrt(N)) for every weight and bias.
    ``init="normal"``: as the NM-RNN authors' code (``random_lstm_params``): input weights
    N(0, 1/P), recurrent weights, gate biases and readout N(0, 1/N). Their LSTM has no readout
    bias (``readout_bias=False``) and starts from h0 = c0 = 0.1 (``init_value=0.1``).
    """

    W_ih: Float[Array, "4N P"]
    W_hh: Float[Array, "4N N"]
    b: Float[Array, " 4N"]
    C: Float[Array, "O N"]
    d: Float[Array, " O"] | None
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W_ih", "W_hh", "b"),
        "input": ("W_ih",),
        "readout": ("C", "d"),
    }
    state_fields: ClassVar[tuple[str, ...]] = ("h", "c")

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        init: str = "uniform",
        readout_bias: bool = True,
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        check_choice("init", init, LSTM_INITS)
        self.n_in, self.n_hidden, self.n_out, self.dt = int(n_in), int(n_hidden), int(n_out), 1.0
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(
            LSTMState, {"h": n_hidden, "c": n_hidden}, init_value, learn_init
        )
        k = jr.split(key, 4)
        bound = 1.0 / np.sqrt(n_hidden)
        if init == "uniform":
            self.W_ih = _uniform(k[0], (4 * n_hidden, n_in), bound)
            self.W_hh = _uniform(k[1], (4 * n_hidden, n_hidden), bound)
            self.b = _uniform(k[2], (4 * n_hidden,), bound)
            self.C = _uniform(k[3], (n_out, n_hidden), bound)
        else:
            self.W_ih = jr.normal(k[0], (4 * n_hidden, n_in)) / np.sqrt(n_in)
            self.W_hh = jr.normal(k[1], (4 * n_hidden, n_hidden)) * bound
            self.b = jr.normal(k[2], (4 * n_hidden,)) * bound
            self.C = jr.normal(k[3], (n_out, n_hidden)) * bound
        self.d = jnp.zeros(n_out) if readout_bias else None

    def state_sizes(self):
        return {"h": self.n_hidden, "c": self.n_hidden}

    @property
    def state_type(self):
        return LSTMState

    def step(self, state, u, *, key=None):
        gates = u @ self.W_ih.T + state.h @ self.W_hh.T + self.b
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return LSTMState(h, c)

    def readout(self, state):
        y = state.h @ self.C.T
        return y if self.d is None else y + self.d

    @classmethod
    def from_torch(cls, lstm, linear) -> LSTM:
        """Build from a ``torch.nn.LSTM`` (one layer) and ``torch.nn.Linear`` readout."""
        w_ih = jnp.asarray(lstm.weight_ih_l0.detach().numpy())
        w_hh = jnp.asarray(lstm.weight_hh_l0.detach().numpy())
        b = jnp.asarray((lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy())
        model = cls(w_ih.shape[1], w_hh.shape[1], linear.weight.shape[0], key=jr.PRNGKey(0))
        return eqx.tree_at(
            lambda m: (m.W_ih, m.W_hh, m.b, m.C, m.d),
            model,
            (w_ih, w_hh, b, jnp.asarray(linear.weight.detach().numpy()), jnp.asarray(linear.bias.detach().numpy())),
        )


class GRU(AbstractRecurrentModel):
    """GRU with a linear readout. Parameters ``W_ih (3N, P)``, ``W_hh (3N, N)``, ``b (3N)``
    (the summed input+hidden biases of r, z and the input bias of n), ``b_hn (N)``, ``C``, ``d``."""

    W_ih: Float[Array, "3N P"]
    W_hh: Float[Array, "3N N"]
    b: Float[Array, " 3N"]
    b_hn: Float[Array, " N"]
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W_ih", "W_hh", "b", "b_hn"),
        "readout": ("C", "d"),
    }
    state_fields: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        self.n_in, self.n_hidden, self.n_out, self.dt = int(n_in), int(n_hidden), int(n_out), 1.0
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(HState, {"h": n_hidden}, init_value, learn_init)
        k = jr.split(key, 5)
        bound = 1.0 / np.sqrt(n_hidden)
        self.W_ih = _uniform(k[0], (3 * n_hidden, n_in), bound)
        self.W_hh = _uniform(k[1], (3 * n_hidden, n_hidden), bound)
        self.b = _uniform(k[2], (3 * n_hidden,), bound)
        self.b_hn = _uniform(k[3], (n_hidden,), bound)
        self.C = _uniform(k[4], (n_out, n_hidden), bound)
        self.d = jnp.zeros(n_out)

    def state_sizes(self):
        return {"h": self.n_hidden}

    @property
    def state_type(self):
        return HState

    def step(self, state, u, *, key=None):
        n_h = self.n_hidden
        gi = u @ self.W_ih.T + self.b
        gh = state.h @ self.W_hh.T
        r = jax.nn.sigmoid(gi[..., :n_h] + gh[..., :n_h])
        z = jax.nn.sigmoid(gi[..., n_h : 2 * n_h] + gh[..., n_h : 2 * n_h])
        n = jnp.tanh(gi[..., 2 * n_h :] + r * (gh[..., 2 * n_h :] + self.b_hn))
        return HState((1.0 - z) * n + z * state.h)

    def readout(self, state):
        return state.h @ self.C.T + self.d

    @classmethod
    def from_torch(cls, gru, linear) -> GRU:
        """Build from a ``torch.nn.GRU`` (one layer) and ``torch.nn.Linear`` readout."""
        n_h = gru.hidden_size
        b_ih = gru.bias_ih_l0.detach().numpy()
        b_hh = gru.bias_hh_l0.detach().numpy()
        b = np.concatenate([b_ih[: 2 * n_h] + b_hh[: 2 * n_h], b_ih[2 * n_h :]])
        model = cls(gru.input_size, n_h, linear.weight.shape[0], key=jr.PRNGKey(0))
        return eqx.tree_at(
            lambda m: (m.W_ih, m.W_hh, m.b, m.b_hn, m.C, m.d),
            model,
            (
                jnp.asarray(gru.weight_ih_l0.detach().numpy()),
                jnp.asarray(gru.weight_hh_l0.detach().numpy()),
                jnp.asarray(b),
                jnp.asarray(b_hh[2 * n_h :]),
                jnp.asarray(linear.weight.detach().numpy()),
                jnp.asarray(linear.bias.detach().numpy()),
            ),
        )
