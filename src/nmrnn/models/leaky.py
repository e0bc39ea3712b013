"""Leaky (continuous-time, Euler-discretised) RNNs: the vanilla CTRNN (M1) and the low-rank RNN (M2).

M1:  x_t = (1 - a) x_{t-1} + a (W phi(x_{t-1}) + B u_t + b) + sqrt(2 a) sigma_rec xi_t,   a = dt / tau
M2:  the same with W = L R^T / N  (the 1/N scaling is optional; L may be QR-orthonormalised)

``scale_by_n=True`` on M1 applies ``W / N`` with ``W ~ N(0, gain^2)`` (the NM-RNN authors' vanilla
RNN, whose effective weights start at ``1/N`` and move by about ``lr/N`` per Adam step), instead of
``W ~ N(0, gain^2/N)`` applied as is. ``readout_bias_init="normal"`` draws ``d ~ N(0, 1/N)`` as the
authors' code does (default zeros). :func:`nmrnn.models.reference_options` lists the authors'
settings of every model.

Readout: ``y_t = C x_t + d`` (from the state, as in the NM-RNN reference code); pass
``readout_from="rate"`` for ``y_t = C phi(x_t) + d``.

The hidden bias ``b`` is off by default, as in the NM-RNN paper's baselines (this is what makes the
paper's parameter-matched sizes come out: see :func:`nmrnn.models.match_size`).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import (
    check_choice,
    check_fraction,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_time_constants,
)
from ..activations import ACTIVATIONS, get_activation
from .base import (
    ORTHONORMAL_SCALES,
    READOUT_BIAS_INITS,
    AbstractRecurrentModel,
    initial_state_parameter,
    leaky_update,
    narrow_matmul,
    normal_init,
    orthonormal_columns,
    readout_bias,
    recurrent_mask,
    replace_fields,
    time_constant,
)
from .bptt import contract, contract_many, value_and_derivative

READOUTS = ("state", "rate")


class LeakyState(NamedTuple):
    x: Array  # (*batch, N) pre-activation ("membrane") state


def _check_common(n_in, n_hidden, n_out, tau, dt, activation, sigma_rec, readout_from):
    check_positive_int("n_in", n_in)
    check_positive_int("n_hidden", n_hidden)
    check_positive_int("n_out", n_out)
    check_time_constants(dt, tau=tau)
    check_choice("activation", activation, ACTIVATIONS)
    check_nonnegative("sigma_rec", sigma_rec)
    check_choice("readout_from", readout_from, READOUTS)


def _readout(x, activation: str, readout_from: str, C, d):
    """``C x + d`` (``readout_from="state"``) or ``C phi(x) + d`` (``"rate"``)."""
    h = x if readout_from == "state" else get_activation(activation)(x)
    return h @ C.T + d


class LeakyRNN(AbstractRecurrentModel):
    """Vanilla leaky RNN (M1) with optional Dale's law, connectivity mask and recurrent noise.

    Parameters: ``W (N, N)``, ``B (N, P)``, ``b (N)`` if ``bias``, ``C (O, N)``, ``d (O)``.
    Dale's law: ``W_eff = |W| * sign[None, :]`` with the first ``round(exc_fraction * N)``
    presynaptic neurons excitatory (+1) and the rest inhibitory (-1).
    A connectivity ``mask (N, N)`` multiplies ``W_eff`` elementwise (fixed, not trained);
    ``spatial_grid=(nx, ny, nz)`` places the neurons on a grid and multiplies it by the distance
    weights ``exp(-d_ij / lambda)``, ``lambda = spatial_length`` x the grid's largest side
    (:mod:`nmrnn.spatial`).
    """

    W: Float[Array, "N N"]
    B: Float[Array, "N P"]
    b: Float[Array, " N"] | None
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    sign: Float[Array, " N"] | None
    mask: Float[Array, "N N"] | None
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    tau: Float[Array, ""]
    dt: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    sigma_rec: float = eqx.field(static=True)
    readout_from: str = eqx.field(static=True)
    scale_by_n: bool = eqx.field(static=True, default=False)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W", "b"),
        "input": ("B",),
        "readout": ("C", "d"),
    }
    buffers: ClassVar[tuple[str, ...]] = ("sign", "mask")
    constants: ClassVar[tuple[str, ...]] = ("tau",)
    state_fields: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        tau: float = 10.0,
        dt: float = 1.0,
        activation: str = "tanh",
        sigma_rec: float = 0.0,
        bias: bool = False,
        dale: bool = False,
        exc_fraction: float = 0.8,
        mask=None,
        spatial_grid=None,
        spatial_length: float = 0.1,
        readout_from: str = "state",
        gain: float = 1.0,
        scale_by_n: bool = False,
        readout_bias_init: str = "zeros",
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        _check_common(n_in, n_hidden, n_out, tau, dt, activation, sigma_rec, readout_from)
        check_fraction("exc_fraction", exc_fraction)
        check_choice("readout_bias_init", readout_bias_init, READOUT_BIAS_INITS)
        mask = recurrent_mask(int(n_hidden), mask, spatial_grid, spatial_length)
        kW, kB, kC = jr.split(key, 3)
        self.n_in, self.n_hidden, self.n_out = int(n_in), int(n_hidden), int(n_out)
        self.tau, self.dt = time_constant(tau), float(dt)
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(LeakyState, {"x": n_hidden}, init_value, learn_init)
        self.activation, self.sigma_rec, self.readout_from = activation, float(sigma_rec), readout_from
        self.scale_by_n = bool(scale_by_n)
        W = normal_init(kW, (n_hidden, n_hidden), gain if scale_by_n else gain / np.sqrt(n_hidden))
        if dale:
            n_exc = int(round(exc_fraction * n_hidden))
            sign = jnp.where(jnp.arange(n_hidden) < n_exc, 1.0, -1.0)
            W = jnp.abs(W)
            self.sign = sign
        else:
            self.sign = None
        self.W = W
        self.mask = mask
        self.B = normal_init(kB, (n_hidden, n_in), 1.0 / np.sqrt(n_in))
        self.b = jnp.zeros(n_hidden) if bias else None
        self.C = normal_init(kC, (n_out, n_hidden), 1.0 / np.sqrt(n_hidden))
        self.d = readout_bias(jr.fold_in(key, 3), n_out, n_hidden, readout_bias_init)

    def effective_W(self) -> Array:
        """The recurrent matrix actually used: ``/ N`` (``scale_by_n``), Dale signs and mask applied."""
        W = self.W / self.n_hidden if self.scale_by_n else self.W
        if self.sign is not None:
            W = jnp.abs(W) * self.sign[None, :]
        if self.mask is not None:
            W = W * self.mask
        return W

    def recurrent_weights(self) -> Array:
        return self.effective_W()

    def materialize(self):
        return replace_fields(self, W=self.effective_W(), sign=None, mask=None, scale_by_n=False).with_rates("tau")

    def state_sizes(self):
        return {"x": self.n_hidden}

    @property
    def state_type(self):
        return LeakyState

    def step(self, state, u, *, key=None):
        phi = get_activation(self.activation)
        W = self.effective_W()
        drive = phi(state.x) @ W.T + u @ self.B.T
        if self.b is not None:
            drive = drive + self.b
        return LeakyState(leaky_update(state.x, drive, self.rate("tau"), self.sigma_rec, key))

    def readout(self, state):
        return _readout(state.x, self.activation, self.readout_from, self.C, self.d)

    # -- backward pass by hand (nmrnn.models.bptt) ------------------------------------------
    @property
    def manual_backward(self) -> bool:
        """The hand-written backward applies to the materialised model (W already scaled,
        signed and masked)."""
        return self.sign is None and self.mask is None and not self.scale_by_n

    def bptt_residuals(self, prev, new, xs):
        fx, dfx = value_and_derivative(get_activation(self.activation), prev.x)
        return dfx, fx

    def bptt_step(self, dfx, g):
        a = self.rate("tau")
        return LeakyState((1.0 - a) * g.x + (g.x @ (a * self.W)) * dfx), g.x

    def bptt_fields(self):  # with the readout's, which step does not read
        return ["W", "B", "C", "d"] + ([] if self.b is None else ["b"])

    def bptt_grads(self, prev, new, xs, fx, gx):
        a = self.rate("tau")
        parts = contract_many(gx, fx, xs, bias=self.b is not None)
        grads = {"W": a * parts[0], "B": a * parts[1], "C": None, "d": None}
        if self.b is not None:
            grads["b"] = a * parts[2]
        return grads


class LowRankRNN(AbstractRecurrentModel):
    """Low-rank leaky RNN (M2): ``W = L R^T / N`` (``scale_by_n``), optionally with L orthonormalised.

    Parameters: ``L (N, K)``, ``R (N, K)``, ``B (N, P)``, ``b (N)`` if ``bias``, ``C (O, N)``,
    ``d (O)``. The recurrence is applied in factored form, ``((phi(x) @ R) / N) @ L^T``: O(NK).
    With ``orthonormalize=True`` the L used is ``sqrt(N) Q`` from ``L = QR``, or the raw unit-norm
    ``Q`` with ``orthonormal_scale="unit"`` (the authors' code, which also keeps the 1/N).
    ``factor_std``: the standard deviation of the initial L and R (default 1 with the 1/N,
    ``1/sqrt(N)`` without).
    """

    L: Float[Array, "N K"]
    R: Float[Array, "N K"]
    B: Float[Array, "N P"]
    b: Float[Array, " N"] | None
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    tau: Float[Array, ""]
    dt: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    sigma_rec: float = eqx.field(static=True)
    scale_by_n: bool = eqx.field(static=True)
    orthonormalize: bool = eqx.field(static=True)
    readout_from: str = eqx.field(static=True)
    orthonormal_scale: str = eqx.field(static=True, default="sqrt_n")

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "lowrank": ("L", "R"),
        "recurrent": ("L", "R", "b"),
        "input": ("B",),
        "readout": ("C", "d"),
    }
    constants: ClassVar[tuple[str, ...]] = ("tau",)
    state_fields: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        rank: int = 3,
        tau: float = 10.0,
        dt: float = 1.0,
        activation: str = "tanh",
        sigma_rec: float = 0.0,
        bias: bool = False,
        scale_by_n: bool = True,
        orthonormalize: bool = False,
        orthonormal_scale: str = "sqrt_n",
        factor_std: float | None = None,
        readout_bias_init: str = "zeros",
        readout_from: str = "state",
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        _check_common(n_in, n_hidden, n_out, tau, dt, activation, sigma_rec, readout_from)
        check_positive_int("rank", rank)
        if rank > n_hidden:
            raise ValueError(f"rank={rank} must not exceed n_hidden={n_hidden}")
        check_choice("orthonormal_scale", orthonormal_scale, ORTHONORMAL_SCALES)
        check_choice("readout_bias_init", readout_bias_init, READOUT_BIAS_INITS)
        if factor_std is not None:
            check_positive("factor_std", factor_std)
        kL, kR, kB, kC = jr.split(key, 4)
        self.n_in, self.n_hidden, self.n_out, self.rank = int(n_in), int(n_hidden), int(n_out), int(rank)
        self.tau, self.dt = time_constant(tau), float(dt)
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(LeakyState, {"x": n_hidden}, init_value, learn_init)
        self.activation, self.sigma_rec = activation, float(sigma_rec)
        self.scale_by_n, self.orthonormalize, self.readout_from = bool(scale_by_n), bool(orthonormalize), readout_from
        self.orthonormal_scale = orthonormal_scale
        # N(0, 1) factors with the 1/N scaling, as in the NM-RNN reference initialisation.
        if factor_std is None:
            factor_std = 1.0 if scale_by_n else 1.0 / np.sqrt(n_hidden)
        factor_scale = float(factor_std)
        self.L = normal_init(kL, (n_hidden, rank), factor_scale)
        self.R = normal_init(kR, (n_hidden, rank), factor_scale)
        self.B = normal_init(kB, (n_hidden, n_in), 1.0 / np.sqrt(n_in))
        self.b = jnp.zeros(n_hidden) if bias else None
        self.C = normal_init(kC, (n_out, n_hidden), 1.0 / np.sqrt(n_hidden))
        self.d = readout_bias(jr.fold_in(key, 4), n_out, n_hidden, readout_bias_init)

    def effective_L(self) -> Array:
        return orthonormal_columns(self.L, self.orthonormal_scale) if self.orthonormalize else self.L

    def effective_W(self) -> Array:
        """The full recurrent matrix ``L R^T (/ N)`` (for analysis; the step never forms it)."""
        W = self.effective_L() @ self.R.T
        return W / self.n_hidden if self.scale_by_n else W

    def recurrent_weights(self) -> Array:
        return self.effective_W()

    def materialize(self):
        return replace_fields(self, L=self.effective_L(), orthonormalize=False).with_rates("tau")

    def state_sizes(self):
        return {"x": self.n_hidden}

    @property
    def state_type(self):
        return LeakyState

    @classmethod
    def min_hidden(cls, *, rank: int = 3, **options):
        return int(rank)

    def step(self, state, u, *, key=None):
        phi = get_activation(self.activation)
        proj = narrow_matmul(phi(state.x), self.R)
        if self.scale_by_n:
            proj = proj / self.n_hidden
        drive = narrow_matmul(proj, self.effective_L().T) + narrow_matmul(u, self.B.T)
        if self.b is not None:
            drive = drive + self.b
        return LeakyState(leaky_update(state.x, drive, self.rate("tau"), self.sigma_rec, key))

    def readout(self, state):
        return _readout(state.x, self.activation, self.readout_from, self.C, self.d)

    # -- backward pass by hand (nmrnn.models.bptt) ------------------------------------------
    @property
    def manual_backward(self) -> bool:
        """The hand-written backward applies to the materialised model (L already orthonormal)."""
        return not self.orthonormalize

    def _scale(self) -> float:
        return 1.0 / self.n_hidden if self.scale_by_n else 1.0

    def bptt_residuals(self, prev, new, xs):
        fx, dfx = value_and_derivative(get_activation(self.activation), prev.x)
        px = narrow_matmul(fx, self.R) * self._scale()  # R^T phi(x) / N
        return dfx * self._scale(), (fx, px)  # loop-invariant factors formed for all steps at once

    def bptt_step(self, dfx, g):
        a = self.rate("tau")
        gq = narrow_matmul(g.x, a * self.L)  # cotangent of R^T phi(x) / N
        gx = (1.0 - a) * g.x + narrow_matmul(gq, self.R.T) * dfx  # dfx: phi'(x), / N where scaled
        return LeakyState(gx), (g.x, gq)

    def bptt_fields(self):  # with the readout's, which step does not read
        return ["L", "R", "B", "C", "d"] + ([] if self.b is None else ["b"])

    def bptt_grads(self, prev, new, xs, post, emits):
        fx, px = post
        gx, gq = emits
        a = self.rate("tau")
        parts = contract_many(gx, px, xs, bias=self.b is not None)
        grads = {"L": a * parts[0], "R": contract(fx, gq) * self._scale(), "B": a * parts[1], "C": None, "d": None}
        if self.b is not None:
            grads["b"] = a * parts[2]
        return grads
