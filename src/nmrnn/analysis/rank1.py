"""The exact neuromodulatory signal of a rank-1 NM-RNN (paper 001, supplement B, eq. 10-16;
docs/references.md), its eq.-16 approximation and the power law on a linear ramp.

Time is measured in steps of ``dt`` throughout; ``alpha = dt / tau_x`` is the leak of the
output-generating network per step, and "``tau_x`` in steps" means ``tau_x / dt = 1 / alpha``.
Arrays are batch-major, as everywhere in the library: inputs ``(*batch, T, P)``, targets
``(*batch, T)`` (one output channel), states ``(*batch, T, size)``.

The library's NM-RNN and its conventions against the paper's are set out in
:mod:`nmrnn.analysis.proposition1`; section B is in continuous time with a general ``tau_x``, and
the functions here use the library's Euler step (see :func:`exact_rank1_signal`); the paper's
eq. 16 is its ``dt -> 0`` limit (:func:`approximate_rank1_signal` with ``discrete=False``).

Rank-1 signal (section B): the 1/N and the two normalisations of "w"
-------------------------------------------------------------------
Section B writes ``(1/N) L s R^T = s~ L^ R^^T`` with ``s~ = |L| |R| s``, dropping the ``1/N``;
its eq. 14-16 therefore hold for an unscaled recurrence. The functions here keep the model's
scale (``1/N`` if ``scale_by_n``), so eq. 16 reads ``s = (1 + tau_x f' / (f - d)) / (scale R^T L)``;
for the symmetric orthonormal model ``scale R^T L = 1`` and the plateau value is ``s = 1``.
The rank-1 state of section B (eq. 12, called ``h(t)`` in the paper's Fig. 3B) is
``w = L^^T x`` with the *unit* vector ``L^ = L / |L|``, whereas Proposition 1's low-rank state is
``w = R^T x / N``; they differ by a factor ``|L| / N`` (``1 / sqrt(N)`` for ``L^T L = N``).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validation import check_nonnegative_int, check_positive
from ..activations import get_activation
from ..models.nmrnn import NMRNN
from ._nmrnn_theory import full_input_matrix, require_nmrnn

__all__ = [
    "PowerLaw",
    "Rank1Params",
    "Rank1Signal",
    "approximate_rank1_signal",
    "exact_rank1_signal",
    "ramp_power_law",
    "ramp_power_law_coefficients",
    "rank1_params",
]


class Rank1Params(eqx.Module):
    """What the rank-1 formulas need from a rank-1 NM-RNN (one output channel).

    ``L``, ``R``: ``(N,)`` the factors actually used by the recurrence (orthonormalised and
    ``R = L`` if symmetric); ``B_x``: ``(N, P)`` the x-input weights on *all* input channels;
    ``c``: ``(N,)`` the readout row; ``d``: ``()`` its bias. ``alpha = dt / tau_x`` (per step),
    ``scale`` the recurrence prefactor (``1/N`` or 1), ``activation`` the x-network's ``phi``.
    """

    L: Float[Array, " N"]
    R: Float[Array, " N"]
    B_x: Float[Array, "N P"]
    c: Float[Array, " N"]
    d: Float[Array, ""]
    alpha: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    @property
    def tau_steps(self) -> float:
        """``tau_x / dt``: the x time constant in steps."""
        return 1.0 / self.alpha

    @property
    def plateau(self) -> Array:
        """``s_inf = 1 / (scale R^T L)``: the signal that holds a constant output (eq. 16 with
        ``f' = 0``); 1 for the symmetric orthonormal model."""
        return 1.0 / (self.scale * jnp.dot(self.R, self.L))


def rank1_params(model: NMRNN, output: int = 0) -> Rank1Params:
    """Extract :class:`Rank1Params` from a rank-1 :class:`~nmrnn.models.NMRNN`.

    Args:
        model: an NM-RNN with ``rank == 1`` (any ``phi``; the exact signal handles a nonlinear x
            network, eq. 14; eq. 16 and the power law need ``phi = identity``).
        output: which output channel is the target's.
    """
    require_nmrnn(model, "rank1_params")
    if model.rank != 1:
        raise ValueError(
            f"the rank-1 formulas (supplement B) need an NM-RNN of rank 1, got rank={model.rank}"
        )
    check_nonnegative_int("output", output)
    if output >= model.n_out:
        raise ValueError(f"output={output} is out of range for n_out={model.n_out}")
    m = model.materialize()
    L, R = (np.asarray(a) for a in m.factors())
    return Rank1Params(
        L=jnp.asarray(L[:, 0]),
        R=jnp.asarray(R[:, 0]),
        B_x=jnp.asarray(full_input_matrix(m.B_x, m.x_inputs, m.n_in)),
        c=jnp.asarray(np.asarray(m.C)[output]),
        d=jnp.asarray(np.asarray(m.d)[output]),
        alpha=float(m.dt / m.tau_x),  # a host number: tau_x may be stored as an array
        scale=1.0 / m.n_hidden if m.scale_by_n else 1.0,
        activation=m.x_activation,
    )


class Rank1Signal(NamedTuple):
    """The theoretical signal for a target ``f_t`` (time in steps).

    ``s (*batch, T)``: the gain ``s_t`` (NaN where it is undetermined); ``w (*batch, T)``: the
    rank-1 state ``w_t = L^^T x_t`` of eq. 12 (``h(t)`` in the paper's Fig. 3B);
    ``w_perp (*batch, T, N)``: the residual ``(I - L^ L^^T) x_t`` (``None`` for the approximate
    signal, which neglects it).
    """

    s: Array
    w: Array
    w_perp: Array | None


def _as_target(targets) -> np.ndarray | Array:
    """Shape check only (no device work): returns an object with ``.shape``."""
    if not hasattr(targets, "shape"):
        targets = np.asarray(targets, np.float32)
    if len(targets.shape) < 1:
        raise ValueError(f"targets must have shape (T,) or (batch, T), got {targets.shape}")
    return targets


def exact_rank1_signal(
    params: Rank1Params,
    targets: Float[Array, "*batch T"],
    inputs: Float[Array, "*batch T P"] | None = None,
    x_init: Float[Array, "*batch N"] | None = None,
) -> Rank1Signal:
    """The signal ``s_t`` that makes a rank-1 NM-RNN output exactly ``f_t`` (eq. 10-14, Euler).

    Discrete-time form of supplement eq. 10-14 for the library's Euler step. With
    ``L^ = L / |L|``, ``x = w L^ + w_perp`` and ``a = alpha = dt / tau_x``:

    * the residual does not feel ``s``: ``w_perp_t = (1 - a) w_perp_{t-1} + a Pi B_x u_t``
      (``Pi = I - L^ L^^T``; eq. 10-11);
    * the readout fixes the rank-1 state: ``w_t = (f_t - c^T w_perp_t - d) / (c^T L^)`` (eq. 12);
    * the x update along ``L^`` then gives (eq. 13-14, backward difference)::

        s_t = [ (w_t - (1 - a) w_{t-1}) / a - L^^T B_x u_t ] / ( scale |L| R^T phi(x_{t-1}) )

      where ``(w_t - (1 - a) w_{t-1}) / a = w_{t-1} + tau_x (w_t - w_{t-1}) / dt`` is the discrete
      ``w + tau_x dw/dt``.

    Feeding this ``s_t`` into the NM-RNN's x update reproduces ``f_t`` exactly (for ``t >= 0``).
    ``s_t`` is NaN where ``R^T phi(x_{t-1}) = 0`` (e.g. ``t = 0`` from the zero state; the output
    then does not depend on ``s_t``, and is reachable only if ``f_t`` equals the input-driven
    value). The formula needs ``c^T L != 0``.

    Args:
        params: from :func:`rank1_params`.
        targets: ``f_t``, ``(T,)`` or ``(*batch, T)``, for steps ``t = 0..T-1``.
        inputs: ``(*batch, T, P)`` on all the model's input channels; ``None`` means none.
        x_init: the state ``x_{-1}`` before the first step, ``(N,)`` or ``(*batch, N)``;
            ``None`` means the model's zero initial state.
    """
    targets = _as_target(targets)
    N, P = params.B_x.shape
    T = targets.shape[-1]
    if inputs is None:
        inputs = np.zeros((*targets.shape, P), np.float32)
    in_shape = np.shape(inputs)
    if len(in_shape) < 2 or in_shape[-1] != P or in_shape[-2] != T:
        raise ValueError(
            f"inputs must have shape (..., T={T}, P={P}) to match targets {targets.shape}, got "
            f"{in_shape}"
        )
    if x_init is None:
        x_init = np.zeros(N, np.float32)
    x_shape = np.shape(x_init)
    if len(x_shape) < 1 or x_shape[-1] != N:
        raise ValueError(f"x_init must have shape (..., N={N}), got {x_shape}")
    try:
        np.broadcast_shapes(targets.shape[:-1], in_shape[:-2], x_shape[:-1])
    except ValueError:
        raise ValueError(
            f"the batch shapes of targets {targets.shape}, inputs {in_shape} and x_init "
            f"{x_shape} do not broadcast"
        ) from None
    return _exact_rank1_core(params, targets, inputs, x_init)


@eqx.filter_jit
def _exact_rank1_core(params: Rank1Params, targets, inputs, x_init) -> Rank1Signal:
    N, P = params.B_x.shape
    T = targets.shape[-1]
    batch = jnp.broadcast_shapes(targets.shape[:-1], inputs.shape[:-2], x_init.shape[:-1])
    targets = jnp.broadcast_to(targets, (*batch, T))
    inputs = jnp.broadcast_to(inputs, (*batch, T, P))
    x_init = jnp.broadcast_to(x_init, (*batch, N))

    a = params.alpha
    norm_l = jnp.linalg.norm(params.L)
    l_hat = params.L / norm_l
    phi = get_activation(params.activation)

    drive = inputs @ params.B_x.T  # (*batch, T, N): B_x u_t
    drive_along = drive @ l_hat  # (*batch, T): L^^T B_x u_t
    drive_perp = drive - drive_along[..., None] * l_hat

    w_perp0 = x_init - (x_init @ l_hat)[..., None] * l_hat

    def body(w_perp, b_perp):
        new = (1.0 - a) * w_perp + a * b_perp
        return new, new

    _, w_perp = jax.lax.scan(body, w_perp0, jnp.moveaxis(drive_perp, -2, 0))
    w_perp = jnp.moveaxis(w_perp, 0, -2)  # (*batch, T, N)

    c_l = jnp.dot(params.c, l_hat)
    w = (targets - w_perp @ params.c - params.d) / c_l  # eq. 12

    w_prev = jnp.concatenate([(x_init @ l_hat)[..., None], w[..., :-1]], axis=-1)
    w_perp_prev = jnp.concatenate([w_perp0[..., None, :], w_perp[..., :-1, :]], axis=-2)
    x_prev = w_prev[..., None] * l_hat + w_perp_prev
    numerator = (w - (1.0 - a) * w_prev) / a - drive_along
    denominator = params.scale * norm_l * (phi(x_prev) @ params.R)
    safe = jnp.where(denominator == 0, 1.0, denominator)
    s = jnp.where(denominator == 0, jnp.nan, numerator / safe)
    return Rank1Signal(s=s, w=w, w_perp=w_perp)


def _require_linear(params: Rank1Params, what: str) -> None:
    if params.activation != "identity":
        raise ValueError(
            f"{what} holds for a linear output-generating network (phi = identity, eq. 16); "
            f"the model has activation={params.activation!r}; use exact_rank1_signal instead"
        )


def approximate_rank1_signal(
    params: Rank1Params,
    targets: Float[Array, "*batch T"],
    slopes: Float[Array, "*batch T"] | None = None,
    *,
    discrete: bool = True,
) -> Rank1Signal:
    """The paper's approximate signal (eq. 16) and rank-1 state (eq. 12), neglecting the inputs and
    the residual mode ``w_perp``; needs ``phi = identity``.

    * ``w_t = (f_t - d) / (c^T L^)`` (eq. 12 with ``w_perp = 0``, ``J = 0``).
    * ``discrete=False``: eq. 16, ``s_t = s_inf (1 + tau f'_t / (f_t - d))`` with
      ``s_inf = 1 / (scale R^T L)``, ``tau = tau_x / dt`` and ``slopes = f'`` per step (``None``:
      ``jnp.gradient`` of ``targets``).
    * ``discrete=True`` (default): the same for the Euler step,
      ``s_t = s_inf (1 + tau (f_t - f_{t-1}) / (f_{t-1} - d))`` with ``f_{-1} = f_0``; this is
      :func:`exact_rank1_signal` without inputs, started on the rank-1 mode at rest
      (``x_{-1} = w_0 L^``). ``slopes`` is ignored.

    Args:
        params: from :func:`rank1_params`.
        targets: ``f_t``, ``(*batch, T)``, time in steps.
        slopes: ``f'_t`` per step, ``(*batch, T)``, for ``discrete=False``.
    """
    _require_linear(params, "approximate_rank1_signal")
    targets = _as_target(targets)
    if not discrete and slopes is not None and np.shape(slopes) != tuple(targets.shape):
        raise ValueError(
            f"slopes must have the shape of targets {tuple(targets.shape)}, got {np.shape(slopes)}"
        )
    return _approximate_rank1_core(params, targets, slopes, discrete)


@eqx.filter_jit
def _approximate_rank1_core(params: Rank1Params, targets, slopes, discrete: bool) -> Rank1Signal:
    targets = jnp.asarray(targets)
    l_hat = params.L / jnp.linalg.norm(params.L)
    w = (targets - params.d) / jnp.dot(params.c, l_hat)
    tau = params.tau_steps
    if discrete:
        previous = jnp.concatenate([targets[..., :1], targets[..., :-1]], axis=-1)
        s = params.plateau * (1.0 + tau * (targets - previous) / (previous - params.d))
    else:
        slopes = jnp.gradient(targets, axis=-1) if slopes is None else jnp.asarray(slopes)
        s = params.plateau * (1.0 + tau * slopes / (targets - params.d))
    return Rank1Signal(s=s, w=w, w_perp=None)


class PowerLaw(NamedTuple):
    """``s(t) = s_inf (1 + tau / (t - t0))`` on a linear ramp (time in steps).

    ``s_inf``: the plateau ``1 / (scale R^T L)``; ``t0``: the time at which the ramp's line crosses
    the readout bias ``d`` (the pole); ``tau``: ``tau_x / dt``; the exponent is -1:
    ``s - s_inf = s_inf tau (t - t0)^-1``.
    """

    s_inf: Array
    t0: Array
    tau: float


def _check_ramp(interval, low, high) -> None:
    check_positive("interval", interval)
    if float(high) == float(low):
        raise ValueError(f"a ramp needs high != low, got low={low}, high={high}")


def ramp_power_law_coefficients(
    params: Rank1Params, *, t_go: float, interval: float, low: float = -0.5, high: float = 0.5
) -> PowerLaw:
    """Coefficients of the power law of :func:`ramp_power_law` (see :class:`PowerLaw`).

    The MWG ramp is ``f(t) = low + (high - low)(t - t_go) / interval`` on
    ``[t_go, t_go + interval]``; with slope ``k = (high - low) / interval``,
    ``f(t) - d = k (t - t0)`` and ``t0 = t_go + (d - low) / k``.
    """
    _require_linear(params, "the ramp power law")
    _check_ramp(interval, low, high)
    k = (high - low) / interval
    return PowerLaw(s_inf=params.plateau, t0=t_go + (params.d - low) / k, tau=params.tau_steps)


def ramp_power_law(
    params: Rank1Params,
    t: Float[Array, " T"],
    *,
    t_go: float,
    interval: float,
    low: float = -0.5,
    high: float = 0.5,
    discrete: bool = True,
) -> Float[Array, " T"]:
    """Closed form of eq. 16 for the MWG target (flat ``low``, linear ramp, flat ``high``).

    ``s = s_inf`` on the flat parts and a power law with exponent -1 on the ramp:

    * ``discrete=False`` (eq. 16, continuous time): ``s(t) = s_inf (1 + tau / (t - t0))`` for
      ``t_go <= t < t_go + interval``;
    * ``discrete=True`` (Euler step, backward difference; equals
      :func:`approximate_rank1_signal` with ``discrete=True``): ``s_t = s_inf (1 + tau /
      (t - 1 - t0))`` for ``t_go < t <= t_go + interval``.

    ``t`` (any shape) and ``t_go``, ``interval`` are in steps; see
    :func:`ramp_power_law_coefficients` for ``s_inf``, ``t0``, ``tau``.
    """
    law = ramp_power_law_coefficients(params, t_go=t_go, interval=interval, low=low, high=high)
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    if discrete:
        on_ramp = (t > t_go) & (t <= t_go + interval)
        lag = t - 1.0
    else:
        on_ramp = (t >= t_go) & (t < t_go + interval)
        lag = t
    ramp = law.s_inf * (1.0 + law.tau / jnp.where(on_ramp, lag - law.t0, 1.0))
    return jnp.where(on_ramp, ramp, law.s_inf * jnp.ones_like(t))

