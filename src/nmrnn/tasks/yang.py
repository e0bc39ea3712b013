"""The 20 cognitive tasks of Yang et al. 2019 (T4), following the authors' own code.

The facts below come from the reference implementation of the paper (``task.py``, ``train.py``,
``network.py`` of gyyang/multitask); where this module had to choose, the choice is marked
**Choice**.

Tasks and naming
----------------
``make_task("yang", rule="fdgo", mode="random", ...)`` builds one task; the 20 rule names are in
:data:`RULES`, in the order of the reference rule set ``"all"`` (which also fixes the rule-input
channel of each rule). Driscoll et al. call some of them differently, e.g. DelayPro = ``fdgo``,
DelayAnti = ``fdanti``, MemoryPro = ``delaygo``, MemoryAnti = ``delayanti``, ReactPro = ``reactgo``,
IntegrationModality1 = ``delaydm1``.

Input and output layout (all 20 tasks share it, so batches of different rules can be mixed)
-------------------------------------------------------------------------------------------
* ``inputs (B, T, 85)``: channel 0 fixation (1 while the fixation point is on); channels 1..32 ring
  1 and 33..64 ring 2 (32 units each, preferred directions ``2 pi k / 32``); channels 65..84 the 20
  rule inputs. A stimulus at direction ``theta`` with strength ``s`` adds
  ``s * 0.8 * exp(-d^2 / 2)`` to its ring, ``d`` = circular distance to the preferred direction
  divided by ``pi / 8``; simultaneous stimuli on one ring add up.
* ``targets (B, T, 33)``: output 0 fixation, outputs 1..32 the response ring. Every target is 0.05
  by default; the fixation target is **0.8** while fixation is required and 0.05 afterwards (the
  reference code uses 0.8, not 1, because its readout is a sigmoid); during the response the ring
  target is ``0.05 + 0.8 * exp(-d^2 / 2)`` (peak 0.85) around the response direction. No-go trials
  (``dms*``/``dmc*`` with the "wrong" match) keep the fixation target at 0.8 and the ring at 0.05
  to the end of the trial.
* Rule input: 1 on the task's own rule channel for the whole trial. As in the reference, the rule
  input can be replaced (``replace_rule``: one rule or a list of rules) and scaled
  (``rule_strength``: one number, or one per replacing rule) -- the "rule mixing" of the paper's
  compositional analysis -- and limited in time (``rule_on``/``rule_off``, in ms; the reference
  takes step indices, **Choice**: ms like every other time here).
* Input noise: every input channel at every step of the trial gets Gaussian noise of standard
  deviation ``sigma_x * sqrt(2 / alpha)`` with ``alpha = dt / tau`` (reference: ``sigma_x = 0.01``,
  ``dt = 20`` ms, ``tau = 100`` ms, so 0.0316), in all modes. ``sigma_x=0`` gives noiseless inputs.

Cost mask (reference ``add_c_mask``, least-squares loss)
--------------------------------------------------------
Per trial, in steps: 0 for the first 100 ms; 1 from 100 ms until the go time (the end of the
pre-response period: fixation offset, or the second stimulus onset for the match tasks); 0 for a
100 ms grace period after go; 5 from there to the end of the trial; the fixation output's weight is
doubled. The reference loss is ``mean(((y - y_hat) * c_mask)^2)``: the mask multiplies the error
*before* squaring, so the effective weights of the squared errors are ``c_mask^2`` (1, 25; fixation
4, 100). This library's loss is ``sum(mask * err^2) / sum(mask)``, so **Choice** (default
``square_mask=True``): ``Batch.mask = c_mask^2``, which reproduces the reference's relative
weighting; ``square_mask=False`` gives ``c_mask`` itself. (The normalisation differs: the reference
divides by ``T * B * 33`` of its unpadded batch, this library by ``sum(mask)``; this rescales the
loss per batch, not the relative weights within a batch.)

Timing (reference ``random`` mode, in ms; one draw per batch)
--------------------------------------------------------------
``U[a, b)`` uniform, ``{...}`` uniform choice; the epoch durations follow each other:

===================  ===========================================================================
family (rules)       epochs and durations
===================  ===========================================================================
fd (fdgo, fdanti)    fix1 U[300,700), stim1 U[500,1500), go1 500; stimulus on from stim1 to end
react (react*)       fix1 U[500,2500), go1 500; stimulus appears at go, fixation input stays on
delay (delay*)       fix1 {300,500,700}, stim1 {200,400,600}, delay1 {200,400,800,1600}, go1 500
dm (dm1, dm2),       fix1 U[100,400), stim1 {400,800,1600}, go1 500; both stimuli during stim1
contextdm, multidm
delaydm (delaydm*),  fix1 {200,400,600}, stim1 {200,400,600}, delay1 {200,400,800,1600},
contextdelaydm*,     stim2 {200,400,600}, delay2 U[100,300), go1 500
multidelaydm
dms (dmsgo/nogo)     fix1 {200,400,600}, stim1 {200,400,600}, delay1 {200,400,800,1600}, go1 500;
                     the second stimulus is on from go to the end; fixation input always on
dmc (dmcgo/nogo)     as dms but go1 {200,400,600}
===================  ===========================================================================

A duration ``D`` ms lasts ``int(D / dt)`` steps, as in the reference. **Choice**: ``dt`` must divide
100 ms (the grid all the reference's times lie on: 1, 2, 4, 5, 10, 20, 25, 50 or 100 ms) and be at
most ``tau``; then every fixed time is a whole number of steps and ``int(U[a, b) / dt)`` is exactly
a uniform integer in ``[a / dt, b / dt)``, which is how it is drawn. Other ``dt`` are refused.

Stimuli (reference ``random`` mode)
-----------------------------------
* go/anti families: direction ``U[0, 2 pi)`` per trial; ring 1 or 2 (one draw per batch). Anti tasks
  respond at ``direction + pi``.
* dm families: stimulus 1 at ``U[0, 2 pi)``, stimulus 2 at ``stim1 + U[pi/2, 3pi/2) * (+-1)``;
  strengths ``mean +- coh`` with ``mean ~ U[0.8, 1.2)``, ``coh`` from {0.01, 0.02, 0.04, 0.08}
  (dm, contextdm, multidm) or {0.08, 0.16, 0.32} (the delayed versions), the sign at random;
  ``easy_task`` multiplies the coherences by 10 (resp. 2). ``dm1``/``dm2``/``delaydm*`` use one
  ring; the context tasks draw both rings' strengths independently and respond to the attended
  ring; ``multidm``/``multidelaydm`` split each stimulus' strength ``s`` between the rings as
  ``s +- diff/2`` with ``diff = s * U[0.2, 0.8) * (+-1)`` and respond to the larger sum over
  rings. The response goes to the stronger stimulus (to stimulus 2 on ties, as in the reference).
* dms: rings of stimulus 1 and 2 drawn independently (once per batch); match with probability
  1/2; a non-match sample is displaced by ``U[pi/9, 17pi/9) * (+-1)``. dmc: both directions from
  ``{0.1, 0.3, ..., 1.9} * pi``; category = direction < pi. ``*go`` respond (saccade to stimulus
  2) on a match and fixate otherwise; ``*nogo`` the reverse.

The ``multidm`` strength split uses the global, unseeded NumPy generator in the reference;
here every draw comes from the explicit key.

Modes
-----
* ``"random"``: the training distribution above.
* ``"test"``: the reference's deterministic grids (fd/react/delay: 20 directions x 2 rings;
  dm/delaydm: 20 directions x 5 strengths; context and multi tasks: 20 x 5 x 5; dms/dmc: 20 x 2 x 2,
  all go trials) with fixed timings. ``grid_size`` gives the number of grid trials.
* ``"psychometric"``: trials from explicit parameters ``params`` (a mapping of names to numbers or
  per-trial sequences; directions in radians, strengths unitless, times in ms), with the
  reference's fixed timings around them. Required names per family: :data:`PSYCHOMETRIC_PARAMS`.
  Directions are reduced modulo ``2 pi``.

**Choice** (fixed modes): ``sample(key, batch_size)`` returns grid trials ``0..batch_size-1``
cycling through the grid (the key only drives the input noise); ``evaluation_batches`` returns the
whole grid. Parameters of the fixed modes are computed on the host in float64 (so ties and
category boundaries fall exactly as in the reference) and stored as float32.

Static shapes
-------------
**Choice**: JAX needs static shapes, but the reference's trial length varies from batch to batch.
Every trial is padded to a fixed ``n_steps`` (default: the longest trial the rule and mode can
produce; e.g. 133 steps for ``fdgo`` and 209 for ``delaydm1`` in random mode at ``dt = 20``); the
padding, ``t >= info["t_end"]``, has zero inputs (no noise), default targets and mask 0. A larger
``n_steps`` (e.g. :func:`common_n_steps` for batches mixing all 20 rules) is allowed; a smaller one
is refused. **Choice**: by default the durations (and the stimulus ring of the go/anti and match
families) are drawn once per batch, as in the reference; ``independent_trials=True`` draws them
per trial.

``sample`` is compiled once per rule, mode and batch size. On a CPU most of its time goes into
the Gaussian input noise (one threefry draw per input value, e.g. 64 x 209 x 85 for
``delaydm1``); without noise a 64-trial batch takes about a millisecond.

Per-trial metadata (``Batch.info``, leading axis ``B``; times in steps)
----------------------------------------------------------------------
``rule`` (index into :data:`RULES`), ``epochs`` ``(B, 6, 2)`` start/end of the epochs
:data:`EPOCHS` (``-1, -1`` where a family has no such epoch; Yang's ``trial.epochs`` with ``None``
replaced by 0 and ``t_end``), ``t_end`` (trial length), ``go`` (response-period onset),
``fix_off`` (fixation-input offset; ``t_end`` if it stays on), ``respond`` (go trial?),
``response_loc`` (radians), ``y_loc`` (the reference's target location at the last step: the
response direction, or -1 when the network must keep fixating), ``match`` (1/0 for dms/dmc, -1
otherwise), and the four stimulus slots ``stim_loc``, ``stim_strength``, ``stim_ring`` (1, 2; 0 =
unused slot), ``stim_on``, ``stim_off`` ``(B, 4)``.

Metric (reference ``get_perf``)
-------------------------------
At the last step of each trial (``t_end - 1``), the network fixates iff its fixation output is
> 0.5; the response direction is the population vector of the 32 ring outputs. A trial is correct
if it should fixate (``y_loc < 0``) and does, or should respond, does not fixate and the response is
within ``0.2 pi`` of the target direction. ``evaluate`` returns this as ``perf``, the masked MSE as
``loss``, and ``perf_strict`` (not in the reference, which only looks at the last step): ``perf``
and, in addition, the fixation output > 0.5 at every scored step where the fixation target is 0.8.

Network side (not part of the task; listed in :data:`YANG_HP` for convenience): leaky ReLU RNN of
256 units, ``tau = 100`` ms, ``alpha = dt / tau``, recurrent noise ``sqrt(2 / alpha) * 0.05``,
sigmoid readout, Adam with learning rate 1e-3, batches of 64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validation import (
    check_choice,
    check_known_options,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_time_constants,
)
from .base import AbstractTask, Batch, masked_mse

RULES: tuple[str, ...] = (
    "fdgo", "reactgo", "delaygo", "fdanti", "reactanti", "delayanti",
    "dm1", "dm2", "contextdm1", "contextdm2", "multidm",
    "delaydm1", "delaydm2", "contextdelaydm1", "contextdelaydm2", "multidelaydm",
    "dmsgo", "dmsnogo", "dmcgo", "dmcnogo",
)  # fmt: skip
MODES: tuple[str, ...] = ("random", "test", "psychometric")
EPOCHS: tuple[str, ...] = ("fix1", "stim1", "delay1", "stim2", "delay2", "go1")

N_RING = 32
N_RULE = len(RULES)
N_IN = 1 + 2 * N_RING + N_RULE  # 85
N_OUT = 1 + N_RING  # 33
RULE_START = 1 + 2 * N_RING  # first rule-input channel (65)
N_SLOTS = 4  # stimulus slots per trial (the context tasks use all four)

#: The reference's default hyperparameters (``train.get_default_hp``); the task uses dt, tau,
#: sigma_x; the rest is for whoever builds the matching network.
YANG_HP: dict[str, Any] = {
    "dt": 20.0, "tau": 100.0, "alpha": 0.2, "sigma_x": 0.01, "sigma_rec": 0.05, "n_rnn": 256,
    "activation": "relu", "output": "sigmoid", "loss": "lsq", "batch_size_train": 64,
    "batch_size_test": 512, "learning_rate": 1e-3, "optimizer": "adam", "w_rec_init": "randortho",
}  # fmt: skip

# Target and mask constants of the reference.
BASELINE = 0.05
FIX_TARGET = 0.8
TUNING_PEAK = 0.8
TUNING_WIDTH = math.pi / 8
PRE_ON_MS = 100.0  # unscored start of every trial
GRACE_MS = 100.0  # unscored period after go
PRE_WEIGHT = 1.0
POST_WEIGHT = 5.0
FIX_WEIGHT = 2.0
FIX_THRESHOLD = 0.5
TOLERANCE = 0.2 * math.pi
_GRID_MS = 100.0  # every time of the reference is a multiple of this

# rule -> (family, variant)
_RULE_SPEC: dict[str, tuple[str, Any]] = {
    "fdgo": ("fd", False), "fdanti": ("fd", True),
    "reactgo": ("react", False), "reactanti": ("react", True),
    "delaygo": ("delay", False), "delayanti": ("delay", True),
    "dm1": ("dm", 1), "dm2": ("dm", 2),
    "contextdm1": ("contextdm", 1), "contextdm2": ("contextdm", 2), "multidm": ("contextdm", 0),
    "delaydm1": ("delaydm", 1), "delaydm2": ("delaydm", 2),
    "contextdelaydm1": ("contextdelaydm", 1), "contextdelaydm2": ("contextdelaydm", 2),
    "multidelaydm": ("contextdelaydm", 0),
    "dmsgo": ("dms", False), "dmsnogo": ("dms", True),
    "dmcgo": ("dmc", False), "dmcnogo": ("dmc", True),
}  # fmt: skip

_GO_FAMILIES = ("fd", "react", "delay")
_DM_FAMILIES = ("dm", "contextdm", "delaydm", "contextdelaydm")
_MATCH_FAMILIES = ("dms", "dmc")
_DELAYED_DM = ("delaydm", "contextdelaydm")

_FIVE = ("fix1", "stim1", "delay1", "stim2", "delay2", "go1")
#: Epochs of each family, in order; the trial is their concatenation.
FAMILY_EPOCHS: dict[str, tuple[str, ...]] = {
    "fd": ("fix1", "stim1", "go1"),
    "react": ("fix1", "go1"),
    "delay": ("fix1", "stim1", "delay1", "go1"),
    "dm": ("fix1", "stim1", "go1"),
    "contextdm": ("fix1", "stim1", "go1"),
    "delaydm": _FIVE,
    "contextdelaydm": _FIVE,
    "dms": ("fix1", "stim1", "delay1", "go1"),
    "dmc": ("fix1", "stim1", "delay1", "go1"),
}

# Random-mode epoch durations in ms: ("u", lo, hi) = int(U[lo, hi) / dt); ("c", v1, v2, ...) =
# uniform choice.
_DELAYS = ("c", 200, 400, 800, 1600)
_SHORT = ("c", 200, 400, 600)
_RANDOM_DURATIONS: dict[str, tuple[tuple, ...]] = {
    "fd": (("u", 300, 700), ("u", 500, 1500), ("c", 500)),
    "react": (("u", 500, 2500), ("c", 500)),
    "delay": (("c", 300, 500, 700), _SHORT, _DELAYS, ("c", 500)),
    "dm": (("u", 100, 400), ("c", 400, 800, 1600), ("c", 500)),
    "contextdm": (("u", 100, 400), ("c", 400, 800, 1600), ("c", 500)),
    "delaydm": (_SHORT, _SHORT, _DELAYS, _SHORT, ("u", 100, 300), ("c", 500)),
    "contextdelaydm": (_SHORT, _SHORT, _DELAYS, _SHORT, ("u", 100, 300), ("c", 500)),
    "dms": (_SHORT, _SHORT, _DELAYS, ("c", 500)),
    "dmc": (_SHORT, _SHORT, _DELAYS, _SHORT),
}
# Test-mode epoch durations in ms.
_TEST_DURATIONS: dict[str, tuple[float, ...]] = {
    "fd": (500, 1000, 500),
    "react": (2000, 500),
    "delay": (500, 500, 1000, 500),
    "dm": (500, 1500, 500),
    "contextdm": (500, 1000, 500),
    "delaydm": (500, 500, 1000, 500, 200, 300),
    "contextdelaydm": (500, 500, 1000, 500, 500, 500),
    "dms": (500, 500, 1200, 500),
    "dmc": (500, 500, 1200, 500),
}
# Test-mode grid shapes (np.unravel_index order, last index fastest).
_TEST_GRID: dict[str, tuple[int, ...]] = {
    "fd": (20, 2), "react": (20, 2), "delay": (20, 2),
    "dm": (20, 5), "delaydm": (20, 5), "contextdm": (20, 5, 5), "contextdelaydm": (20, 5, 5),
    "dms": (20, 2, 2), "dmc": (20, 2, 2),
}  # fmt: skip

_LOCS2 = ("stim1_locs", "stim2_locs")
_STR4 = ("stim1_mod1_strengths", "stim2_mod1_strengths", "stim1_mod2_strengths",
         "stim2_mod2_strengths")  # fmt: skip
#: Names ``params`` must give in psychometric mode, per family (times in ms).
PSYCHOMETRIC_PARAMS: dict[str, tuple[str, ...]] = {
    "fd": ("stim_locs", "stim_time"),
    "react": ("stim_locs",),
    "delay": ("stim_locs", "stim_ons", "stim_offs", "delay_time"),
    "dm": (*_LOCS2, "stim1_strengths", "stim2_strengths", "stim_time"),
    "contextdm": (*_LOCS2, *_STR4, "stim_time"),
    "delaydm": (
        *_LOCS2,
        "stim1_strengths",
        "stim2_strengths",
        "stim1_ons",
        "stim1_offs",
        "stim2_ons",
        "stim2_offs",
    ),  # fmt: skip
    "contextdelaydm": (*_LOCS2, *_STR4, "stim_time"),
    "dms": _LOCS2,
    "dmc": _LOCS2,
}
_TIME_PARAMS = ("stim_time", "stim_ons", "stim_offs", "delay_time", "stim1_ons", "stim1_offs",
                "stim2_ons", "stim2_offs")  # fmt: skip
_DMC_LOCS = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]) * np.pi
_TWO_PI = 2 * np.pi


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def rule_family(rule: str) -> str:
    """The timing family of ``rule`` (a key of :data:`FAMILY_EPOCHS`)."""
    return _RULE_SPEC[check_choice("Yang rule", rule, RULES)][0]


def _check_dt(dt: Any, tau: Any) -> tuple[float, float]:
    dt_v, taus = check_time_constants(dt, tau=tau)
    return _check_grid(dt_v), taus["tau"]


def _check_grid(dt: Any) -> float:
    dt_v = check_positive("dt", dt)
    ratio = _GRID_MS / dt_v
    if abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(
            f"dt={dt_v} ms does not divide the 100 ms grid of the task timings; allowed: a divisor "
            "of 100 ms (1, 2, 4, 5, 10, 20, 25, 50, 100, or 100/k for an integer k)"
        )
    return dt_v


def _ms_to_steps(name: str, ms: np.ndarray | float, dt: float) -> np.ndarray:
    """``ms / dt`` as integers; refuses negative values and values off the ``dt`` grid."""
    arr = np.asarray(ms, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {ms!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be a non-negative duration in ms, got {ms!r}")
    steps = arr / dt
    if np.any(np.abs(steps - np.round(steps)) > 1e-6):
        raise ValueError(f"{name}={ms!r} ms is not a multiple of dt={dt} ms")
    return np.round(steps).astype(np.int64)


def _max_draw_ms(draw: tuple) -> float:
    """Largest duration a draw can give, in ms (``U[lo, hi)`` gives at most ``hi - dt``)."""
    return float(max(draw[1:])) if draw[0] == "c" else float(draw[2])


def _draw_max_steps(draw: tuple, dt: float) -> int:
    if draw[0] == "c":
        return int(round(max(draw[1:]) / dt))
    return int(round(draw[2] / dt)) - 1


def ring_tuning(loc: Array, xp=jnp) -> Array:
    """Ring activity for directions ``loc (...)`` -> ``(..., 32)``: ``0.8 exp(-d^2/2)``."""
    pref = xp.arange(N_RING) * (2 * np.pi / N_RING)
    diff = xp.mod(loc[..., None] - pref, 2 * np.pi)
    dist = xp.minimum(diff, 2 * np.pi - diff) / TUNING_WIDTH
    return TUNING_PEAK * xp.exp(-(dist**2) / 2)


def popvec(y: Array) -> Array:
    """Population-vector direction in ``[0, 2 pi)`` of ring activity ``y (..., N)``."""
    pref = jnp.arange(y.shape[-1]) * (2 * jnp.pi / y.shape[-1])
    total = jnp.sum(y, axis=-1)
    c = jnp.sum(y * jnp.cos(pref), axis=-1) / total
    s = jnp.sum(y * jnp.sin(pref), axis=-1) / total
    return jnp.mod(jnp.arctan2(s, c), 2 * jnp.pi)


def trial_correct(outputs: Array, y_loc: Array, t_end: Array) -> Array:
    """The reference's ``get_perf`` per trial: ``(B,)`` booleans.

    Args:
        outputs: network outputs ``(B, T, 33)`` (fixation first, then the ring).
        y_loc: target direction at the last step ``(B,)``, ``< 0`` where the network must fixate.
        t_end: trial lengths in steps ``(B,)``; the decision is read at step ``t_end - 1``.
    """
    idx = jnp.asarray(t_end, dtype=jnp.int32) - 1
    last = jnp.take_along_axis(outputs, idx[:, None, None], axis=1)[:, 0]
    fixating = last[:, 0] > FIX_THRESHOLD
    loc = popvec(last[:, 1:])
    diff = jnp.abs(y_loc - loc)
    dist = jnp.minimum(diff, 2 * jnp.pi - diff)
    corr_loc = dist < TOLERANCE
    should_fix = y_loc < 0
    return jnp.where(should_fix, fixating, corr_loc & ~fixating)


def max_trial_steps(
    rule: str, mode: str = "random", dt: float = 20.0, params: Mapping[str, Any] | None = None
) -> int:
    """Longest trial ``rule`` produces in ``mode`` at ``dt`` (ms), in steps."""
    check_choice("Yang rule", rule, RULES)
    check_choice("mode", mode, MODES)
    dt = _check_grid(dt)
    fam = _RULE_SPEC[rule][0]
    if mode == "random":
        return sum(_draw_max_steps(d, dt) for d in _RANDOM_DURATIONS[fam])
    if mode == "test":
        return int(sum(_ms_to_steps("duration", d, dt) for d in _TEST_DURATIONS[fam]))
    _, durations = _psychometric_conditions(rule, _check_params(rule, params), dt)
    return int(durations.sum(axis=1).max())


def common_n_steps(rules: Sequence[str] = RULES, mode: str = "random", dt: float = 20.0) -> int:
    """A trial length that fits every rule in ``rules`` (for batches that mix rules)."""
    return max(max_trial_steps(r, mode, dt) for r in rules)


# ---------------------------------------------------------------------------------------------
# Trial conditions
# ---------------------------------------------------------------------------------------------
# A "condition" dict holds the non-timing parameters of each trial:
#   go families:    stim_loc (B,), stim_mod (B,) in {1, 2}
#   dm families:    loc1, loc2 (B,), strengths (B, 2, 2) indexed [stimulus, ring]
#   match families: loc1, loc2 (B,), mod1, mod2 (B,), match (B,) bool
# Timing is an integer array of epoch durations (B, n_epochs) in steps.


def _random_durations(fam: str, key, n: int, dt: float) -> Array:
    keys = jr.split(key, len(_RANDOM_DURATIONS[fam]))
    out = []
    for k, draw in zip(keys, _RANDOM_DURATIONS[fam], strict=True):
        if draw[0] == "c":
            steps = jnp.asarray([round(v / dt) for v in draw[1:]], dtype=jnp.int32)
            out.append(jr.choice(k, steps, (n,)))
        else:
            out.append(jr.randint(k, (n,), round(draw[1] / dt), round(draw[2] / dt)))
    return jnp.stack(out, axis=1).astype(jnp.int32)


def _genstim(key, n: int, coh_range) -> tuple[Array, Array]:
    """Two strengths ``mean +- coh * sign`` (reference ``contextdm_genstim``)."""
    k1, k2, k3 = jr.split(key, 3)
    mean = jr.uniform(k1, (n,), minval=0.8, maxval=1.2)
    coh = jr.choice(k2, jnp.asarray(coh_range, dtype=jnp.float32), (n,))
    sign = jr.choice(k3, jnp.asarray([1.0, -1.0]), (n,))
    return mean + coh * sign, mean - coh * sign


def _random_sign(key, n: int) -> Array:
    return jr.choice(key, jnp.asarray([1.0, -1.0]), (n,))


def _random_conditions(rule: str, key, n: int, n_shared: int, easy: bool) -> dict[str, Array]:
    fam, var = _RULE_SPEC[rule]
    if fam in _GO_FAMILIES:
        k1, k2 = jr.split(key)
        loc = jr.uniform(k1, (n,), maxval=2 * jnp.pi)
        mod = jnp.broadcast_to(jr.randint(k2, (n_shared,), 1, 3), (n,))
        return {"stim_loc": loc, "stim_mod": mod}
    if fam in _DM_FAMILIES:
        ks = jr.split(key, 10)
        dist = jr.uniform(ks[0], (n,), minval=0.5 * jnp.pi, maxval=1.5 * jnp.pi)
        dist = dist * _random_sign(ks[1], n)
        loc1 = jr.uniform(ks[2], (n,), maxval=2 * jnp.pi)
        loc2 = jnp.mod(loc1 + dist, 2 * jnp.pi)
        if fam in _DELAYED_DM:
            coh = np.array([0.08, 0.16, 0.32]) * (2.0 if easy else 1.0)
        else:
            coh = np.array([0.01, 0.02, 0.04, 0.08]) * (10.0 if easy else 1.0)
        zeros = jnp.zeros((n,))
        if fam in ("dm", "delaydm"):  # one ring
            s1, s2 = _genstim(ks[3], n, coh)
            ring1 = (s1, s2) if var == 1 else (zeros, zeros)
            ring2 = (s1, s2) if var == 2 else (zeros, zeros)
        elif var in (1, 2):  # context: independent strengths on both rings
            ring1 = _genstim(ks[3], n, coh)
            ring2 = _genstim(ks[4], n, coh)
        else:  # multisensory: split each stimulus' strength between the rings
            s1, s2 = _genstim(ks[3], n, coh)
            d1 = s1 * jr.uniform(ks[5], (n,), minval=0.2, maxval=0.8) * _random_sign(ks[6], n)
            d2 = s2 * jr.uniform(ks[7], (n,), minval=0.2, maxval=0.8) * _random_sign(ks[8], n)
            ring1 = (s1 + d1 / 2, s2 + d2 / 2)
            ring2 = (s1 - d1 / 2, s2 - d2 / 2)
        strengths = jnp.stack([jnp.stack(ring1, -1), jnp.stack(ring2, -1)], axis=-1)
        return {"loc1": loc1, "loc2": loc2, "strengths": strengths}
    # match families
    ks = jr.split(key, 6)
    mod1 = jnp.broadcast_to(jr.randint(ks[0], (n_shared,), 1, 3), (n,))
    mod2 = jnp.broadcast_to(jr.randint(ks[1], (n_shared,), 1, 3), (n,))
    if fam == "dms":
        match = jr.randint(ks[2], (n,), 0, 2)
        dist = jr.uniform(ks[3], (n,), minval=jnp.pi / 9, maxval=jnp.pi * 17 / 9)
        dist = dist * _random_sign(ks[4], n)
        loc1 = jr.uniform(ks[5], (n,), maxval=2 * jnp.pi)
        loc2 = jnp.mod(loc1 + dist * (1 - match), 2 * jnp.pi)
        match = match.astype(bool)
    else:
        locs = jnp.asarray(_DMC_LOCS, dtype=jnp.float32)
        loc1 = jr.choice(ks[2], locs, (n,))
        loc2 = jr.choice(ks[3], locs, (n,))
        match = (loc1 < jnp.pi) == (loc2 < jnp.pi)
    return {"loc1": loc1, "loc2": loc2, "mod1": mod1, "mod2": mod2, "match": match}


def _test_conditions(rule: str) -> tuple[dict[str, np.ndarray], int]:
    """The reference's test grid (float64, on the host)."""
    fam, var = _RULE_SPEC[rule]
    shape = _TEST_GRID[fam]
    n = int(np.prod(shape))
    idx = np.unravel_index(np.arange(n), shape)
    loc1 = _TWO_PI * idx[0] / shape[0]
    if fam in _GO_FAMILIES:
        return {"stim_loc": loc1, "stim_mod": idx[1] + 1}, n
    if fam in _DM_FAMILIES:
        loc2 = np.mod(loc1 + np.pi, _TWO_PI)
        zeros = np.zeros(n)
        if fam in ("dm", "delaydm"):
            s1 = 0.4 * idx[1] / shape[1] + 0.8 if fam == "dm" else 1.0 * idx[1] / shape[1] + 0.5
            s2 = 2 - s1
            ring1 = (s1, s2) if var == 1 else (zeros, zeros)
            ring2 = (s1, s2) if var == 2 else (zeros, zeros)
        else:
            s11 = 0.4 * idx[1] / shape[1] + 0.8
            s12 = 0.4 * idx[2] / shape[2] + 0.8
            ring1, ring2 = (s11, 2 - s11), (s12, 2 - s12)
        strengths = np.stack([np.stack(ring1, -1), np.stack(ring2, -1)], axis=-1)
        return {"loc1": loc1, "loc2": loc2, "strengths": strengths}, n
    # match families: built so that every test trial is a go trial
    if fam == "dmc":
        half = shape[0] // 2
        base = np.concatenate(
            [0.1 + 0.8 * np.arange(half) / half, 1.1 + 0.8 * np.arange(half) / half]
        )
        loc1 = base[idx[0]] * np.pi
    same = not var  # *go tasks respond to a match, *nogo to a non-match
    loc2 = np.mod(loc1 + (0.0 if same else np.pi), _TWO_PI)
    cond = {"loc1": loc1, "loc2": loc2, "mod1": idx[1] + 1, "mod2": idx[2] + 1}
    cond["match"] = _match(fam, loc1, loc2)
    return cond, n


