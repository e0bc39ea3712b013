"""The endogenously neuromodulated RNN, e-nmRNN (M4, paper 000).

N rate neurons r release M neuromodulators n, which gate the synapses multiplicatively through a
three-body tensor T:

    tau_r dr/dt = -r + phi(W r + sum_k n_k T_k r + U u + b)
    tau_n dn/dt = -n + phi_n(R r + Z n)
    y = D r + d

Euler-discretised with ``dt``; both equations use the state at ``t-1`` (simultaneous update).
"Endogenous": n has no external input. ``T`` is either full, ``(M, N, N)``, or factorised with
rank ``q``: ``T_k = sum_j a_kj b_kj^T`` stored as ``T_left (M, N, q)`` and ``T_right (M, N, q)``.

Nonlinearity ``phi``: ``"relutanh"`` (default) is ReLU-Tanh with trainable per-neuron excitability,
``phi_i(x) = E_i * relu(tanh(x) + e_i)`` (gain ``E`` init 1, threshold ``e`` init 0, both trained);
any other name from :mod:`nmrnn.activations` (``tanh``, ``relu``, ``lif``, ...) is parameter-free.
``phi_n`` defaults to the logistic sigmoid so that concentrations stay in (0, 1); the paper does not
fix it.

Variants:
* ``cell_types=True``: each neuron releases exactly one neuromodulator (neuron i releases NM
  ``i mod M``): R is masked to one non-zero per column.
* ``dale=True``: sign-constrained presynaptic columns of W (first ``exc_fraction`` excitatory).
* ``spatial_grid=(nx, ny, nz)``: the neurons sit on a 3-D grid (:mod:`nmrnn.spatial`) and the
  recurrent weights are weighted by ``exp(-d_ij / lambda)``, ``lambda = spatial_length`` (default
  0.1) times the grid's largest side (the paper's spatially embedded e-nmRNN: 10% of the domain).
  The weighting applies to ``W``, a fixed mask like ``mask`` (any ``(N, N)`` array); the
  modulatory tensor is not masked.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import (
    check_choice,
    check_fraction,
    check_nonnegative,
    check_positive_int,
    check_time_constants,
)
from ..activations import ACTIVATIONS, get_activation
from .base import (
    AbstractRecurrentModel,
    initial_state_parameter,
    normal_init,
    recurrent_mask,
    replace_fields,
    time_constant,
)
from .bptt import contract, value_and_derivative

NEURON_ACTIVATIONS = tuple(ACTIVATIONS)


class ENMState(NamedTuple):
    r: Array  # (*batch, N) firing rates
    n: Array  # (*batch, M) neuromodulator concentrations


class ENMRNN(AbstractRecurrentModel):
    """e-nmRNN. See the module docstring for the equations and options.

    Parameters: ``W (N, N)``, ``T (M, N, N)`` or ``T_left, T_right (M, N, q)``, ``U (N, P)``,
    ``b (N)``, ``R (M, N)``, ``Z (M, M)``, ``D (O, N)``, ``d (O)``, and ``E, e (N)`` with ReLU-Tanh.
    Groups: ``"neurons"`` (W, U, b, excitability), ``"nm"`` (T, R, Z), ``"readout"`` (D, d).
    """

    W: Float[Array, "N N"]
    T: Float[Array, "M N N"] | None
    T_left: Float[Array, "M N q"] | None
    T_right: Float[Array, "M N q"] | None
    U: Float[Array, "N P"]
    b: Float[Array, " N"]
    R: Float[Array, "M N"]
    Z: Float[Array, "M M"]
    D: Float[Array, "O N"]
    d: Float[Array, " O"]
    E: Float[Array, " N"] | None
    e: Float[Array, " N"] | None
    sign: Float[Array, " N"] | None
    mask: Float[Array, "N N"] | None
    release_mask: Float[Array, "M N"] | None
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_nm: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    t_rank: int | None = eqx.field(static=True)
    tau_r: Float[Array, ""]
    tau_n: Float[Array, ""]
    dt: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    nm_activation: str = eqx.field(static=True)
    sigma_rec: float = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "neurons": ("W", "U", "b", "E", "e"),
        "nm": ("T", "T_left", "T_right", "R", "Z"),
        "readout": ("D", "d"),
    }
    buffers: ClassVar[tuple[str, ...]] = ("sign", "mask", "release_mask")
    constants: ClassVar[tuple[str, ...]] = ("tau_r", "tau_n")
    state_fields: ClassVar[tuple[str, ...]] = ("r", "n")
    modulatory_fields: ClassVar[tuple[str, ...]] = ("n",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        n_nm: int = 4,
        t_rank: int | None = None,
        tau_r: float = 10.0,
        tau_n: float = 10.0,
        dt: float = 1.0,
        activation: str = "relutanh",
        nm_activation: str = "sigmoid",
        sigma_rec: float = 0.0,
        dale: bool = False,
        exc_fraction: float = 0.8,
        cell_types: bool = False,
        mask=None,
        spatial_grid=None,
        spatial_length: float = 0.1,
        gain: float = 1.0,
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        check_positive_int("n_nm", n_nm)
        if t_rank is not None:
            check_positive_int("t_rank", t_rank)
        check_time_constants(dt, tau_r=tau_r, tau_n=tau_n)
        check_choice("activation", activation, NEURON_ACTIVATIONS)
        check_choice("nm_activation", nm_activation, ACTIVATIONS)
        check_nonnegative("sigma_rec", sigma_rec)
        check_fraction("exc_fraction", exc_fraction)
        N, M, P, O = int(n_hidden), int(n_nm), int(n_in), int(n_out)
        self.mask = recurrent_mask(N, mask, spatial_grid, spatial_length)
        self.n_in, self.n_hidden, self.n_nm, self.n_out = P, N, M, O
        self.t_rank = None if t_rank is None else int(t_rank)
        self.tau_r, self.tau_n, self.dt = time_constant(tau_r), time_constant(tau_n), float(dt)
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(ENMState, {"r": N, "n": M}, init_value, learn_init)
        self.activation, self.nm_activation, self.sigma_rec = activation, nm_activation, float(sigma_rec)

        k = jr.split(key, 8)
        W = normal_init(k[0], (N, N), gain / np.sqrt(N))
        if dale:
            n_exc = int(round(exc_fraction * N))
            self.sign = jnp.where(jnp.arange(N) < n_exc, 1.0, -1.0)
            W = jnp.abs(W)
        else:
            self.sign = None
        self.W = W
        # The modulatory tensor starts small relative to W so that training begins near a
        # plain RNN and the NM pathway grows as needed.
        if self.t_rank is None:
            self.T = normal_init(k[1], (M, N, N), 0.1 / np.sqrt(N))
            self.T_left = self.T_right = None
        else:
            q = self.t_rank
            self.T = None
            self.T_left = normal_init(k[1], (M, N, q), 0.1 / np.sqrt(np.sqrt(N * q)))
            self.T_right = normal_init(k[2], (M, N, q), 0.1 / np.sqrt(np.sqrt(N * q)))
        self.U = normal_init(k[3], (N, P), 1.0 / np.sqrt(P))
        self.b = jnp.zeros(N)
        self.R = normal_init(k[4], (M, N), 1.0 / np.sqrt(N))
        self.Z = normal_init(k[5], (M, M), 0.1 / np.sqrt(M))
        self.D = normal_init(k[6], (O, N), 1.0 / np.sqrt(N))
        self.d = jnp.zeros(O)
        if activation == "relutanh":
            self.E = jnp.ones(N)
            self.e = jnp.zeros(N)
        else:
            self.E = self.e = None
        if cell_types:
            self.release_mask = (jnp.arange(N)[None, :] % M == jnp.arange(M)[:, None]).astype(
                jnp.float32
            )
        else:
            self.release_mask = None

    # -- derived quantities ------------------------------------------------------------------
    def effective_W(self) -> Array:
        W = self.W if self.sign is None else jnp.abs(self.W) * self.sign[None, :]
        return W if self.mask is None else W * self.mask

    def effective_R(self) -> Array:
        return self.R if self.release_mask is None else self.R * self.release_mask

    def full_T(self) -> Array:
        """The modulatory tensor as ``(M, N, N)`` (formed from the factors if factorised)."""
        if self.T is not None:
            return self.T
        return jnp.einsum("kiq,kjq->kij", self.T_left, self.T_right)

    def effective_weights(self, n: Array) -> Array:
        """``W_eff = W + sum_k n_k T_k`` for concentrations ``n (*batch, M)``: ``(*batch, N, N)``."""
        return self.effective_W() + jnp.einsum("...k,kij->...ij", n, self.full_T())

    def recurrent_weights(self) -> Array:
        return self.effective_W()

    def release_matrix(self) -> Array:
        return self.effective_R()

    def modulated_weights(self, n: Array) -> Array:
        return self.effective_weights(n)

    def phi(self, a: Array) -> Array:
        """The neuron nonlinearity (with trainable excitability for ReLU-Tanh)."""
        if self.activation == "relutanh":
            return self.E * jnp.maximum(jnp.tanh(a) + self.e, 0.0)
        return get_activation(self.activation)(a)

    def materialize(self):
        return replace_fields(
            self, W=self.effective_W(), sign=None, mask=None, R=self.effective_R(), release_mask=None
        ).with_rates("tau_r", "tau_n")

    def modulatory_drive(self, r: Array, n: Array) -> Array:
        """``sum_k n_k T_k r`` for batched ``r (*batch, N)`` and ``n (*batch, M)``."""
        if self.T is not None:
            N, M = self.n_hidden, self.n_nm
            # One (N) x (M*N) matmul instead of M separate ones.
            tr = r @ self.T.reshape(M * N, N).T  # (*batch, M*N): (T_k r)_i at [k*N + i]
            tr = tr.reshape(*r.shape[:-1], M, N)
            return jnp.einsum("...k,...ki->...i", n, tr)
        proj = jnp.einsum("...j,kjq->...kq", r, self.T_right)  # b_k^T r
        return jnp.einsum("...k,...kq,kiq->...i", n, proj, self.T_left)

    # -- interface ---------------------------------------------------------------------------
    def state_sizes(self):
        return {"r": self.n_hidden, "n": self.n_nm}

    @property
    def state_type(self):
        return ENMState

    def modulation(self, states):
        """The neuromodulator concentrations ``n`` at every step, ``(*batch, T, M)``."""
        return states.n

    def step(self, state, u, *, key=None):
        r, n = state
        pre = r @ self.effective_W().T + self.modulatory_drive(r, n) + u @ self.U.T + self.b
        phi_n = get_activation(self.nm_activation)
        ar, an = self.rate("tau_r"), self.rate("tau_n")
        r_new = r + ar * (-r + self.phi(pre))
        n_new = n + an * (-n + phi_n(r @ self.effective_R().T + n @ self.Z.T))
        if self.sigma_rec > 0 and key is not None:
            r_new = r_new + jnp.sqrt(2 * ar) * self.sigma_rec * jr.normal(key, r_new.shape)
        return ENMState(r_new, n_new)

    def readout(self, state):
        return state.r @ self.D.T + self.d

    # -- backward pass by hand (nmrnn.models.bptt) ------------------------------------------
    @property
    def manual_backward(self) -> bool:
        """The hand-written backward applies to the materialised model (W signed, R masked)."""
        return self.sign is None and self.mask is None and self.release_mask is None

    def _pre(self, r, n, u):
        return r @ self.W.T + self.modulatory_drive(r, n) + u @ self.U.T + self.b

    def _t_products(self, r):
        """``T_k r`` ``(*batch, M, N)`` (full T) or ``b_k^T r`` ``(*batch, M, q)`` (factorised)."""
        if self.T is not None:
            return (r @ self.T.reshape(self.n_nm * self.n_hidden, self.n_hidden).T).reshape(
                *r.shape[:-1], self.n_nm, self.n_hidden)
        return jnp.einsum("...j,kjq->...kq", r, self.T_right)

    def bptt_residuals(self, prev, new, xs):
        pre = self._pre(prev.r, prev.n, xs)
        _, dphi = value_and_derivative(self.phi, pre)
        n_pre = prev.r @ self.R.T + prev.n @ self.Z.T
        _, dphi_n = value_and_derivative(get_activation(self.nm_activation), n_pre)
        tprod = self._t_products(prev.r)
        return (dphi, dphi_n, prev.n, tprod), (pre, tprod)

    def bptt_step(self, res, g):
        dphi, dphi_n, n, tprod = res
        ar, an = self.rate("tau_r"), self.rate("tau_n")
        ga = ar * g.r  # cotangent of phi(pre)
        gpre = ga * dphi
        gnp = an * g.n * dphi_n  # ... of the NM pre-activation R r + Z n
        gr = (1.0 - ar) * g.r + gpre @ self.W + gnp @ self.R
        gn = (1.0 - an) * g.n + gnp @ self.Z
        if self.T is not None:  # sum_k n_k T_k r
            gr = gr + (n[..., :, None] * gpre[..., None, :]).reshape(*n.shape[:-1], -1) @ self.T.reshape(
                self.n_nm * self.n_hidden, self.n_hidden)
            gn = gn + jnp.einsum("...i,...ki->...k", gpre, tprod)
        else:  # sum_kq n_k (b_kq^T r) a_kq
            lt = jnp.einsum("...i,kiq->...kq", gpre, self.T_left)  # a_kq^T gpre
            gr = gr + jnp.einsum("...k,...kq,kjq->...j", n, lt, self.T_right)
            gn = gn + jnp.einsum("...kq,...kq->...k", tprod, lt)
        return ENMState(gr, gn), (ga, gpre, gnp)

    def bptt_fields(self):  # with the readout's, which step does not read
        fields = ["W", "U", "b", "R", "Z", "D", "d"] + (["T"] if self.T is not None else ["T_left", "T_right"])
        return fields + ([] if self.E is None else ["E", "e"])

    def bptt_grads(self, prev, new, xs, post, emits):
        pre, tprod = post
        ga, gpre, gnp = emits
        grads = {
            "W": contract(gpre, prev.r),
            "U": contract(gpre, xs),
            "b": gpre.reshape(-1, gpre.shape[-1]).sum(0),
            "R": contract(gnp, prev.r),
            "Z": contract(gnp, prev.n),
            "D": None,
            "d": None,
        }
        if self.T is not None:
            grads["T"] = jnp.einsum("...i,...k,...j->kij", gpre, prev.n, prev.r)
        else:
            lt = jnp.einsum("...i,kiq->...kq", gpre, self.T_left)
            grads["T_left"] = jnp.einsum("...i,...k,...kq->kiq", gpre, prev.n, tprod)
            grads["T_right"] = jnp.einsum("...k,...kq,...j->kjq", prev.n, lt, prev.r)
        if self.E is not None:
            grads["E"], grads["e"] = self.excitability_vjp(pre, ga)
        return grads

    def excitability_vjp(self, pre: Array, g: Array) -> tuple[Array, Array]:
        """The cotangents of ReLU-Tanh's gain ``E`` and threshold ``e`` for the cotangent ``g`` of
        ``phi(pre)`` (autodiff of the elementwise ``phi``, summed over batch and time)."""
        phi = lambda E, e: E * jnp.maximum(jnp.tanh(pre) + e, 0.0)  # noqa: E731
        return jax.vjp(phi, self.E, self.e)[1](g)
