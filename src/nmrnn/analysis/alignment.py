"""Gradient alignment of the e-nmRNN's neuromodulation (paper 000, supplement section 4).

The claim: over training, the direction in which the neuromodulators move the effective weights,
``sum_k T_k dn_k/dt``, comes to point along the gradient-descent direction of a *surrogate*
network whose weights are the e-nmRNN's effective weights frozen over a window,
``W_eff = W + sum_k T_k nbar_k``. The paper measures the cosine between the two ``N x N``
directions and compares it with the null of two independent random directions in ``D = N^2``
dimensions, ``cos ~ N(0, 1/D)`` (it reports 0.13-0.15 at N = 128, about 16 null standard
deviations).

Definitions (per window; windows are consecutive, non-overlapping blocks of ``window`` steps from
the first step of the trial; the last ``T mod window`` steps belong to no window). Time indices
follow the library's convention: ``r_t, n_t`` are the states *after* input ``t``, ``r_{-1}, n_{-1}``
the initial state, and step ``t`` reads ``n_{t-1}`` (simultaneous Euler update). For the window
``t = s .. s + L - 1`` (``L = window``):

* **Frozen neuromodulators** ``nbar``: the mean of the concentrations that act on the window's
  steps, ``n_{s-1} .. n_{s+L-2}``, over those ``L`` steps and (``average="batch"``, the default)
  over the trials of the batch as well, so that the batch shares one surrogate. With
  ``average="trial"`` every trial has its own ``nbar``, surrogate, loss and cosine.
* **Surrogate** (the paper's "coevolving RNN"): the e-nmRNN's rate equation with the
  neuromodulators held at ``nbar``, i.e. a vanilla rate RNN with recurrent matrix
  ``W_eff = W + sum_k nbar_k T_k`` (``W`` after Dale signs and masks) and the e-nmRNN's own
  ``phi`` (excitability included), ``U``, ``b``, ``tau_r`` and readout ``D, d``. It starts from
  the e-nmRNN's rates ``r_{s-1}`` at the start of the window (a constant) and runs the window's
  ``L`` inputs. Its loss is the masked MSE over the window (over the batch, or over the one trial
  with ``average="trial"``), the library's training loss restricted to the window.
* **Descent direction** ``-grad_{W_eff} L``: the negative gradient of that loss with respect to
  all ``N^2`` entries of ``W_eff`` (equal to its gradient with respect to ``W``, since the frozen
  part is a constant). The paper's ``-alpha grad_W L``; ``alpha > 0`` drops out of a cosine.
* **NM direction** ``sum_k T_k dn_k/dt``. ``nm_rate="net"`` (default):
  ``dn/dt = (n_{s+L-1} - n_{s-1}) / (L dt)``, the net change of the concentrations over the window
  per unit time, which equals the mean over the window's steps of the per-step rate
  ``(n_t - n_{t-1}) / dt`` (the sum telescopes); averaged over the batch with ``average="batch"``.
  ``nm_rate="slope"``: the least-squares slope of ``n`` against time over the window's ``L + 1``
  states ``n_{s-1} .. n_{s+L-1}``, which an oscillation inside the window disturbs less.
* **Statistic**: the cosine between the two directions, the null standard deviation
  ``1/sqrt(D)`` with ``D = N^2`` (two independent random directions: mean 0, variance ``1/D``),
  the z-score ``cos * sqrt(D)`` and both norms. A cosine is NaN where either direction is zero
  (a window without scored steps, or neuromodulators at rest).

Where the paper is ambiguous (what ``nbar`` averages, where the surrogate starts, which ``dn/dt``)
the defaults above follow its text: one ``W_eff`` per window for the network ("the parameters of
the e-nmRNN"), a coevolving surrogate (it starts where the e-nmRNN is), the mean rate of change
over the window. The alternatives are options.

Control: :func:`shuffle_entries` permutes the entries of each NM direction (independently per
window), which keeps their distribution (mean, spread, sparsity) and destroys their arrangement;
the cosine with the shuffled direction follows the null unless the agreement comes from the
entries' common mean alone. The untrained network is the other control (the
``gradient-alignment`` reproduction measures both).

Shapes: batches are batch-major, ``inputs (B, T, P)``, ``targets`` and ``mask (B, T, O)``. With
``average="batch"`` the per-window results have shape ``(K,)`` (``K = T // window`` windows);
with ``average="trial"``, ``(B, K)``. The network runs without recurrent noise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice
from ..models.enmrnn import ENMRNN
from ..tasks.base import masked_mse

__all__ = [
    "ALIGNMENT_AVERAGES",
    "NM_RATES",
    "Alignment",
    "AlignmentVectors",
    "alignment_statistics",
    "alignment_vectors",
    "gradient_alignment",
    "shuffle_entries",
]

#: What ``nbar`` (and the NM direction) is averaged over besides the window's steps.
ALIGNMENT_AVERAGES = ("batch", "trial")
#: How ``dn/dt`` is formed over a window.
NM_RATES = ("net", "slope")


class AlignmentVectors(NamedTuple):
    """The two directions of every window (``...`` is ``(K,)`` or ``(B, K)``, see the module).

    ``descent``: ``(..., N, N)`` the surrogate's ``-grad_{W_eff} L``; ``nm_direction``:
    ``(..., N, N)`` ``sum_k T_k dn_k/dt``; ``nbar``: ``(..., M)`` the frozen concentrations;
    ``nm_rate``: ``(..., M)`` ``dn/dt`` (per unit of the model's time, ``dt`` per step);
    ``loss``: ``(...)`` the surrogate's loss over the window.
    """

    descent: Array
    nm_direction: Array
    nbar: Array
    nm_rate: Array
    loss: Array


class Alignment(NamedTuple):
    """Per-window statistics, each of shape ``(...)`` (``(K,)`` or ``(B, K)``).

    ``cosine`` between the two directions (NaN where one is zero); ``null_sd = 1/sqrt(D)``, the
    standard deviation of the cosine of two independent random directions in ``D`` dimensions;
    ``z = cosine / null_sd``; ``descent_norm`` and ``nm_norm``: the Frobenius norms of the first
    and second direction.
    """

    cosine: Array
    null_sd: Array
    z: Array
    descent_norm: Array
    nm_norm: Array


def _unpack(batch: Any) -> tuple[Array, Array, Array]:
    if all(hasattr(batch, k) for k in ("inputs", "targets", "mask")):
        return batch.inputs, batch.targets, batch.mask
    try:
        inputs, targets, mask = batch
    except (TypeError, ValueError):
        raise ValueError(
            "batch must be a Batch or a tuple (inputs, targets, mask), got "
            f"{type(batch).__name__}"
        ) from None
    return inputs, targets, mask


def _check(model: Any, batch: Any, window: Any, average: str, nm_rate: str):
    if not isinstance(model, ENMRNN):
        raise ValueError(
            "gradient alignment needs an e-nmRNN (neuromodulators acting on the weights through a "
            f"tensor T); got a {type(model).__name__}, which has none"
        )
    check_choice("average", average, ALIGNMENT_AVERAGES)
    check_choice("nm_rate", nm_rate, NM_RATES)
    inputs, targets, mask = (jnp.asarray(a) for a in _unpack(batch))
    if inputs.ndim != 3 or inputs.shape[-1] != model.n_in:
        raise ValueError(
            f"inputs must have shape (B, T, {model.n_in}) for this model, got {tuple(inputs.shape)}"
        )
    expected = (*inputs.shape[:2], model.n_out)
    if tuple(targets.shape) != expected or tuple(mask.shape) != expected:
        raise ValueError(
            f"targets and mask must have shape {expected}, got {tuple(targets.shape)} and "
            f"{tuple(mask.shape)}"
        )
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a whole number of steps >= 1, got {window!r}")
    n_steps = int(inputs.shape[1])
    if window > n_steps:
        raise ValueError(f"window={window} steps is longer than the trials ({n_steps} steps)")
    return inputs, targets, mask, int(window)


def _windows(a: Array, n_windows: int, window: int) -> Array:
    """``(B, T, ...)`` -> ``(B, K, L, ...)`` (the trailing ``T mod L`` steps dropped)."""
    return a[:, : n_windows * window].reshape(a.shape[0], n_windows, window, *a.shape[2:])


def _surrogate_loss(core: ENMRNN, w_eff, r0, u, y, m):
    """Masked MSE of the frozen surrogate over one window: ``r0 (B, N)``, ``u (B, L, P)``,
    ``y``/``m`` ``(B, L, O)``, ``w_eff (N, N)``."""
    ar = core.rate("tau_r")

    def step(r, u_t):
        r = r + ar * (-r + core.phi(r @ w_eff.T + u_t @ core.U.T + core.b))
        return r, r

    _, rs = jax.lax.scan(step, r0, jnp.moveaxis(u, 1, 0))
    out = jnp.moveaxis(rs, 0, 1) @ core.D.T + core.d
    return masked_mse(out, y, m)


def _rate(n_win: Array, dt: float, how: str) -> Array:
    """``dn/dt`` from the ``L + 1`` states ``(..., L + 1, M)`` spanning each window."""
    L = n_win.shape[-2] - 1
    if how == "net":
        return (n_win[..., -1, :] - n_win[..., 0, :]) / (L * dt)
    tau = jnp.arange(L + 1, dtype=n_win.dtype) - L / 2.0
    return jnp.einsum("l,...lm->...m", tau, n_win) / (jnp.sum(tau**2) * dt)


@eqx.filter_jit
def _vectors(model: ENMRNN, inputs, targets, mask, window: int, average: str, nm_rate: str) -> AlignmentVectors:
    core = model.materialize()
    B, T = inputs.shape[:2]
    K = T // window
    traj = core.forward(inputs)
    s0 = core.initial_state((B,))
    r_all = jnp.concatenate([s0.r[:, None], traj.states.r], axis=1)  # (B, T+1, N): index t = r_{t-1}
    n_all = jnp.concatenate([s0.n[:, None], traj.states.n], axis=1)
    n_acting = _windows(n_all[:, :-1], K, window)  # (B, K, L, M): n_{s-1} .. n_{s+L-2}
    # the L+1 states n_{s-1} .. n_{s+L-1} spanning each window
    idx = window * jnp.arange(K)[:, None] + jnp.arange(window + 1)[None, :]
    n_span = n_all[:, idx]  # (B, K, L+1, M)
    r_start = jax.lax.stop_gradient(r_all[:, window * jnp.arange(K)])  # (B, K, N): r_{s-1}
    u, y, m = (_windows(a, K, window) for a in (inputs, targets, mask))  # (B, K, L, .)
    nbar = n_acting.mean(axis=2)  # (B, K, M)
    rate = _rate(n_span, core.dt, nm_rate)  # (B, K, M)
    if average == "batch":
        nbar, rate = nbar.mean(axis=0), rate.mean(axis=0)  # (K, M)
    T_full = core.full_T()
    w_eff = core.W + jnp.einsum("...k,kij->...ij", nbar, T_full)
    direction = jnp.einsum("...k,kij->...ij", rate, T_full)
    value_and_grad = jax.value_and_grad(lambda w, r0, uu, yy, mm: _surrogate_loss(core, w, r0, uu, yy, mm))
    if average == "batch":  # vmap over windows; each window's surrogate runs the whole batch
        to_k = lambda a: jnp.moveaxis(a, 1, 0)  # noqa: E731
        loss, grad = jax.vmap(value_and_grad)(w_eff, to_k(r_start), to_k(u), to_k(y), to_k(m))
    else:  # vmap over trials and windows; each surrogate runs one trial
        one = lambda w, r0, uu, yy, mm: value_and_grad(w, r0[None], uu[None], yy[None], mm[None])  # noqa: E731
        loss, grad = jax.vmap(jax.vmap(one))(w_eff, r_start, u, y, m)
    return AlignmentVectors(-grad, direction, nbar, rate, loss)


def alignment_vectors(
    model: ENMRNN,
    batch: Any,
    *,
    window: int = 100,
    average: str = "batch",
    nm_rate: str = "net",
) -> AlignmentVectors:
    """The surrogate's descent direction and the NM direction of every window of ``batch``.

    Args:
        model: an :class:`~nmrnn.models.ENMRNN` (any other model is refused).
        batch: a :class:`~nmrnn.tasks.base.Batch` or a tuple ``(inputs, targets, mask)``,
            batch-major ``(B, T, P)``, ``(B, T, O)``, ``(B, T, O)``.
        window: steps per window, ``1 <= window <= T`` (the paper: 100).
        average: ``"batch"`` (default; one surrogate per window for the whole batch, ``nbar`` and
            ``dn/dt`` averaged over the window's steps and the batch's trials) or ``"trial"``
            (one per trial and window).
        nm_rate: ``"net"`` (default; the mean rate of change over the window) or ``"slope"``
            (the least-squares slope over the window).

    Returns:
        :class:`AlignmentVectors`, compiled once per model structure, batch shape and options
        (one program over all windows).
    """
    inputs, targets, mask, window = _check(model, batch, window, average, nm_rate)
    return _vectors(model, inputs, targets, mask, window, average, nm_rate)


@jax.jit
def alignment_statistics(a: Float[Array, "... N N"], b: Float[Array, "... N N"]) -> Alignment:
    """Cosine, null standard deviation, z-score and norms of ``a`` against ``b`` over their last
    two axes (``D`` = the number of entries of one matrix), for every leading index."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    D = a.shape[-1] * a.shape[-2]
    na = jnp.sqrt(jnp.sum(a * a, axis=(-2, -1)))
    nb = jnp.sqrt(jnp.sum(b * b, axis=(-2, -1)))
    dot = jnp.sum(a * b, axis=(-2, -1))
    ok = (na > 0) & (nb > 0)
    cos = jnp.where(ok, dot / jnp.where(ok, na * nb, 1.0), jnp.nan)
    null = jnp.full(cos.shape, 1.0 / np.sqrt(D), cos.dtype)
    return Alignment(cos, null, cos / null, na, nb)


def shuffle_entries(x: Float[Array, "... N N"], key: PRNGKeyArray) -> Array:
    """``x`` with the ``N*N`` entries of every matrix randomly permuted, an independent
    permutation per leading index (the shuffle control)."""
    x = jnp.asarray(x)
    lead, shape = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, shape[0] * shape[1])
    keys = jr.split(key, flat.shape[0])
    out = jax.vmap(lambda k, v: jr.permutation(k, v))(keys, flat)
    return out.reshape(*lead, *shape)


def gradient_alignment(
    model: ENMRNN,
    batch: Any,
    *,
    window: int = 100,
    average: str = "batch",
    nm_rate: str = "net",
    shuffle_key: PRNGKeyArray | None = None,
) -> Alignment:
    """The alignment statistic of every window (see the module docstring for the definitions).

    Arguments as :func:`alignment_vectors`; with ``shuffle_key`` the NM direction's entries are
    permuted first (:func:`shuffle_entries`): the shuffle control. To get both the statistic and
    its control from one computation of the gradients, call :func:`alignment_vectors` once and
    :func:`alignment_statistics` twice.
    """
    vec = alignment_vectors(model, batch, window=window, average=average, nm_rate=nm_rate)
    direction = vec.nm_direction if shuffle_key is None else shuffle_entries(vec.nm_direction, shuffle_key)
    return alignment_statistics(vec.descent, direction)