def _match(fam: str, loc1: np.ndarray, loc2: np.ndarray) -> np.ndarray:
    if fam == "dmc":
        return (loc1 < np.pi) == (loc2 < np.pi)
    diff = np.abs(loc1 - loc2)
    return np.minimum(diff, _TWO_PI - diff) < np.pi / 36  # within 5 degrees


def _check_params(rule: str, params: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Validate psychometric ``params``: names, numbers, one common trial count."""
    fam = _RULE_SPEC[rule][0]
    required = PSYCHOMETRIC_PARAMS[fam]
    if params is None:
        raise ValueError(
            f"mode 'psychometric' needs params for rule {rule!r}: {', '.join(required)}"
        )
    if not isinstance(params, Mapping):
        raise ValueError(
            f"params must be a mapping of names to values, got {type(params).__name__}"
        )
    check_known_options(f"psychometric params of rule {rule!r}", params, required)
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"psychometric params of rule {rule!r} lack {', '.join(missing)}")
    arrays = {}
    for k in required:
        a = np.asarray(params[k], dtype=np.float64)
        if a.ndim > 1:
            raise ValueError(
                f"params[{k!r}] must be a number or a 1-d sequence, got shape {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"params[{k!r}] must be finite, got {params[k]!r}")
        arrays[k] = a
    sizes = {a.size for a in arrays.values() if a.ndim == 1}
    if len(sizes) > 1:
        lens = {k: a.size for k, a in arrays.items() if a.ndim == 1}
        raise ValueError(f"psychometric params must have one common length, got {lens}")
    n = sizes.pop() if sizes else 1
    if n == 0:
        raise ValueError("psychometric params describe no trial (empty sequences)")
    return {k: np.broadcast_to(a, (n,)).copy() for k, a in arrays.items()}


def _psychometric_conditions(
    rule: str, p: dict[str, np.ndarray], dt: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Conditions and epoch durations (steps) of psychometric trials (host, float64)."""
    fam, var = _RULE_SPEC[rule]
    steps = {k: _ms_to_steps(f"params[{k!r}]", p[k], dt) for k in p if k in _TIME_PARAMS}
    n = next(iter(p.values())).size

    def ms(v: float) -> np.ndarray:  # a fixed reference time, for every trial
        return np.full(n, int(round(v / dt)))

    if fam == "fd":
        dur = [ms(300), steps["stim_time"], ms(400)]
    elif fam == "react":
        dur = [ms(1000), ms(400)]
    elif fam == "delay":
        dur = [
            steps["stim_ons"],
            steps["stim_offs"] - steps["stim_ons"],
            steps["delay_time"],
            ms(400),
        ]
    elif fam == "dm":
        dur = [ms(300), steps["stim_time"], ms(400)]
    elif fam == "contextdm":
        dur = [ms(500), steps["stim_time"], ms(500)]
    elif fam == "delaydm":
        on1, off1, on2, off2 = (
            steps[k] for k in ("stim1_ons", "stim1_offs", "stim2_ons", "stim2_offs")
        )
        dur = [on1, off1 - on1, on2 - off1, off2 - on2, ms(200), ms(300)]
    elif fam == "contextdelaydm":
        dur = [ms(300), ms(300), steps["stim_time"], ms(300), ms(200), ms(300)]
    else:  # dms, dmc
        dur = [ms(500), ms(300), ms(1200), ms(500)]
    durations = np.stack(dur, axis=1)
    if np.any(durations < 0):
        names = FAMILY_EPOCHS[fam]
        bad = sorted({names[j] for j in np.nonzero(durations < 0)[1]})
        raise ValueError(
            f"psychometric params of rule {rule!r} give negative epoch durations "
            f"({', '.join(bad)}); "
            "onsets must not come after offsets"
        )
    go = durations[:, :-1].sum(axis=1)
    if np.any(go * dt < PRE_ON_MS):
        raise ValueError(
            f"psychometric params of rule {rule!r} put the response before {PRE_ON_MS:g} ms, "
            "inside the unscored start of the trial"
        )

    if fam in _GO_FAMILIES:
        return {"stim_loc": np.mod(p["stim_locs"], _TWO_PI), "stim_mod": np.ones(n, int)}, durations
    loc1 = np.mod(p["stim1_locs"], _TWO_PI)
    loc2 = np.mod(p["stim2_locs"], _TWO_PI)
    if fam in _DM_FAMILIES:
        zeros = np.zeros(n)
        if fam in ("dm", "delaydm"):
            s = (p["stim1_strengths"], p["stim2_strengths"])
            ring1, ring2 = (s, (zeros, zeros)) if var == 1 else ((zeros, zeros), s)
        else:
            ring1 = (p["stim1_mod1_strengths"], p["stim2_mod1_strengths"])
            ring2 = (p["stim1_mod2_strengths"], p["stim2_mod2_strengths"])
        strengths = np.stack([np.stack(ring1, -1), np.stack(ring2, -1)], axis=-1)
        return {"loc1": loc1, "loc2": loc2, "strengths": strengths}, durations
    cond = {"loc1": loc1, "loc2": loc2, "mod1": np.ones(n, int), "mod2": np.ones(n, int)}
    cond["match"] = _match(fam, loc1, loc2)
    return cond, durations


# ---------------------------------------------------------------------------------------------
# From conditions and durations to a trial specification
# ---------------------------------------------------------------------------------------------


def _assemble(xp, rule: str, cond: dict, durations) -> dict[str, Any]:
    """Per-trial specification (stimulus slots, key times, response) of one rule's trials.

    ``xp`` is ``numpy`` (fixed modes, float64) or ``jax.numpy`` (random mode).
    """
    fam, var = _RULE_SPEC[rule]
    names = FAMILY_EPOCHS[fam]
    n = durations.shape[0]
    bounds = xp.concatenate([xp.zeros((n, 1), dtype=durations.dtype), xp.cumsum(durations, 1)], 1)
    start = {name: bounds[:, i] for i, name in enumerate(names)}
    end = {name: bounds[:, i + 1] for i, name in enumerate(names)}
    t_end = bounds[:, -1]
    go = start["go1"]
    zf, zi = xp.zeros(n), xp.zeros(n, dtype=durations.dtype)
    match = -xp.ones(n, dtype=durations.dtype)

    if fam in _GO_FAMILIES:
        loc = cond["stim_loc"]
        on = go if fam == "react" else start["stim1"]
        off = end["stim1"] if fam == "delay" else t_end
        slots = [(loc, xp.ones(n), cond["stim_mod"], on, off)]
        slots += [(zf, zf, zi, zi, zi)] * 3
        response_loc = xp.mod(loc + np.pi, 2 * np.pi) if var else loc
        respond = xp.ones(n, dtype=bool)
        fix_off = t_end if fam == "react" else go
    elif fam in _DM_FAMILIES:
        loc1, loc2, s = cond["loc1"], cond["loc2"], cond["strengths"]
        on1, off1 = start["stim1"], end["stim1"]
        on2, off2 = (start["stim2"], end["stim2"]) if fam in _DELAYED_DM else (on1, off1)
        one, two = xp.ones(n, dtype=durations.dtype), 2 * xp.ones(n, dtype=durations.dtype)
        slots = [
            (loc1, s[:, 0, 0], one, on1, off1),
            (loc2, s[:, 1, 0], one, on2, off2),
            (loc1, s[:, 0, 1], two, on1, off1),
            (loc2, s[:, 1, 1], two, on2, off2),
        ]
        attended = s.sum(axis=2) if var == 0 else s[:, :, var - 1]
        response_loc = xp.where(attended[:, 0] > attended[:, 1], loc1, loc2)
        respond = xp.ones(n, dtype=bool)
        fix_off = go
    else:
        loc1, loc2 = cond["loc1"], cond["loc2"]
        slots = [
            (loc1, xp.ones(n), cond["mod1"], start["stim1"], end["stim1"]),
            (loc2, xp.ones(n), cond["mod2"], go, t_end),
            (zf, zf, zi, zi, zi),
            (zf, zf, zi, zi, zi),
        ]
        match_b = cond["match"].astype(bool)
        respond = match_b != bool(var)  # *go: respond on a match; *nogo: on a non-match
        response_loc = loc2
        fix_off = t_end
        match = match_b.astype(durations.dtype)

    epochs = []
    for name in EPOCHS:
        if name in start:
            epochs.append(xp.stack([start[name], end[name]], -1))
        else:
            epochs.append(-xp.ones((n, 2), dtype=durations.dtype))
    cols = list(zip(*slots, strict=True))
    spec = {
        "stim_loc": xp.stack(cols[0], -1),
        "stim_strength": xp.stack(cols[1], -1),
        "stim_ring": xp.stack(cols[2], -1),
        "stim_on": xp.stack(cols[3], -1),
        "stim_off": xp.stack(cols[4], -1),
        "fix_off": fix_off,
        "go": go,
        "t_end": t_end,
        "respond": respond,
        "response_loc": response_loc,
        "y_loc": xp.where(respond, response_loc, -1.0),
        "match": match,
        "epochs": xp.stack(epochs, 1),
    }
    return _cast(spec)


_INT_KEYS = ("stim_ring", "stim_on", "stim_off", "fix_off", "go", "t_end", "match", "epochs")


def _cast(spec: dict) -> dict[str, Array]:
    out = {}
    for k, v in spec.items():
        if k == "respond":
            out[k] = jnp.asarray(v, dtype=bool)
        elif k in _INT_KEYS:
            out[k] = jnp.asarray(v, dtype=jnp.int32)
        else:
            out[k] = jnp.asarray(v, dtype=jnp.float32)
    return out


@jax.jit(static_argnames=("rule_window", "n_steps", "pre_on", "grace", "square_mask"))
def _render(
    spec: dict[str, Array],
    rule_vec: Array,
    rule_window: tuple[int, int | None],
    n_steps: int,
    pre_on: int,
    grace: int,
    square_mask: bool,
) -> tuple[Array, Array, Array]:
    """Inputs ``(B, T, 85)``, targets and mask ``(B, T, 33)`` of a trial specification."""
    t = jnp.arange(n_steps)[None, :]
    t_end = spec["t_end"][:, None]
    live = t < t_end
    n = t_end.shape[0]

    fix_in = (t < spec["fix_off"][:, None]) & live
    tt = t[:, :, None]
    active = (tt >= spec["stim_on"][:, None, :]) & (tt < spec["stim_off"][:, None, :])
    active = (active & live[:, :, None]).astype(jnp.float32)  # (B, T, slots)
    bump = ring_tuning(spec["stim_loc"]) * spec["stim_strength"][..., None]  # (B, slots, 32)
    ring = jax.nn.one_hot(spec["stim_ring"] - 1, 2)  # (B, slots, 2); ring 0 (unused) -> zeros
    weights = (ring[..., None] * bump[:, :, None, :]).reshape(n, N_SLOTS, 2 * N_RING)
    stim = jnp.einsum("btk,bkm->btm", active, weights, precision=jax.lax.Precision.HIGHEST)

    r_on, r_off = rule_window
    rule_active = live & (t >= r_on)
    if r_off is not None:
        rule_active = rule_active & (t < r_off)
    if rule_vec.ndim == 2:  # one rule vector per trial
        rule_vec = rule_vec[:, None, :]
    rules = rule_active[..., None].astype(jnp.float32) * rule_vec
    inputs = jnp.concatenate([fix_in[..., None].astype(jnp.float32), stim, rules], axis=-1)

    go = spec["go"][:, None]
    fix_out_off = jnp.where(spec["respond"][:, None], go, t_end)
    fix_target = jnp.where(t < fix_out_off, FIX_TARGET, BASELINE)
    responding = (spec["respond"][:, None] & (t >= go) & live).astype(jnp.float32)
    ring_target = BASELINE + responding[..., None] * ring_tuning(spec["response_loc"])[:, None, :]
    targets = jnp.concatenate([fix_target[..., None], ring_target], axis=-1)

    c = jnp.where(t < go, PRE_WEIGHT, jnp.where(t < go + grace, 0.0, POST_WEIGHT))
    c = jnp.where((t >= pre_on) & live, c, 0.0)
    col = jnp.concatenate([jnp.array([FIX_WEIGHT]), jnp.ones(N_RING)])
    mask = c[..., None] * col
    if square_mask:
        mask = mask**2
    return inputs, targets.astype(jnp.float32), mask.astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------


class YangTask(AbstractTask):
    """One of the 20 tasks of Yang et al. 2019 (see the module docstring).

    Args:
        rule: task name, one of :data:`RULES`.
        mode: ``"random"`` (training distribution), ``"test"`` (the reference's grid) or
            ``"psychometric"`` (trials from ``params``).
        dt: time step in ms (must divide 100 ms); tau: the network's time constant in ms (sets
            ``alpha = dt / tau``, which scales the input noise).
        sigma_x: input noise before the ``sqrt(2 / alpha)`` scaling (0 = no noise).
        n_steps: trial array length in steps (default: the longest trial of this rule and mode).
        params: psychometric parameters (see :data:`PSYCHOMETRIC_PARAMS`); only in that mode.
        independent_trials: draw durations and stimulus rings per trial instead of per batch.
        easy_task: the reference's ``easy_task`` option (larger coherences).
        replace_rule: rule(s) whose input channels replace the task's own rule input.
        rule_strength: value(s) of the rule input(s), one per rule.
        rule_on, rule_off: the rule input is on during ``[rule_on, rule_off)`` ms (default: the
            whole trial).
        square_mask: store ``c_mask^2`` (the reference's effective weights) rather than ``c_mask``.
    """

    rule: str = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    sigma_x: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    independent_trials: bool = eqx.field(static=True)
    easy_task: bool = eqx.field(static=True)
    rule_vector: tuple[float, ...] = eqx.field(static=True)
    rule_window: tuple[int, int | None] = eqx.field(static=True)
    square_mask: bool = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    fixed: dict[str, Array] | None

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        rule: str = "fdgo",
        mode: str = "random",
        dt: float = 20.0,
        tau: float = 100.0,
        sigma_x: float = 0.01,
        n_steps: int | None = None,
        params: Mapping[str, Any] | None = None,
        independent_trials: bool = False,
        easy_task: bool = False,
        replace_rule: str | Sequence[str] | None = None,
        rule_strength: float | Sequence[float] = 1.0,
        rule_on: float | None = None,
        rule_off: float | None = None,
        square_mask: bool = True,
    ):
        self.rule = check_choice("Yang rule", rule, RULES)
        self.mode = check_choice("mode", mode, MODES)
        self.dt, self.tau = _check_dt(dt, tau)
        self.sigma_x = check_nonnegative("sigma_x", sigma_x)
        self.independent_trials = bool(independent_trials)
        self.easy_task = bool(easy_task)
        self.square_mask = bool(square_mask)
        self.n_in, self.n_out = N_IN, N_OUT

        # rule input
        rules = [rule] if replace_rule is None else replace_rule
        rules = [rules] if isinstance(rules, str) else list(rules)
        if not rules:
            raise ValueError("replace_rule must name at least one rule")
        for r in rules:
            check_choice("rule in replace_rule", r, RULES)
        try:
            strengths = np.atleast_1d(np.asarray(rule_strength, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(
                f"rule_strength must be a number or a sequence of numbers, got {rule_strength!r}"
            ) from None
        if strengths.ndim != 1 or not np.all(np.isfinite(strengths)):
            raise ValueError(f"rule_strength must hold finite numbers, got {rule_strength!r}")
        if strengths.size != len(rules):
            raise ValueError(
                f"rule_strength has {strengths.size} value(s) for {len(rules)} rule input(s) "
                f"({', '.join(rules)}); give one strength per rule"
            )
        vec = np.zeros(N_RULE)
        for r, s in zip(rules, strengths, strict=True):
            vec[RULES.index(r)] += s
        self.rule_vector = tuple(float(v) for v in vec)
        on = 0 if rule_on is None else int(_ms_to_steps("rule_on", rule_on, self.dt))
        off = None if rule_off is None else int(_ms_to_steps("rule_off", rule_off, self.dt))
        if off is not None and off <= on:
            raise ValueError(f"rule_off={rule_off} ms must come after rule_on={rule_on} ms")
        self.rule_window = (on, off)

        # trials of the fixed modes, and the trial length
        if self.mode != "psychometric" and params is not None:
            raise ValueError(f"params are only used in mode 'psychometric', not {self.mode!r}")
        if self.mode == "random":
            self.fixed = None
            needed = max_trial_steps(self.rule, "random", self.dt)
        else:
            if self.mode == "test":
                cond, n = _test_conditions(self.rule)
                fam = _RULE_SPEC[self.rule][0]
                durs = np.array(
                    [_ms_to_steps("duration", d, self.dt) for d in _TEST_DURATIONS[fam]]
                )
                durations = np.broadcast_to(durs, (n, durs.size))
            else:
                cond, durations = _psychometric_conditions(
                    self.rule, _check_params(self.rule, params), self.dt
                )
            self.fixed = _assemble(np, self.rule, cond, np.asarray(durations, dtype=np.int64))
            needed = int(durations.sum(axis=1).max())
        if n_steps is None:
            self.n_steps = needed
        else:
            self.n_steps = check_positive_int("n_steps", n_steps)
            if self.n_steps < needed:
                raise ValueError(
                    f"n_steps={self.n_steps} is shorter than the longest {self.rule!r} trial in "
                    f"mode {self.mode!r} ({needed} steps of {self.dt:g} ms); "
                    f"use n_steps >= {needed}"
                )

    # -- properties -----------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        """``dt / tau``."""
        return self.dt / self.tau

    @property
    def input_noise_std(self) -> float:
        """Standard deviation of the input noise per step: ``sigma_x * sqrt(2 / alpha)``."""
        return self.sigma_x * math.sqrt(2.0 / self.alpha)

    @property
    def rule_index(self) -> int:
        return RULES.index(self.rule)

    @property
    def family(self) -> str:
        return _RULE_SPEC[self.rule][0]

    @property
    def grid_size(self) -> int | None:
        """Number of trials of the fixed modes (``None`` in random mode)."""
        return None if self.fixed is None else int(self.fixed["t_end"].shape[0])

    # -- sampling -------------------------------------------------------------------------------

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """``batch_size`` trials (random mode: fresh; fixed modes: the grid, cycled)."""
        check_positive_int("batch_size", batch_size)
        return _sample(self, key, int(batch_size))

    def trial_spec(self, key: PRNGKeyArray, batch_size: int) -> dict[str, Array]:
        """The per-trial specification (the metadata of :meth:`sample`) without rendering."""
        check_positive_int("batch_size", batch_size)
        if self.fixed is not None:
            idx = jnp.arange(batch_size) % self.grid_size
            return jax.tree.map(lambda a: a[idx], self.fixed)
        fam = self.family
        k_time, k_cond = jr.split(key)
        n_shared = batch_size if self.independent_trials else 1
        durations = _random_durations(fam, k_time, n_shared, self.dt)
        durations = jnp.broadcast_to(durations, (batch_size, durations.shape[1]))
        cond = _random_conditions(self.rule, k_cond, batch_size, n_shared, self.easy_task)
        return _assemble(jnp, self.rule, cond, durations)

    def render(self, spec: dict[str, Array], key: PRNGKeyArray | None = None) -> Batch:
        """The batch of a trial specification; ``key`` draws the input noise (none if ``None``)."""
        pre_on = int(round(PRE_ON_MS / self.dt))
        grace = int(round(GRACE_MS / self.dt))
        rule_vec = jnp.asarray(self.rule_vector, dtype=jnp.float32)
        x, y, m = _render(
            spec, rule_vec, self.rule_window, self.n_steps, pre_on, grace, self.square_mask
        )
        if key is not None and self.sigma_x > 0:
            live = jnp.arange(self.n_steps)[None, :] < spec["t_end"][:, None]
            noise = jr.normal(key, x.shape) * self.input_noise_std
            x = x + noise * live[..., None]
        n = spec["t_end"].shape[0]
        info = dict(spec)
        info["rule"] = jnp.full((n,), self.rule_index, dtype=jnp.int32)
        return Batch(x, y, m, info)

    def evaluation_batches(self, key: PRNGKeyArray) -> dict[str, Batch]:
        """Random mode: 512 trials as 16 batches of 32, each with its own timing (the reference's
        evaluation); fixed modes: the whole grid."""
        if self.fixed is not None:
            return {self.mode: self.sample(key, self.grid_size)}
        parts = [self.sample(k, 32) for k in jr.split(key, 16)]
        return {"random": jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *parts)}

    # -- metric ---------------------------------------------------------------------------------

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, Array]:
        """``perf`` (reference percent correct, as a fraction), ``perf_strict`` and ``loss``."""
        info = batch.info
        return _evaluate(outputs, batch.targets, batch.mask, info["y_loc"], info["t_end"])


