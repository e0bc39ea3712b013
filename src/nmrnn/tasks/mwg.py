"""Measure-Wait-Go (T1; NM-RNN paper, supplement C).

Three input channels carry pulses of height ``pulse`` (10) at the measure cue ``t_m``, the wait cue
``t_w = t_m + interval`` and the go cue ``t_g = t_w + delay`` (delay 15). The target is ``low``
(-0.5) until ``t_g``, then a linear ramp reaching ``high`` (+0.5) ``interval`` steps after the go
cue, then ``high``: ``y*(t) = low + (high - low) * clip((t - t_g) / interval, 0, 1)``. The loss mask
is 1 everywhere (the reference code scores the whole trial) unless ``mask_pad`` is given: then it
is 1 only on ``[t_g - mask_pad, t_g + max(intervals) + mask_pad)``, the reference code's option,
needed by networks that cannot hold an output from the zero initial state before the cues (the
rank-1 NM-RNN, whose gains are below 1, can only let its state decay: it holds the pre-go level
between the cues and releases it into the ramp). All times are in steps (T = 110).

Training set: intervals {12, 14, 16, 18} x measure times 10..19 = 40 trials, used as one full batch.
Extrapolation set: intervals {4, 6, 8, 10, 20, 22, 24, 26} at measure time 15 (as in the reference
scripts); the rank-1 experiment tests intervals 7, 15 and 23.

Where the sources differ: the supplement's rank-3 paragraph says the *delay* varied over 10..19,
its rank-1 paragraph and the reference code vary the *measure time* over 10..19 with a fixed delay
of 15. This module follows the code (``SPEC.md`` T1 says the same) by default;
``delay_range=(10, 19)`` gives the supplement's reading: the delay varies per trial, the measure
time is fixed at ``measure_range[0]``, and the fixed training set is intervals x delays. Test
batches keep the fixed ``delay``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_nonnegative_int, check_positive, check_positive_int
from .base import AbstractTask, Batch

TRAIN_INTERVALS = (12, 14, 16, 18)
EXTRAPOLATION_INTERVALS = (4, 6, 8, 10, 20, 22, 24, 26)
RANK1_TEST_INTERVALS = (7, 15, 23)


class MeasureWaitGo(AbstractTask):
    """Measure-Wait-Go. ``measure_range`` is inclusive; times are in steps."""

    intervals: tuple[int, ...] = eqx.field(static=True)
    measure_range: tuple[int, int] = eqx.field(static=True)
    delay: int = eqx.field(static=True)
    delay_range: tuple[int, int] | None = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    pulse: float = eqx.field(static=True)
    low: float = eqx.field(static=True)
    high: float = eqx.field(static=True)
    test_measure: int = eqx.field(static=True)
    mask_pad: int | None = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 40

    def __init__(
        self,
        intervals: Sequence[int] = TRAIN_INTERVALS,
        measure_range: tuple[int, int] = (10, 19),
        delay: int = 15,
        delay_range: tuple[int, int] | None = None,
        n_steps: int = 110,
        pulse: float = 10.0,
        low: float = -0.5,
        high: float = 0.5,
        test_measure: int = 15,
        mask_pad: int | None = None,
    ):
        intervals = tuple(check_positive_int("interval", i) for i in intervals)
        if not intervals:
            raise ValueError("intervals must name at least one interval")
        lo, hi = (int(v) for v in measure_range)
        if lo < 0 or hi < lo:
            raise ValueError(f"measure_range must be (lo, hi) with 0 <= lo <= hi, got {measure_range}")
        self.intervals = intervals
        self.measure_range = (lo, hi)
        self.delay = check_positive_int("delay", delay)
        if delay_range is None:
            self.delay_range = None
        else:
            d_lo, d_hi = (check_positive_int("delay_range", v) for v in delay_range)
            if d_hi < d_lo:
                raise ValueError(f"delay_range must be (lo, hi) with lo <= hi, got {delay_range}")
            self.delay_range = (d_lo, d_hi)
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.pulse = check_positive("pulse", pulse)
        self.low, self.high = float(low), float(high)
        self.test_measure = int(test_measure)
        self.mask_pad = None if mask_pad is None else check_nonnegative_int("mask_pad", mask_pad)
        self.n_in, self.n_out = 3, 1
        self._check_fits(max(intervals), lo if self.delay_range else hi, self._max_delay())

    def _max_delay(self) -> int:
        return self.delay if self.delay_range is None else max(self.delay, self.delay_range[1])

    def _check_fits(self, interval: int, t_measure: int, delay: int | None = None) -> None:
        end = t_measure + 2 * interval + (self.delay if delay is None else delay)
        if end > self.n_steps - 1:
            raise ValueError(
                f"a trial with measure time {t_measure} and interval {interval} ends its ramp at "
                f"step {end}, beyond the last step {self.n_steps - 1} (n_steps={self.n_steps})"
            )

    def trials(self, intervals, t_measures, delays=None) -> Batch:
        """Deterministic trials for given ``intervals``, measure times and (optionally) delays
        (arrays of equal length; ``delays=None`` uses the fixed ``delay``)."""
        intervals = jnp.asarray(intervals, dtype=jnp.int32)
        t_m = jnp.asarray(t_measures, dtype=jnp.int32)
        t = jnp.arange(self.n_steps)[None, :]
        t_w = t_m + intervals
        t_g = t_w + (self.delay if delays is None else jnp.asarray(delays, dtype=jnp.int32))
        inputs = self.pulse * jnp.stack(
            [t == t_m[:, None], t == t_w[:, None], t == t_g[:, None]], axis=-1
        ).astype(jnp.float32)
        frac = jnp.clip((t - t_g[:, None]) / intervals[:, None], 0.0, 1.0)
        targets = (self.low + (self.high - self.low) * frac)[..., None]
        if self.mask_pad is None:
            mask = jnp.ones_like(targets)
        else:
            lo = t_g[:, None] - self.mask_pad
            hi = t_g[:, None] + max(self.intervals) + self.mask_pad
            mask = ((t >= lo) & (t < hi)).astype(jnp.float32)[..., None]
        info = {"interval": intervals, "t_measure": t_m, "t_wait": t_w, "t_go": t_g, "delay": t_g - t_w}
        return Batch(inputs, targets, mask, info)

    def sample(self, key, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        k1, k2 = jr.split(key)
        intervals = jr.choice(k1, jnp.asarray(self.intervals), (batch_size,))
        lo, hi = self.measure_range
        if self.delay_range is not None:
            d_lo, d_hi = self.delay_range
            delays = jr.randint(k2, (batch_size,), d_lo, d_hi + 1)
            return self.trials(intervals, jnp.full((batch_size,), lo), delays)
        t_m = jr.randint(k2, (batch_size,), lo, hi + 1)
        return self.trials(intervals, t_m)

    def fixed_batch(self) -> Batch:
        """Every (interval, measure time) pair of the training set: 40 trials by default."""
        lo, hi = self.measure_range
        if self.delay_range is not None:
            d_lo, d_hi = self.delay_range
            grid_i, grid_d = np.meshgrid(self.intervals, np.arange(d_lo, d_hi + 1), indexing="ij")
            return self.trials(grid_i.ravel(), np.full(grid_i.size, lo), grid_d.ravel())
        grid_i, grid_m = np.meshgrid(self.intervals, np.arange(lo, hi + 1), indexing="ij")
        return self.trials(grid_i.ravel(), grid_m.ravel())

    def test_batch(self, intervals: Sequence[int], t_measure: int | None = None) -> Batch:
        """One trial per interval at measure time ``t_measure`` (default ``test_measure``)."""
        t_measure = self.test_measure if t_measure is None else int(t_measure)
        for i in intervals:
            check_positive_int("interval", i)
            self._check_fits(int(i), t_measure)
        return self.trials(list(intervals), [t_measure] * len(intervals))

    def extrapolation_batch(self) -> Batch:
        return self.test_batch(EXTRAPOLATION_INTERVALS)

    def evaluation_batches(self, key=None) -> dict[str, Batch]:
        """``trained``: the 40-trial training set; ``extrapolated``: the 8 extrapolation intervals
        at the test measure time."""
        return {"trained": self.fixed_batch(), "extrapolated": self.extrapolation_batch()}

    def figures(self, models, out_dir):
        """Output ramps on trained and extrapolated intervals for every model, and the
        neuromodulatory signal aligned to the go cue for every model that has one."""
        from ..plotting import mwg as plots

        out_dir = Path(out_dir)
        written = [plots.plot_ramps(dict(models), self, out_dir / "ramps.png")]
        for label, model in models.items():
            if model.modulatory_fields:
                slug = "".join(c if c.isalnum() else "-" for c in label).strip("-").lower()
                written.append(plots.plot_gains(model, self, out_dir / f"gains_{slug}.png", title=label))
        return written

    def evaluate(self, outputs, batch: Batch) -> dict:
        """Overall masked MSE and the MSE of each interval present in the batch (``loss_<i>``)."""
        err = np.asarray(batch.mask * (outputs - batch.targets) ** 2).sum(axis=(1, 2))
        per_trial = err / np.asarray(batch.mask).sum(axis=(1, 2))
        out = {"loss": float(per_trial.mean())}
        intervals = np.asarray(batch.info["interval"])
        for i in np.unique(intervals):
            out[f"loss_{int(i)}"] = float(per_trial[intervals == i].mean())
        return out
