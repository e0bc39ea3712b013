"""Coupled oscillatory RNN, coRNN (M5; Rusch & Mishra, ICLR 2021).

A network of damped, driven, coupled oscillators, ``y'' = tanh(W y + W_z y' + V u + b) - gamma y
- eps y'``, written as a first-order system in ``y`` and ``z = y'`` and discretised with step
``dt``. Two schemes, as the paper and its authors' code (tk-rusch/coRNN, ``coRNNCell``) differ:

* ``scheme="code"`` (default: the code that produced the published results) is explicit in
  every term::

      z_n = z_{n-1} + dt (tanh(W y_{n-1} + W_z z_{n-1} + V u_n + b) - gamma y_{n-1} - eps z_{n-1})
      y_n = y_{n-1} + dt z_n

* ``scheme="imex"`` is the paper's eq. 3, implicit in the damping ``eps``::

      z_n = (z_{n-1} + dt (tanh(W y_{n-1} + W_z z_{n-1} + V u_n + b) - gamma y_{n-1})) / (1 + dt eps)
      y_n = y_{n-1} + dt z_n

Readout ``C y + d`` (the authors read out ``hy``). Defaults are the authors' sequential-MNIST
settings (``dt = 0.042``, ``gamma = 2.7``, ``eps = 4.7``), states start at 0, and every weight and
the bias are drawn as PyTorch's ``nn.Linear`` does for their single input-to-hidden layer over
``(u, z, y)``: U(-1/sqrt(P + 2N), 1/sqrt(P + 2N)). Parameters: ``W (N, N)``, ``W_z (N, N)``,
``V (N, P)``, ``b (N)``, ``C (O, N)``, ``d (O)``: ``2 N^2 + N P + N + O N + O``.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_nonnegative, check_positive, check_positive_int
from .base import AbstractRecurrentModel, initial_state_parameter

SCHEMES = ("code", "imex")


class CoState(NamedTuple):
    y: Array  # (*batch, N) oscillator positions
    z: Array  # (*batch, N) velocities


class CoRNN(AbstractRecurrentModel):
    """coRNN with a linear readout of ``y``. See the module docstring."""

    W: Float[Array, "N N"]
    W_z: Float[Array, "N N"]
    V: Float[Array, "N P"]
    b: Float[Array, " N"]
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    scheme: str = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W", "W_z", "b"),
        "input": ("V",),
        "readout": ("C", "d"),
    }
    state_fields: ClassVar[tuple[str, ...]] = ("y", "z")

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        dt: float = 0.042,
        gamma: float = 2.7,
        epsilon: float = 4.7,
        scheme: str = "code",
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        P, N, O = check_positive_int("n_in", n_in), check_positive_int("n_hidden", n_hidden), check_positive_int("n_out", n_out)
        self.dt = check_positive("dt", dt)
        self.gamma, self.epsilon = check_nonnegative("gamma", gamma), check_nonnegative("epsilon", epsilon)
        self.scheme = check_choice("scheme", scheme, SCHEMES)
        self.n_in, self.n_hidden, self.n_out = P, N, O
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(CoState, {"y": N, "z": N}, init_value, learn_init)
        k = jr.split(key, 6)
        bound = 1.0 / np.sqrt(P + 2 * N)
        uniform = lambda kk, shape, b: jr.uniform(kk, shape, minval=-b, maxval=b)  # noqa: E731
        self.W, self.W_z = uniform(k[0], (N, N), bound), uniform(k[1], (N, N), bound)
        self.V, self.b = uniform(k[2], (N, P), bound), uniform(k[3], (N,), bound)
        self.C, self.d = uniform(k[4], (O, N), 1.0 / np.sqrt(N)), uniform(k[5], (O,), 1.0 / np.sqrt(N))

    def state_sizes(self):
        return {"y": self.n_hidden, "z": self.n_hidden}

    @property
    def state_type(self):
        return CoState

    def step(self, state, u, *, key=None):
        y, z = state
        drive = jnp.tanh(y @ self.W.T + z @ self.W_z.T + u @ self.V.T + self.b)
        if self.scheme == "code":
            z_new = z + self.dt * (drive - self.gamma * y - self.epsilon * z)
        else:
            z_new = (z + self.dt * (drive - self.gamma * y)) / (1.0 + self.dt * self.epsilon)
        return CoState(y + self.dt * z_new, z_new)

    def readout(self, state):
        return state.y @ self.C.T + self.d


__all__ = ["SCHEMES", "CoRNN", "CoState"]