@jax.jit
def _evaluate(outputs, targets, mask, y_loc, t_end) -> dict[str, Array]:
    correct = trial_correct(outputs, y_loc, t_end)
    required = (targets[..., 0] > FIX_THRESHOLD) & (mask[..., 0] > 0)
    held = jnp.all(~required | (outputs[..., 0] > FIX_THRESHOLD), axis=1)
    return {
        "loss": masked_mse(outputs, targets, mask),
        "perf": jnp.mean(correct.astype(jnp.float32)),
        "perf_strict": jnp.mean((correct & held).astype(jnp.float32)),
    }


@eqx.filter_jit
def _sample(task: YangTask, key, batch_size: int) -> Batch:
    k_spec, k_noise = jr.split(key)
    return task.render(task.trial_spec(k_spec, batch_size), k_noise)


# ---------------------------------------------------------------------------------------------
# Training on several rules at once
# ---------------------------------------------------------------------------------------------

#: The rule probabilities of Yang's networks trained on all 20 tasks (``experiment.py``,
#: ``train_all``: ``rule_prob_map = {'contextdm1': 5, 'contextdm2': 5}``, every other rule 1).
YANG_ALL_RULE_PROBS: dict[str, float] = {"contextdm1": 5.0, "contextdm2": 5.0}
MIXINGS: tuple[str, ...] = ("trial", "batch")


