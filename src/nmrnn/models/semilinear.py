"""The semilinear LSTM of Proposition 1 (paper 001, supplement A; see docs/references.md).

An LSTM whose cell candidate, output gate and hidden state have no nonlinearity (supplement
eq. 4-6). :func:`nmrnn.analysis.proposition1.semilinear_lstm_from_nmrnn` builds the one that
reproduces a linearised symmetric NM-RNN; built from a key it is an ordinary trainable model of
the registry (``make_model("semilinear_lstm", ...)``). Discrete time (``dt = 1``, time in steps).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_positive_int
from .base import AbstractRecurrentModel, zeros_state


class SemilinearLSTMState(NamedTuple):
    h: Array  # (*batch, H) hidden state
    c: Array  # (*batch, H) cell state


class SemilinearLSTMWeights(NamedTuple):
    """Weights of a :class:`SemilinearLSTM` with hidden size ``H``, input size ``P'`` and ``O``
    outputs. Every gate matrix acts on the concatenation ``[h_{t-1}, u'_t]``: shape ``(H, H + P')``;
    biases ``(H,)``; readout ``C (O, H)``, ``d (O,)``; ``c_init (H,)`` is the cell state before the
    first input (``None``: zeros)."""

    W_f: Array
    b_f: Array
    W_i: Array
    b_i: Array
    W_c: Array
    b_c: Array
    W_o: Array
    b_o: Array
    C: Array
    d: Array
    c_init: Array | None = None


class SemilinearLSTM(AbstractRecurrentModel):
    """The "semilinear LSTM" of supplement eq. 4-6 (paper 001, docs/references.md), with a linear readout::

        f_t = sigmoid(W_f [h_{t-1}, u'_t] + b_f)      i_t = sigmoid(W_i [h_{t-1}, u'_t] + b_i)
        g_t = W_c [h_{t-1}, u'_t] + b_c               c_t = f_t * c_{t-1} + i_t * g_t
        o_t = W_o [h_{t-1}, u'_t] + b_o               h_t = o_t * c_t
        y_t = C h_t + d

    Unlike the LSTM, the cell candidate ``g_t``, the output gate ``o_t`` and the hidden state have
    no nonlinearity. ``dt`` is 1 (a discrete-time model; time in steps). The initial state is
    ``h = 0`` and ``c = c_init`` (a fixed buffer, zeros unless given).

    Build it either randomly (``key``, PyTorch-like ``U(-1/sqrt(H), 1/sqrt(H))``) or from explicit
    ``weights`` (:class:`SemilinearLSTMWeights`);
    :func:`nmrnn.analysis.proposition1.semilinear_lstm_from_nmrnn` does the latter.
    """

    W_f: Float[Array, "H HP"]
    b_f: Float[Array, " H"]
    W_i: Float[Array, "H HP"]
    b_i: Float[Array, " H"]
    W_c: Float[Array, "H HP"]
    b_c: Float[Array, " H"]
    W_o: Float[Array, "H HP"]
    b_o: Float[Array, " H"]
    C: Float[Array, "O H"]
    d: Float[Array, " O"]
    c_init: Float[Array, " H"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W_f", "b_f", "W_i", "b_i", "W_c", "b_c", "W_o", "b_o"),
        "readout": ("C", "d"),
    }
    buffers: ClassVar[tuple[str, ...]] = ("c_init",)
    state_fields: ClassVar[tuple[str, ...]] = ("h", "c")

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray | None = None,
        weights: SemilinearLSTMWeights | None = None,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        if (key is None) == (weights is None):
            raise ValueError("SemilinearLSTM needs exactly one of key (random init) or weights")
        self.n_in, self.n_hidden, self.n_out, self.dt = int(n_in), int(n_hidden), int(n_out), 1.0
        n_h, n_cols = self.n_hidden, self.n_hidden + self.n_in
        shapes = {
            "W_f": (n_h, n_cols), "b_f": (n_h,), "W_i": (n_h, n_cols), "b_i": (n_h,),
            "W_c": (n_h, n_cols), "b_c": (n_h,), "W_o": (n_h, n_cols), "b_o": (n_h,),
            "C": (self.n_out, n_h), "d": (self.n_out,),
        }  # fmt: skip
        if weights is None:
            keys = jr.split(key, len(shapes))
            bound = 1.0 / np.sqrt(n_h)
            values = {
                name: jr.uniform(k, shape, minval=-bound, maxval=bound)
                for k, (name, shape) in zip(keys, shapes.items(), strict=True)
            }
            values["d"] = jnp.zeros(self.n_out)
            c_init = jnp.zeros(n_h)
        else:
            values = {}
            for name, shape in shapes.items():
                value = jnp.asarray(getattr(weights, name))
                if value.shape != shape:
                    raise ValueError(
                        f"SemilinearLSTM weight {name} must have shape {shape} "
                        f"(n_in={n_in}, n_hidden={n_hidden}, n_out={n_out}), got {value.shape}"
                    )
                values[name] = value
            c_init = jnp.zeros(n_h) if weights.c_init is None else jnp.asarray(weights.c_init)
            if c_init.shape != (n_h,):
                raise ValueError(f"c_init must have shape ({n_h},), got {c_init.shape}")
        for name, value in values.items():
            setattr(self, name, value)
        self.c_init = c_init

    def initial_state(self, batch_shape=()):
        c = jnp.broadcast_to(self.c_init, (*batch_shape, self.n_hidden))
        return SemilinearLSTMState(zeros_state(batch_shape, self.n_hidden), c)

    def step(self, state, u, *, key=None):
        del key  # deterministic
        hu = jnp.concatenate([state.h, jnp.broadcast_to(u, (*state.h.shape[:-1], self.n_in))], -1)
        f = jax.nn.sigmoid(hu @ self.W_f.T + self.b_f)
        i = jax.nn.sigmoid(hu @ self.W_i.T + self.b_i)
        g = hu @ self.W_c.T + self.b_c
        o = hu @ self.W_o.T + self.b_o
        c = f * state.c + i * g
        return SemilinearLSTMState(o * c, c)

    def readout(self, state):
        return state.h @ self.C.T + self.d



__all__ = ["SemilinearLSTM", "SemilinearLSTMState", "SemilinearLSTMWeights"]
