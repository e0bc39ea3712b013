"""The 15 tasks of Driscoll, Shenoy & Sussillo 2024 in their (sin, cos) convention (T3).

These are the multitask conventions used by the NM-RNN paper (Costacurta et al. 2024, paper 001,
supplement C.2 and C.4). Sources, read for facts only:

* Driscoll's own task code (``lauradriscoll/flexible_multitask``, ``stepnet/task.py``): the 15
  rules, their period lengths (ms), stimulus statistics, response rules and cost mask.
* The NM-RNN reference code (``lindermanlab/nm-rnn``, ``nmrnn/data_generation.py`` and
  ``nmrnn/util.py``): the fixed-length trials (period lengths drawn, then the whole trial scaled to
  ``T = 100`` steps), the channel layout with the task one-hot appended, and the percent-correct
  metric.

Channels (batch-major ``(B, T, P)``)
-----------------------------------
Inputs, ``n_in = 1 + 2 * n_modalities + len(rules)``:

* ``0``: fixation (1 while the fixation point is shown, 0 after it goes off);
* ``1 + 2m, 2 + 2m``: ``strength * (sin theta, cos theta)`` of the stimulus in modality ``m``
  (``m = 0, 1``; Driscoll's code puts sin first);
* ``1 + 2 * n_modalities + r``: one-hot of the task rule ``r`` (its index in ``rules``).

``task.sensory_channels`` (fixation and stimuli) and ``task.context_channels`` (the rule one-hot)
name the two ranges, so the multitask NM-RNN, whose rule inputs reach z only, is built with
``x_inputs=task.sensory_channels`` and either ``z_inputs=None`` (every input, as the NM-RNN
authors' ``context_nm_rnn`` does; R4) or ``z_inputs=task.context_channels`` (the rules alone).

Outputs, ``n_out = 3``: fixation (0.8 while the network must fixate, 0 after the go cue) and
``(sin, cos)`` of the response angle from the go cue on (0 before it, and 0 throughout a no-go
trial, in which fixation stays 0.8 to the end).

The tasks (Driscoll's names; Yang's names in :data:`DRISCOLL_TO_YANG`)
---------------------------------------------------------------------
The names are those of Driscoll et al. 2024 (her analysis code spells the context tasks
``CtxtIntModality1/2``); ``DriscollTask`` also accepts Yang's names.

=========================  ===================================================================
DelayPro / DelayAnti       stimulus from the end of fixation to the end of the trial; respond
                           at (or opposite to) it when the fixation input goes off.
MemoryPro / MemoryAnti     stimulus, then a memory delay without it, then go.
ReactPro / ReactAnti       fixation input stays on; the stimulus onset is the go cue.
IntegrationModality1/2     two stimuli of different strengths in one modality, separated by a
                           delay; respond to the stronger one.
ContextIntModality1/2      both stimuli in both modalities with independent strengths; respond
                           to the stronger one in the attended modality.
IntegrationMultimodal      as above; respond to the stronger summed strength.
ReactMatch2Sample          sample, delay, test (which is also the go cue); respond to the test
                           if it matches the sample, else keep fixating.
ReactNonMatch2Sample       respond if it does not match, else keep fixating.
ReactCategoryPro / Anti    match means "same half-plane" (``theta < pi``); Pro responds on a
                           category match, Anti on a mismatch.
=========================  ===================================================================

Timing
------
Period lengths are drawn uniformly from Driscoll's ranges in ms (:data:`PERIODS`; overridable with
``durations={"delay": (lo, hi), ...}``) and turned into steps in one of two ways:

* ``timing="scaled"`` (default; the NM-RNN reference code): the drawn periods are stretched so that
  every trial fills exactly ``n_steps`` steps (100 in the paper). A period boundary at time ``c``
  (ms) of a trial of total length ``C`` falls on the first step ``t >= c / C * n_steps``.
* ``timing="absolute"`` (Driscoll's own code): each period lasts ``int(ms / dt)`` steps (dt 20 ms
  by default). Trials of one batch must share a length, so the first fixation period absorbs the
  slack and every trial ends at step ``n_steps - 1`` with its response period intact. ``n_steps``
  defaults to the longest possible trial.

Where this module deviates from the sources (on purpose)
--------------------------------------------------------
* Driscoll draws the timing and the stimulus modality once per *batch*; here they are drawn per
  trial (a batch mixes them, which is what fixed-length batches and mixed-task batches need).
* Driscoll draws coherences from a list of 100 values made with an unseeded NumPy generator; here
  they are drawn directly from the same range U(0.005, 0.8), with the explicit key.
* The NM-RNN reference code decodes the response angle as ``arctan(sin / cos)``, which folds
  angles that differ by pi onto each other (an anti-response error scores as correct). The metric
  here decodes with ``atan2(sin, cos)``.
* The metric's fixation condition ("fixation output > 0.5 until the fixation input goes off") is
  applied to the steps where the *target* fixation is on: identical for the Delay, Memory and
  Integration tasks, and for the React tasks (whose fixation input never goes off) it means "until
  the go cue", as intended. On no-go trials (match tasks) the network must fixate to the end,
  Driscoll's rule for trials whose answer is to fixate.
* The match threshold for ReactMatch2Sample / ReactNonMatch2Sample is pi/36 (5 degrees, Driscoll's
  psychometric definition); random non-matches are at least pi/9 away, so sampling is unaffected.
* The loss mask is all ones by default (the NM-RNN reference); ``mask="driscoll"`` gives
  Driscoll's cost mask (0 for the first 100 ms, 1 until the go cue, 0 for 100 ms, then 5; fixation
  output weighted 2x).

The NM-RNN paper's multitask experiment uses a single stimulus modality and the rules DelayPro,
DelayAnti, MemoryPro, MemoryAnti (:data:`NMRNN_RULES`): ``DriscollTask(..., rules=NMRNN_RULES,
n_modalities=1)`` gives its 3 + 4 = 7 input channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from .base import AbstractTask, Batch, masked_mse

#: The 15 tasks, in Driscoll's rule order (``rules_dict["all"]`` of her code): the default order
#: of the rule one-hot channels.
DRISCOLL_TASKS: tuple[str, ...] = (
    "DelayPro",
    "ReactPro",
    "MemoryPro",
    "DelayAnti",
    "ReactAnti",
    "MemoryAnti",
    "IntegrationModality1",
    "IntegrationModality2",
    "ContextIntModality1",
    "ContextIntModality2",
    "IntegrationMultimodal",
    "ReactMatch2Sample",
    "ReactNonMatch2Sample",
    "ReactCategoryPro",
    "ReactCategoryAnti",
)

#: Driscoll's task names -> the names of the same tasks in Yang et al. 2019's code (which Driscoll's
#: code also uses internally). The Integration tasks are Yang's *delayed* decision tasks.
DRISCOLL_TO_YANG: dict[str, str] = {
    "DelayPro": "fdgo",
    "ReactPro": "reactgo",
    "MemoryPro": "delaygo",
    "DelayAnti": "fdanti",
    "ReactAnti": "reactanti",
    "MemoryAnti": "delayanti",
    "IntegrationModality1": "delaydm1",
    "IntegrationModality2": "delaydm2",
    "ContextIntModality1": "contextdelaydm1",
    "ContextIntModality2": "contextdelaydm2",
    "IntegrationMultimodal": "multidelaydm",
    "ReactMatch2Sample": "dmsgo",
    "ReactNonMatch2Sample": "dmsnogo",
    "ReactCategoryPro": "dmcgo",
    "ReactCategoryAnti": "dmcnogo",
}
YANG_TO_DRISCOLL: dict[str, str] = {v: k for k, v in DRISCOLL_TO_YANG.items()}

#: The rules of the NM-RNN paper's multitask experiment (one-hot channel order of its code).
NMRNN_RULES: tuple[str, ...] = ("DelayPro", "DelayAnti", "MemoryPro", "MemoryAnti")

#: Period names and Driscoll's duration ranges (ms, uniform) of each task family, in trial order.
PERIODS: dict[str, tuple[tuple[str, tuple[float, float]], ...]] = {
    "delay": (("fixation", (300.0, 700.0)), ("stimulus", (200.0, 1500.0)),
              ("response", (300.0, 700.0))),
    "memory": (("fixation", (300.0, 700.0)), ("stimulus", (200.0, 1600.0)),
               ("delay", (200.0, 1600.0)), ("response", (300.0, 700.0))),
    "react": (("fixation", (500.0, 2500.0)), ("response", (300.0, 1700.0))),
    "integration": (("fixation", (200.0, 600.0)), ("stimulus1", (200.0, 1600.0)),
                    ("delay1", (200.0, 1600.0)), ("stimulus2", (200.0, 1600.0)),
                    ("delay2", (100.0, 300.0)), ("response", (300.0, 700.0))),
    "match": (("fixation", (200.0, 600.0)), ("stimulus1", (200.0, 1600.0)),
              ("delay1", (200.0, 1600.0)), ("response", (300.0, 700.0))),
}

# name -> (family, variant)
_SPEC: dict[str, tuple[str, str]] = {
    "DelayPro": ("delay", "pro"),
    "DelayAnti": ("delay", "anti"),
    "MemoryPro": ("memory", "pro"),
    "MemoryAnti": ("memory", "anti"),
    "ReactPro": ("react", "pro"),
    "ReactAnti": ("react", "anti"),
    "IntegrationModality1": ("integration", "mod1"),
    "IntegrationModality2": ("integration", "mod2"),
    "ContextIntModality1": ("integration", "context1"),
    "ContextIntModality2": ("integration", "context2"),
    "IntegrationMultimodal": ("integration", "multi"),
    "ReactMatch2Sample": ("match", "dms_go"),
    "ReactNonMatch2Sample": ("match", "dms_nogo"),
    "ReactCategoryPro": ("match", "dmc_go"),
    "ReactCategoryAnti": ("match", "dmc_nogo"),
}
# Tasks that need the second stimulus modality.
_TWO_MODALITY = ("IntegrationModality2", "ContextIntModality1", "ContextIntModality2",
                 "IntegrationMultimodal")
# Attended-modality weights of the integration tasks (the response goes to the stimulus whose
# strengths, weighted by these, are larger).
_ATTEND = {"mod1": (1.0, 0.0), "mod2": (0.0, 1.0), "context1": (1.0, 0.0),
           "context2": (0.0, 1.0), "multi": (1.0, 1.0)}

FIXATION_TARGET = 0.8
#: Angular tolerance of the percent-correct metric (paper 001, C.4).
ANGLE_TOLERANCE = np.pi / 10
#: Circular distance below which two stimuli "match" (ReactMatch2Sample / ReactNonMatch2Sample).
MATCH_TOLERANCE = np.pi / 36
#: Driscoll's grace period (ms) at the start and after the go cue in her cost mask.
GRACE_MS = 100.0

TIMINGS = ("scaled", "absolute")
MASKS = ("ones", "driscoll")
N_EVENTS = 2  # stimulus events per trial (first and second stimulus)
_N_EXTRA = 12  # uniform numbers per trial besides the period durations


def resolve_task_name(name: str) -> str:
    """Driscoll's name of task ``name`` (a Driscoll name or Yang's name of one of the 15)."""
    if name in _SPEC:
        return name
    if name in YANG_TO_DRISCOLL:
        return YANG_TO_DRISCOLL[name]
    raise ValueError(
        f"unknown Driscoll task {name!r}; valid names: {', '.join(DRISCOLL_TASKS)} "
        f"(or Yang's: {', '.join(YANG_TO_DRISCOLL)})"
    )


def decode_angle(sin_out: Array, cos_out: Array) -> Array:
    """Angle in ``[0, 2 pi)`` read out of ``(sin, cos)`` outputs, with the correct quadrant."""
    return jnp.mod(jnp.arctan2(sin_out, cos_out), 2 * jnp.pi)


def circular_distance(a: Array, b: Array) -> Array:
    """Distance between angles on the circle, in ``[0, pi]``."""
    d = jnp.mod(a - b, 2 * jnp.pi)
    return jnp.minimum(d, 2 * jnp.pi - d)


class TrialConditions(NamedTuple):
    """Everything that defines a batch of trials once the timing is in steps. Shapes lead with B.

    ``stim_on``/``stim_off`` ``(B, 2)``: steps of the two stimulus events (on at ``t`` with
    ``on <= t < off``; an unused event has zero strength). ``theta (B, 2)``: their angles (rad).
    ``strength (B, 2, n_modalities)``: each event's strength in each modality. ``fix_off (B,)``:
    first step without the fixation input (``n_steps`` if it never goes off). ``go (B,)``: first
    step of the response period. ``respond (B,)``: whether the answer is a response (else keep
    fixating). ``target_angle (B,)``: response angle. ``rule (B,)``: index of the rule channel.
    ``grace (B,)``: Driscoll's 100 ms grace period in steps (for ``mask="driscoll"``).
    """

    stim_on: Array
    stim_off: Array
    theta: Array
    strength: Array
    fix_off: Array
    go: Array
    respond: Array
    target_angle: Array
    rule: Array
    grace: Array


class DriscollTask(AbstractTask):
    """One of Driscoll et al.'s 15 tasks; see the module docstring for the conventions.

    Args:
        task: Driscoll's name (or Yang's name) of the task.
        n_steps: trial length in steps. Default: 100 with ``timing="scaled"``; the longest possible
            trial with ``timing="absolute"``.
        timing: ``"scaled"`` (trials stretched to ``n_steps``) or ``"absolute"`` (``dt`` ms steps).
        dt: step in ms (absolute timing, and the grace period of the Driscoll mask).
        rules: the task names that get a one-hot channel, in channel order; must contain ``task``.
        n_modalities: 2 (Driscoll) or 1 (the NM-RNN paper; only for single-modality tasks).
        durations: overrides of period ranges in ms, ``{period: (lo, hi)}``; periods of the task
            family are listed in :data:`PERIODS`.
        mask: ``"ones"`` or ``"driscoll"`` (see the module docstring).
        input_noise: standard deviation of Gaussian noise added to every input channel (Driscoll:
            ``0.01 * sqrt(2 / 0.2) ~ 0.032``; the NM-RNN reference: 0). Needs no extra key: it is
            drawn from the ``sample`` key.
        require_release: also require fixation output < 0.5 at the last step of response trials
            (Driscoll's and Yang's rule; paper 001's metric does not).
    """

    task: str = eqx.field(static=True)
    family: str = eqx.field(static=True)
    variant: str = eqx.field(static=True)
    rules: tuple[str, ...] = eqx.field(static=True)
    n_modalities: int = eqx.field(static=True)
    timing: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    periods: tuple[tuple[str, float, float], ...] = eqx.field(static=True)
    mask_mode: str = eqx.field(static=True)
    input_noise: float = eqx.field(static=True)
    require_release: bool = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        task: str = "DelayPro",
        *,
        n_steps: int | None = None,
        timing: str = "scaled",
        dt: float = 20.0,
        rules: Sequence[str] = DRISCOLL_TASKS,
        n_modalities: int = 2,
        durations: Mapping[str, tuple[float, float]] | None = None,
        mask: str = "ones",
        input_noise: float = 0.0,
        require_release: bool = False,
    ):
        self.task = resolve_task_name(task)
        self.family, self.variant = _SPEC[self.task]
        self.rules = _check_rules(rules, self.task)
        if n_modalities not in (1, 2):
            raise ValueError(f"n_modalities must be 1 or 2, got {n_modalities!r}")
        if n_modalities == 1 and self.task in _TWO_MODALITY:
            raise ValueError(
                f"task {self.task} needs two stimulus modalities; n_modalities=1 only suits "
                f"{', '.join(t for t in DRISCOLL_TASKS if t not in _TWO_MODALITY)}"
            )
        self.n_modalities = int(n_modalities)
        self.timing = check_choice("timing", timing, TIMINGS)
        self.dt = check_positive("dt", dt)
        self.mask_mode = check_choice("mask", mask, MASKS)
        self.input_noise = check_nonnegative("input_noise", input_noise)
        self.require_release = bool(require_release)
        self.periods = _check_periods(self.family, durations, self.timing, self.dt)
        self.n_steps = _check_n_steps(self.task, self.periods, n_steps, self.timing, self.dt)
        self.n_in = 1 + 2 * self.n_modalities + len(self.rules)
        self.n_out = 3

    # ------------------------------------------------------------------------------------------
    # channel layout

    @property
    def name(self) -> str:
        return self.task

    @property
    def sensory_channels(self) -> tuple[int, ...]:
        """Fixation and stimulus input channels (what the NM-RNN's x network sees)."""
        return tuple(range(1 + 2 * self.n_modalities))

    @property
    def context_channels(self) -> tuple[int, ...]:
        """Rule one-hot input channels (what the NM-RNN's z network sees)."""
        return tuple(range(1 + 2 * self.n_modalities, self.n_in))

    @property
    def period_names(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.periods)

    # ------------------------------------------------------------------------------------------
    # generation: draw (random) -> conditions (deterministic) -> render (deterministic)

    def draw(self, key: PRNGKeyArray, batch_size: int) -> tuple[Array, Array, Array]:
        """Random trial variables: ``durations (B, n_periods)`` in ms, ``theta (B, 2)`` in rad,
        ``strength (B, 2, n_modalities)``. A pure function of ``key``.

        All variables are derived from one ``(B, n_periods + 12)`` block of uniform numbers (one
        call of the generator compiles several times faster than a dozen separate calls)."""
        check_positive_int("batch_size", batch_size)
        B, M, P = batch_size, self.n_modalities, len(self.periods)
        u = jr.uniform(key, (B, P + _N_EXTRA))
        cols = iter(range(P, P + _N_EXTRA))

        def uniform(lo, hi):
            return lo + (hi - lo) * u[:, next(cols)]

        def sign():
            return jnp.where(u[:, next(cols)] < 0.5, 1.0, -1.0)

        def pair():  # two strengths: mean U(0.8, 1.2) +/- coherence U(0.005, 0.8)
            mean, coh = uniform(0.8, 1.2), uniform(0.005, 0.8) * sign()
            return mean + coh, mean - coh

        lo = jnp.asarray([p[1] for p in self.periods], dtype=jnp.float32)
        hi = jnp.asarray([p[2] for p in self.periods], dtype=jnp.float32)
        durations = lo + (hi - lo) * u[:, :P]
        theta1 = uniform(0.0, 2 * jnp.pi)
        mods = jnp.stack([jnp.minimum(jnp.floor(uniform(0.0, M)), M - 1) for _ in range(2)], 1)
        one_hot_mod = jax.nn.one_hot(mods.astype(jnp.int32), M)  # (B, 2, M)

        if self.family in ("delay", "memory", "react"):
            theta = jnp.stack([theta1, jnp.zeros_like(theta1)], axis=1)
            strength = one_hot_mod * jnp.asarray([1.0, 0.0])[None, :, None]
        elif self.family == "integration":
            dist = uniform(0.5 * jnp.pi, 1.5 * jnp.pi) * sign()
            theta = jnp.stack([theta1, jnp.mod(theta1 + dist, 2 * jnp.pi)], axis=1)
            if self.variant in ("mod1", "mod2"):
                s1, s2 = pair()
                m = 0 if self.variant == "mod1" else 1
                strength = jnp.zeros((B, N_EVENTS, M)).at[:, 0, m].set(s1).at[:, 1, m].set(s2)
            elif self.variant in ("context1", "context2"):
                a1, a2 = pair()
                b1, b2 = pair()
                strength = jnp.stack([jnp.stack([a1, b1], -1), jnp.stack([a2, b2], -1)], axis=1)
            else:  # multi: modality split of each stimulus around its mean strength
                s1, s2 = pair()
                diff1 = s1 * uniform(0.005, 0.8) * sign()
                diff2 = s2 * uniform(0.005, 0.8) * sign()
                strength = jnp.stack(
                    [jnp.stack([s1 + diff1 / 2, s1 - diff1 / 2], -1),
                     jnp.stack([s2 + diff2 / 2, s2 - diff2 / 2], -1)],
                    axis=1,
                )
        else:  # match
            if self.variant.startswith("dms"):
                match = u[:, next(cols)] < 0.5
                dist = uniform(jnp.pi / 9, 17 * jnp.pi / 9) * sign()
                theta2 = jnp.mod(theta1 + jnp.where(match, 0.0, dist), 2 * jnp.pi)
            else:
                theta2 = uniform(0.0, 2 * jnp.pi)
            theta = jnp.stack([theta1, theta2], axis=1)
            strength = one_hot_mod
        return durations, theta, strength

    def conditions(self, durations, theta, strength) -> TrialConditions:
        """Deterministic trial conditions from the trial variables (see :meth:`draw`)."""
        durations = jnp.asarray(durations, dtype=jnp.float32)
        theta = jnp.asarray(theta, dtype=jnp.float32)
        strength = jnp.asarray(strength, dtype=jnp.float32)
        B = durations.shape[0]
        T = self.n_steps
        edges, grace = self._edges(durations)
        e = [edges[:, k] for k in range(edges.shape[1])]
        end = jnp.full((B,), T, dtype=jnp.int32)
        fam = self.family
        if fam == "delay":
            on, off, fix_off, go = (e[1], end), (end, end), e[2], e[2]
        elif fam == "memory":
            on, off, fix_off, go = (e[1], end), (e[2], end), e[3], e[3]
        elif fam == "react":
            on, off, fix_off, go = (e[1], end), (end, end), end, e[1]
        elif fam == "integration":
            on, off, fix_off, go = (e[1], e[3]), (e[2], e[4]), e[5], e[5]
        else:  # match: the test stimulus stays on from the go cue to the end
            on, off, fix_off, go = (e[1], e[3]), (e[2], end), end, e[3]

        var = self.variant
        if fam in ("delay", "memory", "react"):
            target = theta[:, 0] + (jnp.pi if var == "anti" else 0.0)
            respond = jnp.ones((B,), dtype=bool)
        elif fam == "integration":
            w = jnp.asarray(_ATTEND[var][: self.n_modalities])
            evidence = strength @ w  # (B, 2)
            target = jnp.where(evidence[:, 0] > evidence[:, 1], theta[:, 0], theta[:, 1])
            respond = jnp.ones((B,), dtype=bool)
        else:
            if var.startswith("dms"):
                match = circular_distance(theta[:, 0], theta[:, 1]) < MATCH_TOLERANCE
            else:
                cat = jnp.mod(theta, 2 * jnp.pi) < jnp.pi
                match = cat[:, 0] == cat[:, 1]
            respond = match if var.endswith("_go") else ~match
            target = theta[:, 1]
        rule = jnp.full((B,), self.rules.index(self.task), dtype=jnp.int32)
        return TrialConditions(
            stim_on=jnp.stack(on, axis=1).astype(jnp.int32),
            stim_off=jnp.stack(off, axis=1).astype(jnp.int32),
            theta=theta,
            strength=strength,
            fix_off=fix_off.astype(jnp.int32),
            go=go.astype(jnp.int32),
            respond=respond,
            target_angle=jnp.mod(target, 2 * jnp.pi),
            rule=rule,
            grace=grace,
        )

    def _edges(self, durations: Array) -> tuple[Array, Array]:
        """Period boundaries in steps ``(B, n_periods + 1)`` (first 0, last ``n_steps``) and the
        grace period in steps ``(B,)``."""
        T = self.n_steps
        B = durations.shape[0]
        if self.timing == "scaled":
            c = jnp.concatenate([jnp.zeros((B, 1)), jnp.cumsum(durations, axis=1)], axis=1)
            total = c[:, -1:]
            # first step t >= c / C * T; the 1e-3 absorbs float rounding of exact boundaries
            edges = jnp.ceil(c / total * T - 1e-3).astype(jnp.int32)
            edges = edges.at[:, -1].set(T)
            grace = jnp.floor(GRACE_MS / total[:, 0] * T).astype(jnp.int32)
        else:
            steps = jnp.floor(durations / self.dt + 1e-6).astype(jnp.int32)
            slack = T - jnp.sum(steps, axis=1)
            steps = steps.at[:, 0].add(slack)
            edges = jnp.concatenate(
                [jnp.zeros((B, 1), jnp.int32), jnp.cumsum(steps, axis=1)], axis=1
            )
            grace = jnp.full((B,), int(GRACE_MS / self.dt + 1e-6), dtype=jnp.int32)
        return edges, grace

    def render(self, cond: TrialConditions, key: PRNGKeyArray | None = None) -> Batch:
        """Inputs, targets and mask of trials given their conditions. ``key`` draws the input
        noise (ignored when ``input_noise == 0``)."""
        return _render_jit(
            cond, self.n_steps, self.n_modalities, len(self.rules), self.mask_mode,
            self.input_noise, key,
        )

    def render_settings(self) -> tuple:
        """What :meth:`render` depends on besides the conditions (tasks with equal settings can
        share one rendering of a mixed batch)."""
        return (self.n_steps, self.n_modalities, self.rules, self.mask_mode, self.input_noise)

    def sample_conditions(self, key: PRNGKeyArray, batch_size: int) -> TrialConditions:
        return self.conditions(*self.draw(key, batch_size))

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        return _sample_jit(self, key, batch_size)

    def trials(self, durations, theta, strength=None, key=None) -> Batch:
        """Deterministic trials.

        Args:
            durations: ``(B, n_periods)`` period lengths in ms, in the order of
                ``task.period_names`` (with ``timing="absolute", dt=1`` these are steps).
            theta: ``(B,)`` or ``(B, 2)`` stimulus angles in rad (the second for the two-stimulus
                tasks).
            strength: ``(B, 2, n_modalities)`` strengths of each stimulus in each modality.
                Default: strength 1 in modality 1 for each stimulus the task shows.
            key: input-noise key (only used when ``input_noise > 0``).
        """
        durations = np.asarray(durations, dtype=np.float64)
        if durations.ndim != 2 or durations.shape[1] != len(self.periods):
            raise ValueError(
                f"durations must have shape (B, {len(self.periods)}) for periods "
                f"{self.period_names}, got {durations.shape}"
            )
        if np.any(durations < 0):
            raise ValueError(f"durations must be non-negative (ms), got {durations.tolist()}")
        if self.timing == "absolute":
            steps = np.floor(durations / self.dt + 1e-6).sum(axis=1)
            if np.any(steps > self.n_steps):
                raise ValueError(
                    f"trial(s) of {steps.max():.0f} steps are longer than n_steps={self.n_steps}"
                )
        elif np.any(durations.sum(axis=1) <= 0):
            raise ValueError("every trial needs a positive total duration")
        B = durations.shape[0]
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim == 1:
            theta = np.stack([theta, np.zeros_like(theta)], axis=1)
        if theta.shape != (B, N_EVENTS):
            raise ValueError(f"theta must have shape ({B},) or ({B}, 2), got {theta.shape}")
        if strength is None:
            n_shown = 1 if self.family in ("delay", "memory", "react") else 2
            strength = np.zeros((B, N_EVENTS, self.n_modalities))
            strength[:, :n_shown, 0] = 1.0
        strength = np.asarray(strength, dtype=np.float64)
        if strength.shape != (B, N_EVENTS, self.n_modalities):
            raise ValueError(
                f"strength must have shape ({B}, 2, {self.n_modalities}), got {strength.shape}"
            )
        return _trials_jit(self, durations, theta, strength, key)

    # ------------------------------------------------------------------------------------------
    # metric

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, float]:
        """``loss`` (masked MSE) and ``percent_correct`` (paper 001's metric, in %)."""
        correct = trial_correct(outputs, batch, require_release=self.require_release)
        return {
            "loss": float(masked_mse(outputs, batch.targets, batch.mask)),
            "percent_correct": 100.0 * float(np.mean(correct)),
        }


def trial_correct(outputs, batch: Batch, *, require_release: bool = False) -> np.ndarray:
    """Per-trial correctness ``(B,)`` of ``outputs (B, T, 3)`` on a Driscoll-convention batch.

    Correct iff the fixation output is > 0.5 at every step where the target asks for fixation
    (until the go cue; to the end on no-go trials) and, on response trials, the angle decoded
    with ``atan2`` at the last step lies within pi/10 of the target angle (and, if
    ``require_release``, the fixation output at the last step is < 0.5).
    """
    out = np.asarray(outputs, dtype=np.float64)
    targets = np.asarray(batch.targets)
    if out.shape != targets.shape:
        raise ValueError(f"outputs have shape {out.shape}, the batch's targets {targets.shape}")
    must_fix = targets[..., 0] > FIXATION_TARGET / 2
    fix_ok = np.all(np.where(must_fix, out[..., 0] > 0.5, True), axis=1)
    angle = np.mod(np.arctan2(out[:, -1, 1], out[:, -1, 2]), 2 * np.pi)
    err = np.mod(angle - np.asarray(batch.info["target_angle"]), 2 * np.pi)
    err = np.minimum(err, 2 * np.pi - err)
    angle_ok = err < ANGLE_TOLERANCE
    if require_release:
        angle_ok &= out[:, -1, 0] < 0.5
    respond = np.asarray(batch.info["respond"], dtype=bool)
    return fix_ok & np.where(respond, angle_ok, True)


def _render(cond: TrialConditions, T, n_mod, n_rules, mask_mode, input_noise, key) -> Batch:
    B = cond.go.shape[0]
    t = jnp.arange(T)[None, :]
    fix_in = (t < cond.fix_off[:, None]).astype(jnp.float32)
    sensory = jnp.zeros((B, T, 2 * n_mod))
    for ev in range(N_EVENTS):
        on = ((t >= cond.stim_on[:, ev, None]) & (t < cond.stim_off[:, ev, None])).astype(
            jnp.float32
        )
        sc = jnp.stack([jnp.sin(cond.theta[:, ev]), jnp.cos(cond.theta[:, ev])], axis=-1)
        vec = (cond.strength[:, ev, :, None] * sc[:, None, :]).reshape(B, 2 * n_mod)
        sensory = sensory + on[:, :, None] * vec[:, None, :]
    rules = jnp.broadcast_to(jax.nn.one_hot(cond.rule, n_rules)[:, None, :], (B, T, n_rules))
    inputs = jnp.concatenate([fix_in[..., None], sensory, rules], axis=-1)
    if input_noise > 0 and key is not None:
        inputs = inputs + input_noise * jr.normal(key, inputs.shape)

    respond = cond.respond[:, None]
    after_go = t >= cond.go[:, None]
    fix_target = FIXATION_TARGET * jnp.where(respond, ~after_go, True).astype(jnp.float32)
    ang = jnp.stack([jnp.sin(cond.target_angle), jnp.cos(cond.target_angle)], axis=-1)
    resp_on = (respond & after_go).astype(jnp.float32)
    targets = jnp.concatenate([fix_target[..., None], resp_on[..., None] * ang[:, None, :]], -1)

    if mask_mode == "ones":
        mask = jnp.ones_like(targets)
    else:
        g = cond.grace[:, None]
        go = cond.go[:, None]
        w = jnp.where(t < g, 0.0, 1.0)
        w = jnp.where(t >= go, 0.0, w)
        w = jnp.where(t >= go + g, 5.0, w)
        mask = w[..., None] * jnp.asarray([2.0, 1.0, 1.0])
    info = {
        "rule": cond.rule,
        "theta": cond.theta,
        "strength": cond.strength,
        "stim_on": cond.stim_on,
        "stim_off": cond.stim_off,
        "fix_off": cond.fix_off,
        "go": cond.go,
        "respond": cond.respond,
        "target_angle": cond.target_angle,
    }
    return Batch(inputs, targets, mask, info)


# Compiled once per task configuration and batch size, so that eager calls are fast too (inside an
# outer jit these simply inline).
@eqx.filter_jit
def _sample_jit(task: DriscollTask, key, batch_size: int) -> Batch:
    k_draw, k_noise = jr.split(key)
    return task.render(task.sample_conditions(k_draw, batch_size), k_noise)


@eqx.filter_jit
def _trials_jit(task: DriscollTask, durations, theta, strength, key) -> Batch:
    return task.render(task.conditions(durations, theta, strength), key)


_render_jit = eqx.filter_jit(lambda *args: _render(*args))


def _check_rules(rules, task: str) -> tuple[str, ...]:
    if isinstance(rules, str):
        raise ValueError(f"rules must be a sequence of task names, got the string {rules!r}")
    out = tuple(resolve_task_name(r) for r in rules)
    if len(set(out)) != len(out):
        raise ValueError(f"rules repeats a task: {list(out)}")
    if task not in out:
        raise ValueError(f"task {task} has no rule channel: it is not in rules={list(out)}")
    return out


def _check_periods(family, durations, timing, dt) -> tuple[tuple[str, float, float], ...]:
    defaults = dict(PERIODS[family])
    names = list(defaults)
    durations = dict(durations or {})
    unknown = sorted(set(durations) - set(names))
    if unknown:
        raise ValueError(
            f"unknown period(s) {', '.join(unknown)} for {family} tasks; valid periods: "
            f"{', '.join(names)}"
        )
    out = []
    for name in names:
        rng = durations.get(name, defaults[name])
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ValueError(
                f"duration of period {name!r} must be a (lo, hi) pair in ms, got {rng!r}"
            ) from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi < 0:
            raise ValueError(
                f"duration of period {name!r} must be non-negative (ms), got ({lo}, {hi})"
            )
        if hi < lo:
            raise ValueError(f"duration of period {name!r}: hi={hi} is below lo={lo}")
        out.append((name, lo, hi))
    _, lo_r, _ = out[-1]
    if lo_r <= 0 or (timing == "absolute" and int(lo_r / dt + 1e-6) < 1):
        raise ValueError(
            f"the response period must last at least one step (lo={lo_r} ms"
            + (f" at dt={dt} ms)" if timing == "absolute" else ")")
        )
    return tuple(out)


def _check_n_steps(task, periods, n_steps, timing, dt) -> int:
    if timing == "absolute":
        longest = sum(int(hi / dt + 1e-6) for _, _, hi in periods)
        if n_steps is None:
            return longest
        n_steps = check_positive_int("n_steps", n_steps)
        if longest > n_steps:
            raise ValueError(
                f"{task} trials can last up to {longest} steps "
                f"({sum(p[2] for p in periods):g} ms at dt={dt:g} ms), longer than "
                f"n_steps={n_steps}; raise n_steps or shorten the periods"
            )
        return n_steps
    n_steps = check_positive_int("n_steps", 100 if n_steps is None else n_steps)
    total_max = sum(hi for _, _, hi in periods)
    for name, lo, hi in periods:
        if lo == 0:
            continue  # a period allowed to vanish (the response period was checked above)
        shortest = lo / (total_max - hi + lo) * n_steps
        if shortest < 1:
            raise ValueError(
                f"n_steps={n_steps} is too short for {task}: period {name!r} can shrink to "
                f"{shortest:.2f} steps once the trial is scaled to n_steps; raise n_steps to at "
                f"least {int(np.ceil((total_max - hi + lo) / lo))} or lengthen the period"
            )
    return n_steps


__all__ = [
    "ANGLE_TOLERANCE",
    "DRISCOLL_TASKS",
    "DRISCOLL_TO_YANG",
    "DriscollTask",
    "NMRNN_RULES",
    "PERIODS",
    "TrialConditions",
    "YANG_TO_DRISCOLL",
    "circular_distance",
    "decode_angle",
    "resolve_task_name",
    "trial_correct",
]
