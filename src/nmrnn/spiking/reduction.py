"""The rate reduction of the LIF network (paper 000, supplement eq. 12-21), as a model to compare.

Averaging over spike times, with the rates and concentrations slow against the synaptic kernel,
the network of :class:`~nmrnn.spiking.lif.LIFNetwork` becomes

    tau_r dr_i/dt   = -r_i + f_LIF,i( sum_j (W_ij + sum_k T_ijk n_k) r_j + (U I)_i + b_i )    (16-17)
    tau_n,k dn_k/dt = -n_k + sum_j R_kj r_j + sum_l Z''_kl n_l                            (18-19)

with the parameters mapped as the paper does: ``W = Q_tot W_base``, ``T = Q_tot T_LIF`` (eq. 13),
``R = tau_n R_LIF`` and ``Z'' = tau_n Z_LIF`` (eq. 19; ``Z' = Z'' - I`` is the paper's combined
decay), and ``f_LIF`` the steady-state rate of each neuron with its own threshold and the
refractory period (:func:`~nmrnn.spiking.lif.lif_rate`). The rate time constant ``tau_r`` is not
fixed by the derivation; the default is the synaptic time constant, for which ``Q_tot r_j``
approximates the synaptic trace ``s_j`` of the spiking network (``tau_syn ds/dt = -s + Q_syn
S(t)``): the spiking network's population rate to compare with is its traces over ``Q_tot``.

:func:`compare_reduction` runs both models on the same input and returns the errors.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Float

from .._validation import check_positive
from .lif import LIFNetwork, effective_weights, lif_rate


class RateTrajectory(NamedTuple):
    r: Array  # (*batch, T, N) rates (spikes per time unit)
    n: Array  # (*batch, T, M)


class LIFRateModel(eqx.Module):
    """The reduced rate model of a :class:`LIFNetwork` (see the module docstring); build it with
    :func:`reduce_network`. ``simulate`` integrates ``r`` with exponential Euler (the current held
    over a step) and ``n`` exactly for the rates held over a step."""

    W: Float[Array, "N N"]
    T: Float[Array, "M N N"]
    U: Float[Array, "N L"]
    b: Float[Array, " N"]
    R: Float[Array, "M N"]
    Z: Float[Array, "M M"]
    tau_n: Float[Array, " M"]
    V_th: Float[Array, " N"]
    neuron: dict = eqx.field(static=True)
    tau_r: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    modulated: bool = eqx.field(static=True, default=True)

    def rate_function(self, current: Array) -> Array:
        """``f_LIF`` of every neuron (its own threshold) at ``current (*batch, N)``."""
        return lif_rate(current, V_th=self.V_th, **self.neuron)

    def drive(self, r: Array, n: Array, I_in: Array) -> Array:
        W_eff = effective_weights(self.W, self.T, n) if self.modulated else self.W
        return jnp.einsum("...ij,...j->...i", W_eff, r) + I_in @ self.U.T + self.b

    def nm_generator(self) -> Array:
        return (self.Z - jnp.eye(self.Z.shape[0])) / self.tau_n[:, None]

    def fixed_point_rates(self, I_in: Array, n: Array, *, iterations: int = 200) -> Array:
        """The rates at the fixed point of the r-equation for constant input and concentrations
        (damped iteration from the feed-forward rates)."""
        r = self.rate_function(I_in @ self.U.T + self.b)
        for _ in range(iterations):
            r = 0.5 * r + 0.5 * self.rate_function(self.drive(r, n, I_in))
        return r

    def simulate(self, inputs: Array, r0: Array | None = None, n0: Array | None = None) -> RateTrajectory:
        inputs = jnp.asarray(inputs)
        batch = inputs.shape[:-2]
        N, M = self.W.shape[0], self.R.shape[0]
        r0 = jnp.zeros((*batch, N)) if r0 is None else jnp.broadcast_to(r0, (*batch, N))
        n0 = jnp.zeros((*batch, M)) if n0 is None else jnp.broadcast_to(n0, (*batch, M))
        return _simulate_rates(self, inputs, r0, n0)


@eqx.filter_jit
def _simulate_rates(model: LIFRateModel, inputs, r0, n0):
    A = model.nm_generator()
    P = jsl.expm(A * model.dt)
    # exact response to a constant drive over one step: A^-1 (P - I) (diag(1/tau_n) R r)
    G = jnp.linalg.solve(A, P - jnp.eye(A.shape[0])) / model.tau_n[None, :]
    decay = np.exp(-model.dt / model.tau_r)

    def body(carry, u):
        r, n = carry
        target = model.rate_function(model.drive(r, n, u))
        r_new = target + (r - target) * decay
        n_new = n @ P.T + (r @ model.R.T) @ G.T
        return (r_new, n_new), RateTrajectory(r_new, n_new)

    _, traj = jax.lax.scan(body, (r0, n0), jnp.moveaxis(inputs, -2, 0))
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -2), traj)


def reduce_network(net: LIFNetwork, *, tau_r: float | None = None, modulated: bool = True) -> LIFRateModel:
    """The rate model of ``net`` with the paper's parameter map (module docstring). ``tau_r``:
    default ``net.tau_syn``. ``modulated=False`` drops the ``T`` term (a control)."""
    tau_r = net.tau_syn if tau_r is None else check_positive("tau_r", tau_r)
    neuron = dict(C_m=net.C_m, g_L=net.g_L, E_L=net.E_L, V_reset=net.V_reset, tau_ref=net.tau_ref)
    return LIFRateModel(
        W=net.Q_tot * net.W, T=net.Q_tot * net.T, U=net.U, b=net.b,
        R=net.tau_n[:, None] * net.R, Z=net.tau_n[:, None] * net.Z, tau_n=net.tau_n, V_th=net.V_th,
        neuron=neuron, tau_r=float(tau_r), dt=net.dt, modulated=bool(modulated))


def nrmse(estimate: np.ndarray, reference: np.ndarray, axis=-1) -> np.ndarray:
    """Root-mean-square difference over ``axis``, divided by the reference's standard deviation
    over that axis (0: perfect; 1: no better than the reference's mean)."""
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    err = np.sqrt(np.mean((estimate - reference) ** 2, axis=axis))
    return err / np.maximum(np.std(reference, axis=axis), 1e-300)


class ReductionErrors(NamedTuple):
    rate_nrmse: np.ndarray  # (*batch,) population-mean rate, relative to its modulation
    nm_nrmse: np.ndarray  # (*batch, M)
    rate_rel: np.ndarray  # (*batch,) RMS difference of the population rate / its mean
    nm_rel: np.ndarray  # (*batch, M) RMS difference of each concentration / the model's RMS
    spiking_rate: np.ndarray  # (*batch, T') population-mean rate of the spiking network
    model_rate: np.ndarray  # (*batch, T')
    spiking_n: np.ndarray  # (*batch, T', M)
    model_n: np.ndarray
    times: np.ndarray  # (T',)


def compare_reduction(net: LIFNetwork, inputs: Array, *, transient: float, key=None, tau_r: float | None = None,
                      modulated: bool = True) -> ReductionErrors:
    """Simulate ``net`` and its reduction on ``inputs (*batch, T, L)`` and compare, after
    ``transient`` time units, the population-mean rate (spiking: mean trace ``s / Q_tot``) and
    every concentration. The spiking network starts from random voltages (``key``) and the
    rate model from the rates of its fixed point for the first input (concentrations 0)."""
    inputs = jnp.asarray(inputs)
    spk, _ = net.simulate(inputs, key=key)
    model = reduce_network(net, tau_r=tau_r, modulated=modulated)
    r0 = model.fixed_point_rates(inputs[..., 0, :], jnp.zeros((*inputs.shape[:-2], net.n_nm)))
    rates = model.simulate(inputs, r0=r0)
    times = (np.arange(inputs.shape[-2]) + 1) * net.dt
    keep = times > transient
    pop_spk = np.asarray(spk.s).mean(-1)[..., keep] / net.Q_tot
    pop_mod = np.asarray(rates.r).mean(-1)[..., keep]
    n_spk = np.asarray(spk.n)[..., keep, :]
    n_mod = np.asarray(rates.n)[..., keep, :]
    rel = np.sqrt(np.mean((pop_spk - pop_mod) ** 2, axis=-1)) / np.maximum(np.mean(pop_mod, axis=-1), 1e-300)
    nm_rel = np.sqrt(np.mean((n_spk - n_mod) ** 2, axis=-2)) / np.maximum(np.sqrt(np.mean(n_mod**2, axis=-2)), 1e-300)
    return ReductionErrors(nrmse(pop_spk, pop_mod), nrmse(n_spk, n_mod, axis=-2), rel, nm_rel, pop_spk, pop_mod,
                           n_spk, n_mod, times[keep])


__all__ = ["LIFRateModel", "RateTrajectory", "ReductionErrors", "compare_reduction", "nrmse", "reduce_network"]
