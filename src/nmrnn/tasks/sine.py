"""Sine-curve meta-learning (T5; e-nmRNN paper, supplement section 9.1).

Every trial is one member of a family of sine curves. The input is the parameter vector of the
curve, held constant over the whole trial, and the target is the curve itself:

    u_t = (A, omega, phi)                      (P = 3, constant in t)
    y*_t = A sin(omega * t_sec + phi)          t_sec = t * dt,  t = 0 .. n_steps - 1

``dt`` is the duration of one step in **seconds**, ``omega`` is in rad/s and ``phi`` in rad. The
loss mask is 1 at every step.

Parameter distribution (a fixed distribution, as the paper requires):

* ``A = max(U[-1, 1], 0)``: about half of the trials have zero amplitude (the network must stay
  at rest, below its Hopf bifurcation) and the other half a uniform amplitude in (0, 1] (it must
  oscillate, above the bifurcation). This is the paper's distribution.
* ``omega ~ U[omega_range]``, ``phi ~ U[phase_range]``. The paper says only that it restricted
  omega and phi to "a fixed distribution" because the full uniform range made every model class
  fail to oscillate; it gives no numbers. The defaults here are this library's choice:
  ``omega in [1, 3]`` rad/s (periods of 2.1 to 6.3 s, i.e. 21 to 63 steps at ``dt = 0.1`` s, so
  1.6 to 4.8 cycles per 10-s trial) and ``phi in [0, 2 pi)``. Equal bounds fix a parameter.

Training follows the paper's continual regime: every batch is fresh (``sample``; batch 16 by
default) and no trial is seen twice. The metric is the loss (MSE) on a fixed held-out batch
(:meth:`SineMetaLearning.heldout_batch`, drawn from ``heldout_seed``) as a function of the number of
gradient updates; :func:`updates_to_threshold` summarises such a learning curve by the number of
updates needed to reach a loss threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validation import check_nonnegative_int, check_positive, check_positive_int
from .base import AbstractTask, Batch


def _check_range(name: str, value, *, lower: float | None = None) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"{name} must be a finite pair (low, high) with low <= high, got {value!r}")
    if lower is not None and lo < lower:
        raise ValueError(f"{name} must lie in [{lower}, inf), got {value!r}")
    return lo, hi


class SineMetaLearning(AbstractTask):
    """Sine-curve meta-learning. Inputs ``(B, T, 3)`` = (A, omega, phi); targets ``(B, T, 1)``.

    Args:
        n_steps: steps per trial.
        dt: seconds per step (the time axis of the target, ``t_sec = t * dt``).
        omega_range: ``(low, high)`` of the uniform angular-frequency distribution, rad/s.
        phase_range: ``(low, high)`` of the uniform phase distribution, rad.
        heldout_seed: seed of the fixed held-out batch.
        heldout_size: trials in the held-out batch.
    """

    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    omega_range: tuple[float, float] = eqx.field(static=True)
    phase_range: tuple[float, float] = eqx.field(static=True)
    heldout_seed: int = eqx.field(static=True)
    heldout_size: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 16

    def __init__(
        self,
        n_steps: int = 100,
        dt: float = 0.1,
        omega_range: Sequence[float] = (1.0, 3.0),
        phase_range: Sequence[float] = (0.0, 2 * math.pi),
        heldout_seed: int = 12345,
        heldout_size: int = 256,
    ):
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.dt = check_positive("dt", dt)
        self.omega_range = _check_range("omega_range", omega_range, lower=0.0)
        self.phase_range = _check_range("phase_range", phase_range)
        self.heldout_seed = check_nonnegative_int("heldout_seed", heldout_seed)
        self.heldout_size = check_positive_int("heldout_size", heldout_size)
        self.n_in, self.n_out = 3, 1

    def times(self):
        """Time of each step in seconds, ``(T,)``: ``0, dt, 2 dt, ...``."""
        return jnp.arange(self.n_steps, dtype=jnp.float32) * self.dt

    def trials(self, amplitudes, omegas, phases) -> Batch:
        """Deterministic trials from ``amplitudes``, ``omegas`` (rad/s) and ``phases`` (rad), each
        ``(B,)``. Amplitudes are used as given (no rectification)."""
        amp = jnp.asarray(amplitudes, dtype=jnp.float32)
        om = jnp.asarray(omegas, dtype=jnp.float32)
        ph = jnp.asarray(phases, dtype=jnp.float32)
        if not (amp.ndim == om.ndim == ph.ndim == 1 and amp.shape == om.shape == ph.shape):
            raise ValueError(
                "amplitudes, omegas and phases must be 1-D arrays of equal length, got shapes "
                f"{amp.shape}, {om.shape}, {ph.shape}"
            )
        params = jnp.stack([amp, om, ph], axis=-1)  # (B, 3)
        inputs = jnp.broadcast_to(params[:, None, :], (params.shape[0], self.n_steps, 3))
        t = self.times()[None, :]
        targets = (amp[:, None] * jnp.sin(om[:, None] * t + ph[:, None]))[..., None]
        mask = jnp.ones_like(targets)
        return Batch(inputs, targets, mask, {"amplitude": amp, "omega": om, "phase": ph})

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """``batch_size`` fresh curves: ``A = max(U[-1,1], 0)``, omega and phi uniform."""
        check_positive_int("batch_size", batch_size)
        ka, ko, kp = jr.split(key, 3)
        amp = jnp.maximum(jr.uniform(ka, (batch_size,), minval=-1.0, maxval=1.0), 0.0)
        om = jr.uniform(ko, (batch_size,), minval=self.omega_range[0], maxval=self.omega_range[1])
        ph = jr.uniform(kp, (batch_size,), minval=self.phase_range[0], maxval=self.phase_range[1])
        return self.trials(amp, om, ph)

    def heldout_batch(self, key: PRNGKeyArray | None = None, batch_size: int | None = None) -> Batch:
        """The fixed held-out batch: ``heldout_size`` trials drawn with ``PRNGKey(heldout_seed)``
        (or with ``key`` / ``batch_size`` when given). Never used for training by :func:`fit`,
        whose batches come from its own key."""
        key = jr.PRNGKey(self.heldout_seed) if key is None else key
        size = self.heldout_size if batch_size is None else batch_size
        return self.sample(key, size)

    def evaluation_batches(self, key=None) -> dict[str, Batch]:
        """``heldout``: the fixed held-out batch (``key`` is ignored so that every evaluation of
        every model uses the same trials)."""
        return {"heldout": self.heldout_batch()}


def updates_to_threshold(
    losses,
    threshold: float,
    *,
    steps=None,
    window: int = 1,
) -> int | None:
    """Number of gradient updates after which a learning curve first reaches ``threshold``.

    Args:
        losses: ``(n,)`` losses. Without ``steps``, entry ``i`` is taken to be measured after ``i``
            updates (the convention of ``fit``'s ``result.losses``: the loss at step ``i`` is
            computed before the ``i``-th update is applied, i.e. after ``i`` updates).
        threshold: the loss level to reach (``loss <= threshold``).
        steps: optional ``(n,)`` update counts at which the losses were measured (e.g. a held-out
            loss evaluated every 50 updates); the answer is then ``steps[i]``.
        window: width of a trailing running mean applied first (1: no smoothing). The smoothed
            value at ``i`` averages entries ``i - window + 1 .. i``; the first ``window - 1``
            entries are not considered.

    Returns:
        The update count, or ``None`` if the curve never reaches the threshold. NaN entries never
        count as reaching it.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"losses must be a non-empty 1-D array, got shape {losses.shape}")
    thr = float(threshold)
    if not math.isfinite(thr):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    window = check_positive_int("window", window)
    if window > losses.size:
        raise ValueError(f"window={window} is longer than the curve ({losses.size} entries)")
    if steps is not None:
        steps = np.asarray(steps)
        if steps.shape != losses.shape:
            raise ValueError(
                f"steps must have the same shape as losses, got {steps.shape} and {losses.shape}"
            )
        if np.any(np.diff(steps) <= 0):
            raise ValueError("steps must be strictly increasing")
    if window > 1:
        c = np.cumsum(np.insert(losses, 0, 0.0))
        smooth = np.full_like(losses, np.nan)
        smooth[window - 1 :] = (c[window:] - c[:-window]) / window
    else:
        smooth = losses
    hit = np.flatnonzero(smooth <= thr)  # NaN compares False
    if hit.size == 0:
        return None
    i = int(hit[0])
    return int(steps[i]) if steps is not None else i
