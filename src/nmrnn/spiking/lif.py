"""A network of leaky integrate-and-fire neurons with volume-transmitted neuromodulators (M6).

The spiking model from which the e-nmRNN is derived (paper 000, supplement section 1, eq. 1-5):

    C_m dV_i/dt = -g_L (V_i - E_L) + I_syn,i + I_ext,i                                   (1)
    spike when V_i reaches V_th,i; V_i -> V_reset, held there for tau_ref
    I_syn,i(t)  = sum_j W_eff_ij(t) s_j(t),   s_j(t) = sum_f alpha(t - t_j^f)              (2, 4)
    alpha(t)    = (Q_syn / tau_syn) exp(-t / tau_syn)           (exponential current kernel)
    W_eff(t)    = W + sum_k n_k(t) T_k                                                     (3)
    tau_n,k dn_k/dt = -n_k + tau_n,k sum_j R_kj S_j(t) + tau_n,k sum_l Z_kl n_l             (5)
    I_ext,i(t)  = sum_l U_il I_l(t) + b_i

so each spike of neuron j adds ``Q_syn / tau_syn`` to its synaptic trace ``s_j`` and ``R_kj`` to
the concentration ``n_k``. The thresholds are per neuron (excitability); the other membrane
constants are shared.

Units: any consistent system. The defaults are ms, mV, nF, uS and nA (``C_m / g_L`` is in ms and
``I / g_L`` in mV): ``C_m = 0.2`` nF, ``g_L = 0.01`` uS (tau_m = 20 ms), ``E_L = -70``,
``V_th = -50``, ``V_reset = -60`` mV, ``tau_ref = 2`` ms, ``tau_syn = 5`` ms, ``dt = 0.1`` ms. With
``Q_syn = 1`` a trace ``s`` is in spikes per ms and ``W`` in nA ms (charge per spike).

Integration scheme (stated, and tested for each part)
-----------------------------------------------------
One step of length ``dt`` holds the total current at its value at the start of the step
(synaptic trace, concentrations and external input of that time; zero-order hold) and then:

* integrates the membrane **exactly** for that current, ``V(t) = V_inf + (V_0 - V_inf)
  exp(-t / tau_m)`` with ``V_inf = E_L + I / g_L``, over the part of the step that is not
  refractory (a refractory period may end inside a step; the membrane restarts from ``V_reset``);
* locates a threshold crossing **inside the step** exactly, ``t* = tau_m ln((V_0 - V_inf) /
  (V_th - V_inf))``, resets and starts the refractory period from ``t*`` (at most one spike per
  neuron per step, so ``dt <= tau_ref`` is required);
* decays the synaptic traces exactly and adds each spike's kernel as it stands at the end of the
  step, ``(Q_syn / tau_syn) exp(-(dt - t*) / tau_syn)`` (exact given the spike times);
* propagates the concentrations exactly between spikes, ``n <- expm(A dt) n`` with
  ``A = Z - diag(1 / tau_n)``, and adds the release ``R S`` at the end of the step.

Error: for a constant current (a single neuron, or any input between spikes) the voltage and
every spike time are exact up to rounding, so inter-spike intervals equal the closed form
``tau_ref + tau_m ln((V_reset - V_inf) / (V_th - V_inf))``. For currents that change within a step
(synaptic input, time-varying drive) the zero-order hold gives a local error O(dt^2) in V and a
global error O(dt) in voltages and spike times; a spike reaches the concentrations up to one step
late (O(dt)). Both are measured against a fine-step reference in the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_positive, check_positive_int

#: The default membrane and synapse constants (ms, mV, nF, uS, nA); see the module docstring.
DEFAULT_NEURON = dict(C_m=0.2, g_L=0.01, E_L=-70.0, V_th=-50.0, V_reset=-60.0, tau_ref=2.0,
                      tau_syn=5.0, Q_syn=1.0)


class LIFState(NamedTuple):
    V: Array  # (*batch, N) membrane potentials
    ref: Array  # (*batch, N) refractory time left
    s: Array  # (*batch, N) synaptic traces sum_f alpha(t - t_f)
    n: Array  # (*batch, M) neuromodulator concentrations


class LIFTrajectory(NamedTuple):
    """What :meth:`LIFNetwork.simulate` returns, every array ``(*batch, T, .)`` at the end of
    each step (times ``dt, 2 dt, ..``). ``spike_time``: the exact time of a neuron's spike within
    the run (NaN where it did not spike that step)."""

    V: Array
    spikes: Array  # 0/1
    spike_time: Array
    s: Array
    n: Array
    I_syn: Array  # synaptic current used during each step


def _as_vector(name: str, value, n: int) -> jax.Array:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite number or a vector of {n} numbers, got shape {arr.shape}")
    return jnp.asarray(arr)


def _as_matrix(name: str, value, shape: tuple[int, ...]) -> jax.Array:
    arr = np.asarray(value, dtype=float)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite array of shape {shape}, got shape {arr.shape}")
    return jnp.asarray(arr)


def effective_weights(W: Array, T: Array, n: Array) -> Array:
    """``W + sum_k n_k T_k`` for concentrations ``n (*batch, M)``: ``(*batch, N, N)``."""
    return W + jnp.einsum("...k,kij->...ij", n, T)


class LIFNetwork(eqx.Module):
    """N LIF neurons, M neuromodulators, L external inputs (see the module docstring).

    ``W (N, N)`` base weights, ``T (M, N, N)`` modulatory sensitivities (default zeros),
    ``U (N, L)`` input weights (default identity when ``L = N``), ``b (N)`` constant drive,
    ``R (M, N)`` release per spike, ``Z (M, M)`` NM interactions, ``tau_n (M)``; membrane
    constants as keywords (``V_th`` may be a vector: per-neuron excitability).
    """

    W: Float[Array, "N N"]
    T: Float[Array, "M N N"]
    U: Float[Array, "N L"]
    b: Float[Array, " N"]
    R: Float[Array, "M N"]
    Z: Float[Array, "M M"]
    tau_n: Float[Array, " M"]
    V_th: Float[Array, " N"]
    C_m: float = eqx.field(static=True)
    g_L: float = eqx.field(static=True)
    E_L: float = eqx.field(static=True)
    V_reset: float = eqx.field(static=True)
    tau_ref: float = eqx.field(static=True)
    tau_syn: float = eqx.field(static=True)
    Q_syn: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, W, T=None, U=None, b=None, R=None, Z=None, *, tau_n=100.0, n_nm: int | None = None,
                 C_m=DEFAULT_NEURON["C_m"], g_L=DEFAULT_NEURON["g_L"], E_L=DEFAULT_NEURON["E_L"],
                 V_th=DEFAULT_NEURON["V_th"], V_reset=DEFAULT_NEURON["V_reset"],
                 tau_ref=DEFAULT_NEURON["tau_ref"], tau_syn=DEFAULT_NEURON["tau_syn"],
                 Q_syn=DEFAULT_NEURON["Q_syn"], dt: float = 0.1):
        W = np.asarray(W, dtype=float)
        if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] == 0:
            raise ValueError(f"W must be a square (N, N) matrix, got shape {W.shape}")
        N = W.shape[0]
        if n_nm is None:
            n_nm = next((np.shape(x)[0] for x in (T, R, Z) if x is not None), 1)
        M = check_positive_int("n_nm", n_nm)
        self.W = _as_matrix("W", W, (N, N))
        self.T = jnp.zeros((M, N, N)) if T is None else _as_matrix("T", T, (M, N, N))
        if U is None:
            U = np.eye(N)
        U = np.asarray(U, dtype=float)
        if U.ndim != 2 or U.shape[0] != N:
            raise ValueError(f"U must be an (N, L) = ({N}, L) matrix, got shape {U.shape}")
        self.U = _as_matrix("U", U, U.shape)
        self.b = _as_vector("b", 0.0 if b is None else b, N)
        self.R = jnp.zeros((M, N)) if R is None else _as_matrix("R", R, (M, N))
        self.Z = jnp.zeros((M, M)) if Z is None else _as_matrix("Z", Z, (M, M))
        tau_n = _as_vector("tau_n", tau_n, M)
        if not np.all(np.asarray(tau_n) > 0):
            raise ValueError(f"tau_n must be positive, got {np.asarray(tau_n).tolist()}")
        self.tau_n = tau_n
        self.C_m, self.g_L = check_positive("C_m", C_m), check_positive("g_L", g_L)
        self.E_L, self.V_reset = float(E_L), float(V_reset)
        self.V_th = _as_vector("V_th", V_th, N)
        if not np.all(np.asarray(self.V_th) > self.V_reset):
            raise ValueError(f"every threshold V_th must lie above V_reset={self.V_reset}, "
                             f"got min V_th={float(np.min(self.V_th))}")
        self.tau_ref, self.tau_syn = check_positive("tau_ref", tau_ref), check_positive("tau_syn", tau_syn)
        self.Q_syn, self.dt = check_positive("Q_syn", Q_syn), check_positive("dt", dt)
        if self.dt > self.tau_ref:
            raise ValueError(f"dt={self.dt} is larger than tau_ref={self.tau_ref}: the scheme allows at most "
                             "one spike per neuron per step, so it needs dt <= tau_ref")

    # -- sizes and derived constants ---------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return self.W.shape[0]

    @property
    def n_nm(self) -> int:
        return self.R.shape[0]

    @property
    def n_in(self) -> int:
        return self.U.shape[1]

    @property
    def tau_m(self) -> float:
        return self.C_m / self.g_L

    @property
    def Q_tot(self) -> float:
        """The kernel's total charge, ``int_0^inf alpha(t) dt = Q_syn``."""
        return self.Q_syn

    def nm_generator(self) -> Array:
        """``A = Z - diag(1 / tau_n)``: ``dn/dt = A n`` between spikes."""
        return self.Z - jnp.diag(1.0 / self.tau_n)

    def effective_weights(self, n: Array) -> Array:
        """``W_eff = W + sum_k n_k T_k`` for concentrations ``n (*batch, M)``."""
        return effective_weights(self.W, self.T, n)

    def initial_state(self, batch_shape=(), *, V0=None, n0=None, key: PRNGKeyArray | None = None) -> LIFState:
        """Rest (``V = E_L``), or ``V0``, or with a key uniform in ``[V_reset, V_th)``; ``s = 0``,
        ``n = n0`` (default 0)."""
        shape = (*tuple(batch_shape), self.n_neurons)
        if V0 is not None:
            V = jnp.broadcast_to(jnp.asarray(V0, dtype=float), shape)
        elif key is not None:
            V = self.V_reset + jr.uniform(key, shape) * (self.V_th - self.V_reset)
        else:
            V = jnp.full(shape, self.E_L)
        n = jnp.zeros((*tuple(batch_shape), self.n_nm)) if n0 is None else jnp.broadcast_to(
            jnp.asarray(n0, dtype=float), (*tuple(batch_shape), self.n_nm))
        return LIFState(V, jnp.zeros(shape), jnp.zeros(shape), n)

    # -- one step (see "Integration scheme") ----------------------------------------------
    def step(self, state: LIFState, I_in: Array, t0, propagator: Array) -> tuple[LIFState, tuple]:
        """One step from time ``t0`` with external input ``I_in (*batch, L)``; ``propagator`` is
        ``expm(A dt)``. Returns the new state and ``(spikes, spike_time, I_syn)``."""
        V, ref, s, n = state
        dt, tau_m = self.dt, self.tau_m
        I_syn = jnp.einsum("...ij,...j->...i", self.effective_weights(n), s)
        I_tot = I_syn + I_in @ self.U.T + self.b
        V_inf = self.E_L + I_tot / self.g_L
        free = jnp.clip(dt - ref, 0.0, dt)  # membrane time of this step that is not refractory
        V0 = jnp.where(ref > 0, self.V_reset, V)
        above = V0 >= self.V_th
        # time to reach threshold from V0 under V_inf (only meaningful when V_inf > V_th > V0)
        reaches = (V_inf > self.V_th) & ~above
        safe_num = jnp.where(reaches, V0 - V_inf, -1.0)
        safe_den = jnp.where(reaches, self.V_th - V_inf, -1.0)
        t_cross = jnp.where(above, 0.0, jnp.where(reaches, tau_m * jnp.log(safe_num / safe_den), jnp.inf))
        spike = (free > 0) & (t_cross <= free)
        offset = (dt - free) + jnp.where(spike, t_cross, 0.0)  # spike time within the step
        V_free = V_inf + (V0 - V_inf) * jnp.exp(-free / tau_m)
        V_new = jnp.where(spike, self.V_reset, V_free)
        ref_new = jnp.where(spike, self.tau_ref - (dt - offset), jnp.maximum(ref - dt, 0.0))
        sp = spike.astype(V.dtype)
        s_new = s * np.exp(-dt / self.tau_syn) + sp * (self.Q_syn / self.tau_syn) * jnp.exp(-(dt - offset) / self.tau_syn)
        n_new = n @ propagator.T + sp @ self.R.T
        spike_time = jnp.where(spike, t0 + offset, jnp.nan)
        return LIFState(V_new, ref_new, s_new, n_new), (sp, spike_time, I_syn)

    def simulate(self, inputs: Array, state: LIFState | None = None, *, key: PRNGKeyArray | None = None,
                 t0: float = 0.0) -> tuple[LIFTrajectory, LIFState]:
        """Run over ``inputs (*batch, T, L)`` (one row per step). ``state``: the initial state
        (default :meth:`initial_state`, with random voltages when ``key`` is given). Returns the
        trajectory and the final state."""
        inputs = jnp.asarray(inputs)
        if inputs.ndim < 2 or inputs.shape[-1] != self.n_in:
            raise ValueError(f"inputs must have shape (*batch, T, {self.n_in}), got {inputs.shape}")
        batch = inputs.shape[:-2]
        if state is None:
            state = self.initial_state(batch, key=key)
        return _simulate(self, inputs, state, jnp.asarray(t0, dtype=inputs.dtype))


