"""The field's standard tasks (T8): flip-flop memory, sine generation, delayed discrimination and
path integration (the four tasks of the solution-degeneracy study, paper 004).

* :class:`FlipFlop` -- the N-bit (default 3-bit) flip-flop of Sussillo & Barak (2013), in the
  form of the public "fixed-point-finder" example: each of ``n_bits`` input channels carries
  sparse +1/-1 pulses; output ``i`` holds the sign of the most recent pulse on channel ``i``.
* :class:`SineGeneration` -- the sine-wave generator of Sussillo & Barak (2013): a static input
  level ``j / n_freqs + 0.25`` selects one of ``n_freqs`` (51) frequencies, evenly spaced over
  ``omega in [0.1, 0.6]`` rad per time unit; the target is ``sin(omega_j t)``.
* :class:`DelayedDiscrimination` -- Romo's vibrotactile comparison task (Romo et al. 1999;
  Barak, Tsodyks & Romo 2010) with the neurogym conventions: two frequencies ``f1``, ``f2``
  separated by a delay; after the go cue the output reports which one was larger.
* :class:`PathIntegration` -- integrate a 1-D or 2-D velocity input into a position.

All arrays are batch-major ``(B, T, .)`` and every generator is a pure, jit-compatible function of
its PRNG key. Each task also has a deterministic ``trials(...)`` constructor for tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validation import (
    check_choice,
    check_fraction,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from .base import AbstractTask, Batch, masked_mse


def _last_event(events):
    """For each ``(b, t, c)``: the value of the most recent non-zero entry of ``events`` at or
    before ``t`` (0 if none) and whether there was one. ``events``: ``(B, T, C)``."""
    n_steps = events.shape[1]
    t = jnp.arange(n_steps)[None, :, None]
    idx = jnp.where(events != 0, t, -1)
    last = jax.lax.cummax(idx, axis=1)
    held = jnp.take_along_axis(events, jnp.maximum(last, 0), axis=1)
    seen = last >= 0
    return jnp.where(seen, held, 0.0), seen


# ----------------------------------------------------------------------------------------------
# flip-flop
# ----------------------------------------------------------------------------------------------


class FlipFlop(AbstractTask):
    """N-bit flip-flop memory (Sussillo & Barak 2013). Inputs and targets ``(B, T, n_bits)``.

    Time is cut into slots of ``pulse_steps`` steps. In each slot and on each channel, a pulse
    starts with probability ``pulse_prob``; it has a random sign (+1 or -1 with equal probability),
    amplitude ``pulse_amplitude`` and lasts the whole slot, so pulses on one channel never overlap.
    With ``pulse_steps = 1`` this is exactly the per-step Bernoulli scheme of the fixed-point-finder
    example. The target of a channel switches to the sign of a pulse (+1 / -1) at the pulse's first
    step and holds it until the next pulse on that channel.

    ``initial_pulse=True`` (the fixed-point-finder convention) forces a pulse on every channel in
    the first slot, so every output has a defined target from step 0 and a trained network visits
    only the 2^n_bits memory states. Without it, a channel's target is 0 and its mask 0 until its
    first pulse (nothing to remember yet). Elsewhere the mask is 1.

    Defaults: 3 bits, 100 steps, ``pulse_prob = 0.05`` (about 5 pulses per channel per trial),
    1-step pulses of amplitude 1.
    """

    n_bits: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    pulse_prob: float = eqx.field(static=True)
    pulse_steps: int = eqx.field(static=True)
    pulse_amplitude: float = eqx.field(static=True)
    initial_pulse: bool = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        n_bits: int = 3,
        n_steps: int = 100,
        pulse_prob: float = 0.05,
        pulse_steps: int = 1,
        pulse_amplitude: float = 1.0,
        initial_pulse: bool = True,
    ):
        self.n_bits = check_positive_int("n_bits", n_bits)
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.pulse_prob = check_fraction("pulse_prob", pulse_prob)
        self.pulse_steps = check_positive_int("pulse_steps", pulse_steps)
        if self.pulse_steps > self.n_steps:
            raise ValueError(
                f"pulse_steps={pulse_steps} is longer than the trial (n_steps={self.n_steps})"
            )
        self.pulse_amplitude = check_positive("pulse_amplitude", pulse_amplitude)
        self.initial_pulse = bool(initial_pulse)
        self.n_in = self.n_out = self.n_bits

    def _build(self, onsets) -> Batch:
        """Trials from signed pulse onsets ``(B, T, n_bits)`` in {-1, 0, +1} (no checks)."""
        onsets = jnp.asarray(onsets, dtype=jnp.float32)
        pulses = onsets
        for k in range(1, self.pulse_steps):  # extend each onset over pulse_steps steps
            pulses = pulses + jnp.pad(onsets, ((0, 0), (k, 0), (0, 0)))[:, : self.n_steps]
        targets, seen = _last_event(onsets)
        mask = seen.astype(jnp.float32)
        info = {"n_pulses": jnp.sum(onsets != 0, axis=1)}
        return Batch(self.pulse_amplitude * pulses, targets, mask, info)

    def trials(self, onsets) -> Batch:
        """Deterministic trials from signed pulse onsets ``(B, n_steps, n_bits)``: +1 / -1 at the
        first step of a pulse, 0 elsewhere. Onsets on one channel must be at least
        ``pulse_steps`` apart (pulses may not overlap)."""
        o = np.asarray(onsets)
        if o.ndim != 3 or o.shape[1:] != (self.n_steps, self.n_bits):
            raise ValueError(
                f"onsets must have shape (B, {self.n_steps}, {self.n_bits}), got {o.shape}"
            )
        if not np.all(np.isin(o, (-1, 0, 1))):
            raise ValueError("onsets must contain only -1, 0 and +1")
        if self.pulse_steps > 1:
            for b, c in zip(*np.nonzero(np.any(o != 0, axis=1)), strict=True):
                gaps = np.diff(np.flatnonzero(o[b, :, c]))
                if gaps.size and gaps.min() < self.pulse_steps:
                    raise ValueError(
                        f"trial {b}, channel {c}: pulse onsets {gaps.min()} steps apart overlap "
                        f"(pulse_steps={self.pulse_steps})"
                    )
        return self._build(o)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        n_slots = -(-self.n_steps // self.pulse_steps)
        k_on, k_sign = jr.split(key)
        shape = (batch_size, n_slots, self.n_bits)
        on = jr.bernoulli(k_on, self.pulse_prob, shape)
        if self.initial_pulse:
            on = on.at[:, 0, :].set(True)
        sign = jnp.where(jr.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
        slots = jnp.where(on, sign, 0.0)
        onsets = jnp.zeros((batch_size, n_slots * self.pulse_steps, self.n_bits))
        onsets = onsets.at[:, :: self.pulse_steps].set(slots)[:, : self.n_steps]
        return self._build(onsets)

    def evaluate(self, outputs, batch: Batch) -> dict:
        """Masked MSE and ``accuracy``: the fraction of scored (trial, step, bit) entries whose
        output has the sign of the target."""
        correct = (jnp.sign(outputs) == batch.targets) * batch.mask
        return {
            "loss": masked_mse(outputs, batch.targets, batch.mask),
            "accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(batch.mask), 1.0),
        }


# ----------------------------------------------------------------------------------------------
# sine-wave generation
# ----------------------------------------------------------------------------------------------


class SineGeneration(AbstractTask):
    """Sine-wave generation from a static frequency cue (Sussillo & Barak 2013).

    Condition ``j = 1 .. n_freqs`` has angular frequency
    ``omega_j = omega_lo + (omega_hi - omega_lo) (j - 1) / (n_freqs - 1)`` (rad per time unit) and
    the constant input ``u = j / n_freqs + input_offset``; the target is ``sin(omega_j t)`` with
    ``t = step * dt`` (time units per step), starting at ``t = 0``. Defaults follow the paper:
    51 frequencies in [0.1, 0.6] rad/unit, offset 0.25; ``dt = 1`` unit and 300 steps (at least
    4.7 cycles of the slowest sine). The mask is 1 everywhere. ``info["freq_index"]`` holds ``j``.
    """

    n_freqs: int = eqx.field(static=True)
    omega_range: tuple[float, float] = eqx.field(static=True)
    input_offset: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        n_freqs: int = 51,
        omega_range: Sequence[float] = (0.1, 0.6),
        input_offset: float = 0.25,
        dt: float = 1.0,
        n_steps: int = 300,
    ):
        self.n_freqs = check_positive_int("n_freqs", n_freqs)
        lo, hi = (check_positive("omega_range", v) for v in omega_range)
        if hi < lo or (self.n_freqs > 1 and hi == lo):
            raise ValueError(
                f"omega_range must be (low, high) with 0 < low < high, got {tuple(omega_range)}"
            )
        self.omega_range = (lo, hi)
        self.input_offset = float(input_offset)
        self.dt = check_positive("dt", dt)
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.n_in = self.n_out = 1

    def omegas(self):
        """``(n_freqs,)`` angular frequencies, condition ``j`` at index ``j - 1``."""
        lo, hi = self.omega_range
        if self.n_freqs == 1:
            return jnp.asarray([lo], dtype=jnp.float32)
        return lo + (hi - lo) * jnp.arange(self.n_freqs, dtype=jnp.float32) / (self.n_freqs - 1)

    def input_levels(self):
        """``(n_freqs,)`` input levels ``j / n_freqs + input_offset``."""
        j = jnp.arange(1, self.n_freqs + 1, dtype=jnp.float32)
        return j / self.n_freqs + self.input_offset

    def _build(self, j) -> Batch:
        return self._build_cued(self.omegas()[j - 1], self.input_levels()[j - 1], j)

    def _build_cued(self, omega, level, j) -> Batch:
        inputs = jnp.broadcast_to(level[:, None, None], (j.shape[0], self.n_steps, 1))
        t = jnp.arange(self.n_steps, dtype=jnp.float32) * self.dt
        targets = jnp.sin(omega[:, None] * t[None, :])[..., None]
        return Batch(inputs, targets, jnp.ones_like(targets), {"freq_index": j, "omega": omega})

    def cued_trials(self, omegas) -> Batch:
        """Deterministic trials for any angular frequencies ``omegas`` (rad per time unit,
        ``(B,)``), each cued by the level on the line through the task's (frequency, level)
        pairs: ``u = 1 / n_freqs + input_offset + (omega - omega_lo) / (omega_hi - omega_lo) *
        (n_freqs - 1) / n_freqs``. At a trained frequency this is that condition's level (the
        trials equal :meth:`trials`); between two trained frequencies it cues an unseen one (the
        out-of-distribution probe of :mod:`nmrnn.analysis.degeneracy`). Needs ``n_freqs >= 2``;
        ``info["freq_index"]`` is 0 (no trained condition)."""
        if self.n_freqs < 2:
            raise ValueError("cued_trials needs n_freqs >= 2 (one frequency defines no cue line)")
        w = np.asarray(omegas, dtype=float)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or w.min() <= 0:
            raise ValueError(f"omegas must be a non-empty 1-D array of positive numbers, got {omegas!r}")
        lo, hi = self.omega_range
        level = 1.0 / self.n_freqs + self.input_offset + (w - lo) / (hi - lo) * (self.n_freqs - 1) / self.n_freqs
        j = jnp.zeros(w.shape, jnp.int32)
        return self._build_cued(jnp.asarray(w, jnp.float32), jnp.asarray(level, jnp.float32), j)

    def trials(self, freq_indices) -> Batch:
        """Deterministic trials for conditions ``freq_indices`` (``(B,)``, values 1..n_freqs)."""
        j = np.asarray(freq_indices)
        if j.ndim != 1 or j.size == 0 or j.min() < 1 or j.max() > self.n_freqs:
            raise ValueError(
                f"freq_indices must be a non-empty 1-D array of integers in 1..{self.n_freqs}, "
                f"got {freq_indices!r}"
            )
        return self._build(jnp.asarray(j, dtype=jnp.int32))

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        return self._build(jr.randint(key, (batch_size,), 1, self.n_freqs + 1))

    def evaluation_batches(self, key=None) -> dict[str, Batch]:
        """``all``: one trial per frequency."""
        return {"all": self.trials(np.arange(1, self.n_freqs + 1))}


# ----------------------------------------------------------------------------------------------
# delayed discrimination (Romo)
# ----------------------------------------------------------------------------------------------

#: Frequency pairs (Hz) of Romo's task as used by pycog / neurogym; each pair is shown in either
#: order, so f1 > f2 and f1 < f2 are equally likely.
ROMO_PAIRS = ((18.0, 10.0), (22.0, 14.0), (26.0, 18.0), (30.0, 22.0), (34.0, 26.0))


def _steps(name: str, ms: float, dt: float, *, minimum: int) -> int:
    v = check_nonnegative(name, ms)
    n = v / dt
    if abs(n - round(n)) > 1e-6 * max(1.0, n):
        raise ValueError(f"{name}={ms} ms is not a whole number of steps of dt={dt} ms")
    n = int(round(n))
    if n < minimum:
        raise ValueError(f"{name}={ms} ms must last at least {minimum} step(s) of dt={dt} ms")
    return n


class DelayedDiscrimination(AbstractTask):
    """Delayed vibrotactile frequency discrimination (Romo). Inputs ``(B, T, 2)``, target
    ``(B, T, 1)``.

    Epochs (durations in ms, converted to steps of ``dt`` ms; each must be a whole number of
    steps): fixation -> stimulus 1 (``f1``) -> delay -> stimulus 2 (``f2``) -> decision. ``delay``
    is a fixed duration or a ``(low, high)`` range from which each trial draws a whole number of
    steps uniformly; the trial length is set by the longest delay and the decision epoch runs to
    the end of the trial.

    Inputs: channel 0 is the fixation cue, 1 until the go cue (the start of the decision epoch) and
    0 after it; channel 1 carries the stimulus, ``(1 + (f - f_min) / (f_max - f_min)) / 2`` in
    [0.5, 1] (the neurogym encoding; ``f_min``, ``f_max`` over all pairs) during the two stimulus
    epochs and 0 elsewhere, plus optional Gaussian noise of std ``input_noise`` during the stimulus
    epochs (sampled trials only). Target: 0 before the go cue, then ``+1`` if ``f1 > f2`` and
    ``-1`` if ``f1 < f2``. Mask: 1 everywhere.

    Defaults: neurogym's pairs and epochs (fixation 500, stimuli 500, delay 1000 ms) with a 500-ms
    decision epoch and ``dt = 20`` ms (150 steps).
    """

    pairs: tuple[tuple[float, float], ...] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    fixation_steps: int = eqx.field(static=True)
    stimulus_steps: int = eqx.field(static=True)
    delay_steps: tuple[int, int] = eqx.field(static=True)
    decision_steps: int = eqx.field(static=True)
    input_noise: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        pairs: Sequence[Sequence[float]] = ROMO_PAIRS,
        dt: float = 20.0,
        fixation: float = 500.0,
        stimulus: float = 500.0,
        delay: float | Sequence[float] = 1000.0,
        decision: float = 500.0,
        input_noise: float = 0.0,
    ):
        pairs = tuple(tuple(float(f) for f in p) for p in pairs)
        if not pairs:
            raise ValueError("pairs must list at least one (f1, f2) frequency pair")
        for p in pairs:
            if len(p) != 2 or not all(math.isfinite(f) and f > 0 for f in p):
                raise ValueError(f"each pair must be two positive frequencies (Hz), got {p}")
            if p[0] == p[1]:
                raise ValueError(f"pair {p} has equal frequencies; the larger one is undefined")
        self.pairs = pairs
        self.dt = check_positive("dt", dt)
        self.fixation_steps = _steps("fixation", fixation, self.dt, minimum=0)
        self.stimulus_steps = _steps("stimulus", stimulus, self.dt, minimum=1)
        if isinstance(delay, int | float):
            delay = (delay, delay)
        if len(delay) != 2:
            raise ValueError(f"delay must be a duration or a (low, high) range in ms, got {delay}")
        d_lo = _steps("delay", delay[0], self.dt, minimum=0)
        d_hi = _steps("delay", delay[1], self.dt, minimum=0)
        if d_hi < d_lo:
            raise ValueError(f"delay range must be (low, high) with low <= high, got {delay}")
        self.delay_steps = (d_lo, d_hi)
        self.decision_steps = _steps("decision", decision, self.dt, minimum=1)
        self.input_noise = check_nonnegative("input_noise", input_noise)
        self.n_steps = self.fixation_steps + 2 * self.stimulus_steps + d_hi + self.decision_steps
        self.n_in, self.n_out = 2, 1

    def encode(self, f):
        """Stimulus-channel level of frequency ``f`` (Hz): ``(1 + (f - f_min)/(f_max - f_min))/2``."""
        fs = np.ravel(self.pairs)
        return (1.0 + (f - fs.min()) / (fs.max() - fs.min())) / 2.0

    def _build(self, f1, f2, delay_steps, noise=None) -> Batch:
        f1 = jnp.asarray(f1, dtype=jnp.float32)
        f2 = jnp.asarray(f2, dtype=jnp.float32)
        d = jnp.asarray(delay_steps, dtype=jnp.int32)
        t = jnp.arange(self.n_steps)[None, :]
        s1 = jnp.full_like(d, self.fixation_steps)
        s1_end = s1 + self.stimulus_steps
        s2 = s1_end + d
        go = s2 + self.stimulus_steps
        in1 = (t >= s1[:, None]) & (t < s1_end[:, None])
        in2 = (t >= s2[:, None]) & (t < go[:, None])
        stim = jnp.where(in1, self.encode(f1)[:, None], 0.0) + jnp.where(
            in2, self.encode(f2)[:, None], 0.0
        )
        if noise is not None:
            stim = stim + noise * (in1 | in2)
        fixation = (t < go[:, None]).astype(jnp.float32)
        inputs = jnp.stack([fixation, stim], axis=-1)
        label = jnp.where(f1 > f2, 1.0, -1.0)
        targets = jnp.where(t >= go[:, None], label[:, None], 0.0)[..., None]
        info = {
            "f1": f1, "f2": f2, "label": label, "delay_steps": d,
            "t_stim1": s1, "t_delay": s1_end, "t_stim2": s2, "t_go": go,
        }
        return Batch(inputs, targets, jnp.ones_like(targets), info)

    def trials(self, f1, f2, delay=None) -> Batch:
        """Deterministic, noise-free trials for frequencies ``f1``, ``f2`` (Hz, ``(B,)``) and delays
        ``delay`` (ms, ``(B,)``; default the shortest delay)."""
        f1, f2 = np.asarray(f1, dtype=float), np.asarray(f2, dtype=float)
        if f1.ndim != 1 or f1.shape != f2.shape or f1.size == 0:
            raise ValueError(f"f1 and f2 must be 1-D of equal length, got {f1.shape}, {f2.shape}")
        if np.any(f1 == f2):
            raise ValueError("f1 and f2 must differ in every trial")
        if delay is None:
            d = np.full(f1.shape, self.delay_steps[0])
        else:
            d = np.asarray(
                [_steps("delay", v, self.dt, minimum=0) for v in np.ravel(delay)], dtype=int
            )
            if d.shape != f1.shape:
                raise ValueError(f"delay must have shape {f1.shape}, got {np.shape(delay)}")
            lo, hi = self.delay_steps
            if d.min() < lo or d.max() > hi:
                raise ValueError(
                    f"delays must lie in [{lo * self.dt}, {hi * self.dt}] ms, got {delay!r}"
                )
        return self._build(f1, f2, d)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        kp, ko, kd, kn = jr.split(key, 4)
        pairs = jnp.asarray(self.pairs, dtype=jnp.float32)
        p = pairs[jr.randint(kp, (batch_size,), 0, len(self.pairs))]
        swap = jr.bernoulli(ko, 0.5, (batch_size,))
        f1 = jnp.where(swap, p[:, 1], p[:, 0])
        f2 = jnp.where(swap, p[:, 0], p[:, 1])
        lo, hi = self.delay_steps
        d = jr.randint(kd, (batch_size,), lo, hi + 1)
        noise = None
        if self.input_noise > 0:
            noise = self.input_noise * jr.normal(kn, (batch_size, self.n_steps))
        return self._build(f1, f2, d, noise)

    def evaluate(self, outputs, batch: Batch) -> dict:
        """Masked MSE and ``accuracy``: the sign of the mean output over the decision epoch equals
        the label."""
        t = jnp.arange(batch.n_steps)[None, :]
        dec = (t >= batch.info["t_go"][:, None]).astype(outputs.dtype)
        mean_out = jnp.sum(outputs[..., 0] * dec, axis=1) / jnp.maximum(jnp.sum(dec, axis=1), 1.0)
        return {
            "loss": masked_mse(outputs, batch.targets, batch.mask),
            "accuracy": jnp.mean(jnp.sign(mean_out) == batch.info["label"]),
        }


# ----------------------------------------------------------------------------------------------
# path integration
# ----------------------------------------------------------------------------------------------

BOUNDARIES = ("reflect", "wrap", "none")


class PathIntegration(AbstractTask):
    """Path integration in 1-D or 2-D. Inputs: velocity ``(B, T, n_dims)``; targets: position
    ``(B, T, n_dims)``.

    The position starts at the origin and integrates the velocity input with the forward Euler
    rule, the current step included: ``x_t = sum_{s <= t} v_s dt`` (``dt`` in seconds per step).

    Velocities follow an Ornstein-Uhlenbeck process per component, sampled exactly on the grid:
    ``v_0 ~ N(0, speed^2)``, ``v_t = rho v_{t-1} + sqrt(1 - rho^2) speed xi_t`` with
    ``rho = exp(-dt / velocity_timescale)`` (``speed`` is the stationary std, units/s).

    Boundaries (the domain is the box ``[-box_size/2, box_size/2]^n_dims``):

    * ``"reflect"`` (default): when a step would leave the box, that velocity component is reversed
      before it is applied (the agent turns around) and the process continues from the reversed
      velocity. The input is the applied velocity, so the target is still exactly the cumulative
      sum of the inputs and never leaves the box. Speeds are clipped to ``box_size / (2 dt)`` per
      component, which guarantees that a reversed step lands inside.
    * ``"wrap"``: periodic domain; the target is the cumulative sum wrapped into the box,
      ``mod(x + box_size/2, box_size) - box_size/2``.
    * ``"none"``: unbounded; the target is the cumulative sum (``box_size`` is unused).

    The mask is 1 everywhere. Defaults: 2-D, 100 steps of 0.1 s, speed 0.5 units/s, velocity
    timescale 1 s, box of side 2 ([-1, 1]^2).
    """

    n_dims: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    speed: float = eqx.field(static=True)
    velocity_timescale: float = eqx.field(static=True)
    boundary: str = eqx.field(static=True)
    box_size: float = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        n_dims: int = 2,
        n_steps: int = 100,
        dt: float = 0.1,
        speed: float = 0.5,
        velocity_timescale: float = 1.0,
        boundary: str = "reflect",
        box_size: float = 2.0,
    ):
        self.n_dims = check_positive_int("n_dims", n_dims)
        if self.n_dims not in (1, 2):
            raise ValueError(f"n_dims must be 1 or 2, got {n_dims!r}")
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.dt = check_positive("dt", dt)
        self.speed = check_positive("speed", speed)
        self.velocity_timescale = check_positive("velocity_timescale", velocity_timescale)
        self.boundary = check_choice("boundary", boundary, BOUNDARIES)
        self.box_size = check_positive("box_size", box_size)
        self.n_in = self.n_out = self.n_dims

    def positions(self, velocities):
        """Targets of velocities ``(B, T, n_dims)``: the (wrapped) cumulative sum times ``dt``."""
        x = jnp.cumsum(jnp.asarray(velocities, dtype=jnp.float32) * self.dt, axis=1)
        if self.boundary == "wrap":
            half = self.box_size / 2
            x = jnp.mod(x + half, self.box_size) - half
        return x

    def _build(self, velocities) -> Batch:
        v = jnp.asarray(velocities, dtype=jnp.float32)
        x = self.positions(v)
        return Batch(v, x, jnp.ones_like(x), {"final_position": x[:, -1]})

    def trials(self, velocities) -> Batch:
        """Deterministic trials from velocities ``(B, n_steps, n_dims)``. With ``"reflect"`` the
        path must stay inside the box (a reflecting trial's inputs are its applied velocities)."""
        v = np.asarray(velocities, dtype=float)
        if v.ndim != 3 or v.shape[1:] != (self.n_steps, self.n_dims):
            raise ValueError(
                f"velocities must have shape (B, {self.n_steps}, {self.n_dims}), got {v.shape}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError("velocities must be finite")
        if self.boundary == "reflect":
            x = np.cumsum(v * self.dt, axis=1)
            if np.abs(x).max() > self.box_size / 2 * (1 + 1e-6):
                raise ValueError(
                    f"the path leaves the box [-{self.box_size / 2}, {self.box_size / 2}] "
                    "(boundary='reflect' needs velocities that stay inside it)"
                )
        return self._build(v)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        k0, k = jr.split(key)
        shape = (batch_size, self.n_dims)
        rho = math.exp(-self.dt / self.velocity_timescale)
        kick = math.sqrt(1.0 - rho**2) * self.speed
        xi = jr.normal(k, (self.n_steps, *shape))
        v0 = self.speed * jr.normal(k0, shape)
        half = self.box_size / 2
        vmax = self.box_size / (2 * self.dt)
        reflect = self.boundary == "reflect"

        def body(carry, scanned):
            x, v_prev = carry
            xi_t, first = scanned
            v = jnp.where(first, v0, rho * v_prev + kick * xi_t)
            if reflect:
                v = jnp.clip(v, -vmax, vmax)
                v = jnp.where(jnp.abs(x + v * self.dt) > half, -v, v)
            return (x + v * self.dt, v), v

        init = (jnp.zeros(shape), jnp.zeros(shape))
        _, vs = jax.lax.scan(body, init, (xi, jnp.arange(self.n_steps) == 0))
        return self._build(jnp.moveaxis(vs, 0, 1))

    def evaluate(self, outputs, batch: Batch) -> dict:
        """Masked MSE and ``final_error``: mean Euclidean distance between output and target
        position at the last step (the shortest periodic distance with ``"wrap"``)."""
        diff = outputs[:, -1] - batch.targets[:, -1]
        if self.boundary == "wrap":
            diff = jnp.mod(diff + self.box_size / 2, self.box_size) - self.box_size / 2
        return {
            "loss": masked_mse(outputs, batch.targets, batch.mask),
            "final_error": jnp.mean(jnp.linalg.norm(diff, axis=-1)),
        }