class YangMultitask(AbstractTask):
    """Batches of several Yang rules (``make_task("yang_multitask", ...)``), with per-rule metrics.

    The reference trains on many rules by drawing, at every step, one rule from ``rule_trains``
    with probabilities ``rule_prob_map`` (relative weights, 1 for every rule not listed; ``train.py``,
    ``train``) and a batch of that rule. ``mixing="batch"`` does exactly that; ``mixing="trial"``
    draws the rule of every trial from the same probabilities, so every batch mixes rules (the
    trials' distribution is the same; only the trials of one batch are no longer of one rule).
    Within a batch, the trials of one rule share their durations (and, for the go/anti and match
    families, their stimulus rings), drawn once per batch as in the reference (``independent_trials``
    draws them per trial). Every trial is padded to ``n_steps`` (default :func:`common_n_steps` of
    ``rules``: 209 steps for all 20 at ``dt = 20``); the padding has no input and mask 0.

    Generation costs about one batch of one rule: every rule's per-trial specification (a few
    numbers per trial) is drawn, each trial takes its own rule's, and the batch is rendered once
    with a rule input per trial. ``info`` holds the keys of :class:`YangTask` (``rule`` is the
    index into :data:`RULES`) plus ``task_id``, the index into ``rules``.

    Args:
        rules: the rules to train (default all 20, in :data:`RULES` order).
        rule_prob_map: relative weight of each rule (reference semantics; default: every rule 1;
            :data:`YANG_ALL_RULE_PROBS` is the reference's choice for all 20 tasks).
        mixing: ``"trial"`` (every trial draws its rule) or ``"batch"`` (one rule per batch).
        n_eval: trials per rule in ``evaluation_batches`` (batches of 32 with their own timing,
            as the reference's evaluation, which uses 16 x 32 = 512).
        dt, tau, sigma_x, n_steps, independent_trials, easy_task, square_mask: as in
            :class:`YangTask`, shared by every rule.
    """

    tasks: tuple[YangTask, ...]
    rules: tuple[str, ...] = eqx.field(static=True)
    weights: tuple[float, ...] = eqx.field(static=True)
    mixing: str = eqx.field(static=True)
    n_eval: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        rules: Sequence[str] = RULES,
        rule_prob_map: Mapping[str, float] | None = None,
        mixing: str = "trial",
        n_eval: int = 64,
        *,
        dt: float = 20.0,
        tau: float = 100.0,
        sigma_x: float = 0.01,
        n_steps: int | None = None,
        independent_trials: bool = False,
        easy_task: bool = False,
        square_mask: bool = True,
    ):
        rules = (rules,) if isinstance(rules, str) else tuple(rules)
        if not rules:
            raise ValueError("rules must name at least one Yang rule")
        for r in rules:
            check_choice("Yang rule", r, RULES)
        if len(set(rules)) != len(rules):
            raise ValueError(f"rules repeats a rule: {list(rules)}")
        probs = {} if rule_prob_map is None else rule_prob_map
        if not isinstance(probs, Mapping):
            raise ValueError(f"rule_prob_map must map rule names to weights, got {rule_prob_map!r}")
        unknown = sorted(set(probs) - set(rules))
        if unknown:
            raise ValueError(f"rule_prob_map names rule(s) not trained here: {', '.join(map(str, unknown))}")
        weights = tuple(check_nonnegative(f"rule_prob_map[{r!r}]", probs.get(r, 1.0)) for r in rules)
        if sum(weights) <= 0:
            raise ValueError("rule_prob_map gives every rule weight 0")
        self.mixing = check_choice("mixing", mixing, MIXINGS)
        self.n_eval = check_positive_int("n_eval", n_eval)
        steps = common_n_steps(rules, "random", _check_grid(dt)) if n_steps is None else n_steps
        self.tasks = tuple(
            YangTask(r, dt=dt, tau=tau, sigma_x=sigma_x, n_steps=steps, independent_trials=independent_trials,
                     easy_task=easy_task, square_mask=square_mask)
            for r in rules
        )
        self.rules = rules
        total = sum(weights)
        self.weights = tuple(w / total for w in weights)
        self.n_in, self.n_out, self.n_steps = N_IN, N_OUT, self.tasks[0].n_steps

    def _mixed(self):
        from .mixed import MixedTask

        return MixedTask(self.tasks, weights=self.weights, names=self.rules)

    def sample_ids(self, key: PRNGKeyArray, batch_size: int) -> Array:
        """The index into ``rules`` of every trial ``(B,)`` (one draw for the whole batch with
        ``mixing="batch"``)."""
        p = jnp.asarray(self.weights)
        if self.mixing == "batch":
            return jnp.broadcast_to(jr.choice(key, len(self.rules), (1,), p=p), (batch_size,))
        return jr.choice(key, len(self.rules), (batch_size,), p=p)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        return _sample_multi(self, key, int(batch_size))

    def trial_spec(self, key: PRNGKeyArray, batch_size: int) -> dict[str, Array]:
        """The per-trial specification of a batch (with ``task_id``), not rendered: the ids from
        the first half of ``split(key)``, the trials from the second (:meth:`spec_of`)."""
        k_ids, k_spec = jr.split(key)
        return self.spec_of(k_spec, self.sample_ids(k_ids, batch_size))

    def spec_of(self, key: PRNGKeyArray, ids: Array) -> dict[str, Array]:
        """The specification of trials whose rules are ``ids (B,)`` (indices into ``rules``):
        rule ``i`` draws a whole batch from ``split(key, len(rules))[i]`` and trial ``b`` is taken
        from the batch of rule ``ids[b]``."""
        ids = jnp.asarray(ids, dtype=jnp.int32)
        n = ids.shape[0]
        keys = jr.split(key, len(self.tasks))
        specs = [t.trial_spec(k, n) for t, k in zip(self.tasks, keys, strict=True)]
        spec = jax.tree.map(lambda *xs: jnp.stack(xs)[ids, jnp.arange(n)], *specs)
        return {**spec, "task_id": ids}

    def render(self, spec: dict[str, Array], key: PRNGKeyArray | None = None) -> Batch:
        """The batch of a specification with ``task_id``; ``key`` draws the input noise."""
        first = self.tasks[0]
        ids = spec["task_id"]
        rule_vecs = jnp.asarray([t.rule_vector for t in self.tasks], dtype=jnp.float32)[ids]
        pre_on = int(round(PRE_ON_MS / first.dt))
        grace = int(round(GRACE_MS / first.dt))
        cond = {k: v for k, v in spec.items() if k != "task_id"}
        x, y, m = _render(cond, rule_vecs, first.rule_window, self.n_steps, pre_on, grace, first.square_mask)
        if key is not None and first.sigma_x > 0:
            live = jnp.arange(self.n_steps)[None, :] < spec["t_end"][:, None]
            x = x + jr.normal(key, x.shape) * first.input_noise_std * live[..., None]
        rule_index = jnp.asarray([t.rule_index for t in self.tasks], dtype=jnp.int32)
        return Batch(x, y, m, {**spec, "rule": rule_index[ids]})

    def sample_each(self, key: PRNGKeyArray, n_per_rule: int) -> Batch:
        """``n_per_rule`` trials of every rule, grouped by rule (``task_id`` 0, 0, ..., 1, ...),
        in batches of 32 that each draw their own timing (the reference's evaluation): batch ``j``
        of rule ``i`` is ``spec_of`` with all ids ``i``, rendered with noise, from
        ``split(fold_in(key, i), n_batches)[j]`` (its halves for the trials and the noise); when
        32 does not divide ``n_per_rule`` the last batch's first trials are kept. One compiled
        program of 32 trials serves every rule and size."""
        n_per_rule = check_positive_int("n_per_rule", n_per_rule)
        n_batches = -(-n_per_rule // 32)
        parts = []
        for i in range(len(self.tasks)):
            ids = jnp.full((32,), i, dtype=jnp.int32)
            for j, k in enumerate(jr.split(jr.fold_in(key, i), n_batches)):
                b = _render_ids(self, k, ids)
                size = min(32, n_per_rule - 32 * j)
                parts.append(b if size == 32 else b.take(slice(0, size)))
        return jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *parts)

    def evaluation_batches(self, key: PRNGKeyArray) -> dict[str, Batch]:
        """``test``: :meth:`sample_each` with ``n_eval`` trials per rule."""
        return {"test": self.sample_each(key, self.n_eval)}

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, float]:
        """Every rule's ``perf``, ``perf_strict`` and ``loss`` (``"<rule>/<metric>"``, computed by
        :meth:`YangTask.evaluate` on its trials), ``n_trials/<rule>``, and the overall ``perf``
        and ``perf_strict`` (the fraction of all trials; with equal trials per rule, the mean
        over rules) and ``loss`` (the masked MSE of the whole batch)."""
        return self._mixed().evaluate(outputs, batch)


@eqx.filter_jit
def _render_ids(task: YangMultitask, key, ids) -> Batch:
    k_spec, k_noise = jr.split(key)
    return task.render(task.spec_of(k_spec, ids), k_noise)


@eqx.filter_jit
def _sample_multi(task: YangMultitask, key, batch_size: int) -> Batch:
    k_spec, k_noise = jr.split(key)
    return task.render(task.trial_spec(k_spec, batch_size), k_noise)