@eqx.filter_jit
def _simulate(net: LIFNetwork, inputs, state, t0):
    P = jsl.expm(net.nm_generator() * net.dt)
    xs = jnp.moveaxis(inputs, -2, 0)

    def body(carry, scanned):
        st, i = carry, scanned[1]
        new, (sp, st_time, I_syn) = net.step(st, scanned[0], t0 + i * net.dt, P)
        return new, LIFTrajectory(new.V, sp, st_time, new.s, new.n, I_syn)

    final, traj = jax.lax.scan(body, state, (xs, jnp.arange(xs.shape[0])))
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -2), traj), final


def lif_rate(current, *, C_m=DEFAULT_NEURON["C_m"], g_L=DEFAULT_NEURON["g_L"], E_L=DEFAULT_NEURON["E_L"],
             V_th=DEFAULT_NEURON["V_th"], V_reset=DEFAULT_NEURON["V_reset"], tau_ref=DEFAULT_NEURON["tau_ref"]):
    """The steady-state rate of one LIF neuron under a constant current (spikes per time unit):

        f(I) = 1 / (tau_ref + tau_m ln((V_reset - V_inf) / (V_th - V_inf))),  V_inf = E_L + I / g_L

    above rheobase (``V_inf > V_th``), 0 below. With ``tau_ref = 0`` this is eq. 9 of paper 000,
    ``-k / ln|(k T - I') / (k v_reset - I')|`` in its units (``k = g_L / C_m``, ``I' = I / C_m``,
    ``T = V_th - E_L``, ``v_reset = V_reset - E_L``; :func:`nmrnn.activations.lif_rate`); the
    refractory period adds the saturation at ``1 / tau_ref`` that the paper's Fig. 1 shows.
    Differentiable and vectorised over ``current`` and ``V_th``.
    """
    current = jnp.asarray(current, dtype=jnp.result_type(float))
    tau_m = C_m / g_L
    V_inf = E_L + current / g_L
    above = V_inf > V_th
    safe = jnp.where(above, V_inf, V_th + 1.0)
    isi = tau_ref + tau_m * jnp.log((safe - V_reset) / (safe - V_th))
    return jnp.where(above, 1.0 / isi, 0.0)


def rheobase(*, g_L=DEFAULT_NEURON["g_L"], E_L=DEFAULT_NEURON["E_L"], V_th=DEFAULT_NEURON["V_th"]):
    """The smallest constant current that makes the neuron fire, ``g_L (V_th - E_L)``."""
    return g_L * (jnp.asarray(V_th) - E_L)


def measured_rates(spike_time: Array, t_start: float = 0.0) -> np.ndarray:
    """Rates from exact spike times ``(..., T, N)``: ``(number of intervals) / (last - first)``
    over the spikes after ``t_start`` (steady state), per neuron; 0 with fewer than two spikes."""
    st = np.asarray(spike_time)
    st = np.where(st >= t_start, st, np.nan)
    spiked = np.isfinite(st)
    count = np.sum(spiked, axis=-2)
    first, last = np.min(np.where(spiked, st, np.inf), axis=-2), np.max(np.where(spiked, st, -np.inf), axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count >= 2, (count - 1) / (last - first), 0.0)
    return rate


__all__ = ["DEFAULT_NEURON", "LIFNetwork", "effective_weights", "LIFState", "LIFTrajectory", "lif_rate", "measured_rates", "rheobase"]
