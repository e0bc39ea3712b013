"""Solution degeneracy across populations of trained networks (paper 004, Huang et al.:
"Measuring and Controlling Solution Degeneracy across Task-Trained Recurrent Neural Networks"),
and whether neuromodulation changes it.

The paper trains 3,400 RNNs on flip-flop memory, sine-wave generation, delayed discrimination and
path integration while varying task complexity, learning regime, network size and
regularisation, and reports that "higher task complexity and stronger feature learning reduce
degeneracy in neural dynamics but increase it in weight space, with mixed effects on behavior",
while "larger networks and structural regularization reduce degeneracy at all three levels".
This module trains such populations (one run directory per network, a grid of runs:
:func:`nmrnn.experiments.grid.run_grid`, with workers and ensembles), measures their degeneracy
with :mod:`nmrnn.analysis.degeneracy`, and decides each clause with a bootstrap over networks.
It also asks a question the paper did not: are NM-RNNs and e-nmRNNs, at the parameter count of
the vanilla RNN of the base condition, more or less degenerate than it?

Conditions (the knobs)
----------------------
One factor at a time around a *base* condition (vanilla leaky RNN; :class:`DegeneracySettings`
gives the levels of each profile): every knob's levels include the base level, so the base
population is trained once and shared by all four knobs.

* **complexity**, per task (:data:`TASK_SETUPS`): the number of flip-flop bits, of sine
  frequencies, of delayed-discrimination frequency pairs (the first k of Romo's five) and of
  path-integration dimensions (1 or 2).
* **regime** (learning regime, from lazy to rich): the initial gain ``g`` of the recurrent
  weights, ``W_0 ~ N(0, g^2 / N)`` (``LeakyRNN(gain=g)``); a large initial connectivity trains
  in the lazy regime (the weights and the representation move little relative to where they
  start), a small one in the rich, feature-learning regime (Liu et al. 2024, "How connectivity
  structure shapes rich and lazy learning in neural circuits"). **Choice:** the paper's exact
  parametrisation of feature learning is not restated in its abstract; the initial gain is the
  knob this library's models expose. Levels are listed from lazy (large g) to rich (small g),
  and whether they do differ in feature learning is measured, not assumed: the representation
  change ``1 - CKA(states before training, states after)`` on the held-out probe trials, and
  the relative change of the recurrent weights ``||W_T - W_0|| / ||W_0||``.
* **size**: the number of neurons N.
* **regularisation**: ``"none"``; ``"l2"`` / ``"l1"``: ``TrainConfig.weight_l2`` /
  ``weight_l1`` on every parameter (strengths in the settings); ``"lowrank"``: a rank-r
  low-rank RNN (:class:`~nmrnn.models.LowRankRNN`, ``W = L R^T / N``) instead of the full
  ``W``. Every level keeps AdamW's decoupled weight decay of 1e-4 (the library's default).
* **model** (the question of this library): NM-RNN and e-nmRNN at the base condition of each
  task, each with the smallest hidden size whose parameter count reaches the base vanilla RNN's
  (:func:`nmrnn.models.match_size`); time constants: the vanilla RNN's ``tau`` for the neurons,
  ``10 tau`` for the neuromodulatory state.

Every network of a condition has its own seed (``1000 * seed + k``). Time is in steps; the
vanilla RNN's ``tau`` per task is in :data:`TASK_SETUPS`.

Measures
--------
Computed on the networks of a condition that learned the task: normalised held-out loss
(masked MSE over the mean squared target) at most :data:`LOSS_THRESHOLD` (the smoke profile counts
every network: it decides nothing). For each pair of them
(:mod:`nmrnn.analysis.degeneracy`): behaviour on the held-out and out-of-distribution probes
(:func:`~nmrnn.analysis.degeneracy.probe_batches`), DSA, Procrustes and CKA on the held-out
state trajectories, the fixed-point structure at a constant input per task (:data:`TASK_SETUPS`)
and the permutation-matched weight distances. The *degeneracy* of a condition for a measure is
the mean of its pairwise distances. The verdicts use one measure per level, fixed here:
behaviour = the out-of-distribution behaviour distance (``behaviour_ood``), dynamics = DSA
(``dsa``), weights = the matched recurrent-weight distance (``weights_recurrent``); the others
are reported beside them.

Criteria (fixed before any run)
-------------------------------
A clause compares two conditions of one task, a *low* and a *high* level of one knob, and claims
that a measure's degeneracy is lower (or higher) at the high level. Statistic: the difference of
mean pairwise distances, high minus low; its 90% percentile interval from 2000 bootstrap
resamples of each population's networks
(:func:`~nmrnn.analysis.degeneracy.bootstrap_difference`), so each end is a one-sided 95% bound.
The clause **passes** when the interval lies entirely on the claimed side of 0, **fails** when
it lies entirely on the other side, and is **undecided** otherwise, or when either population
has fewer than :data:`MIN_NETWORKS` networks that learned the task (a clause a profile cannot
decide is reported as undecided, never as passed). The clauses, for every task of the profile:

* complexity (low = fewest, high = most): dynamics lower, weights higher;
* regime (low = lazy, the first gain; high = rich, the last gain): dynamics lower, weights
  higher; decided only if the regime levels do differ in feature learning: the rich level's mean
  representation change exceeds the lazy level's with a 90% bootstrap interval above 0 (else
  these clauses are undecided);
* size (low = smallest, high = largest): behaviour, dynamics and weights lower;
* regularisation (low = ``"none"``, high = each other level): behaviour, dynamics and weights
  lower.

Behaviour under complexity and regime ("mixed effects") is reported, not judged. The
reproduction is *reproduced* when every clause passes, *not reproduced* when a decided clause
fails, *undecided* otherwise. The NM-RNN / e-nmRNN comparison is reported (with the same
bootstrap, model minus vanilla, and the models' losses) but not judged: the paper makes no
claim about it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_positive_int, seed_key
from ..analysis import degeneracy as dg
from ..models import count_for, match_size, simulate
from ..tasks import make_task
from ..tasks.standard import ROMO_PAIRS
from ..train import TrainConfig
from ..train.checkpoint import atomic_write_json
from ..train.run import RunSpec, finished_metrics, load_run
from .grid import GridJob, GridOptions, run_grid
from .profiles import Profiles
from .registry import check, to_jsonable

KNOBS = ("complexity", "regime", "size", "regularisation")
REGULARISATIONS = ("none", "l2", "l1", "lowrank")
NM_MODELS = ("nmrnn", "enmrnn")
#: A network has learned its task when its normalised held-out loss is at most this.
LOSS_THRESHOLD = 0.25
#: The fewest networks that learned the task a population needs for a decided clause.
MIN_NETWORKS = 5
#: Bootstrap resamples and the coverage of the interval of every clause.
N_BOOT = 2000
LEVEL = 0.90
#: The measure each clause uses per level of description, and every measure reported.
VERDICT_MEASURES = {"behaviour": "behaviour_ood", "dynamics": "dsa", "weights": "weights_recurrent"}
MEASURES = {
    "behaviour_held_out": "behaviour, held-out (RMS diff / RMS target)",
    "behaviour_ood": "behaviour, out of distribution",
    "dsa": "dynamics: DSA (eigenvalue Wasserstein)",
    "procrustes": "dynamics: Procrustes angle (rad)",
    "cka": "dynamics: 1 - CKA",
    "fixed_points": "fixed-point structure (L1 of counts)",
    "weights_recurrent": "weights: matched recurrent distance",
    "weights_all": "weights: matched distance, all arrays",
}
#: Claimed sign of (high - low) per knob and level of description (+1 higher, -1 lower).
CLAIMS: dict[str, dict[str, int]] = {
    "complexity": {"dynamics": -1, "weights": +1},
    "regime": {"dynamics": -1, "weights": +1},
    "size": {"behaviour": -1, "dynamics": -1, "weights": -1},
    "regularisation": {"behaviour": -1, "dynamics": -1, "weights": -1},
}


# ----------------------------------------------------------------------------------------------
# tasks and settings
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TaskSetup:
    """How a task enters the study: fixed task ``options``, the task options of a complexity
    level (``complexity(k)``) and the levels allowed, what the level counts, the vanilla RNN's
    ``tau`` (steps), and the constant input at which the fixed-point structure is taken."""

    options: dict
    complexity: Callable[[int], dict]
    allowed: tuple[int, ...]
    counts: str
    tau: float
    fixed_point_input: Callable[[Any], np.ndarray]
    fixed_point_note: str


def _zeros(task) -> np.ndarray:
    return np.zeros(task.n_in)


TASK_SETUPS: dict[str, TaskSetup] = {
    "flipflop": TaskSetup({}, lambda k: {"n_bits": k}, tuple(range(1, 9)), "bits", 1.0, _zeros,
                          "no input (the memory periods)"),
    "sinegen": TaskSetup({"n_steps": 150}, lambda k: {"n_freqs": k}, tuple(range(2, 52)), "frequencies", 5.0,
                         lambda t: np.asarray([float(t.input_levels()[t.n_freqs // 2])]),
                         "the cue of the middle trained frequency"),
    "romo": TaskSetup({}, lambda k: {"pairs": [list(p) for p in ROMO_PAIRS[:k]]}, tuple(range(1, 6)),
                      "frequency pairs", 5.0, lambda t: np.asarray([1.0, 0.0]),
                      "fixation on, no stimulus (the delay period)"),
    "pathint": TaskSetup({}, lambda k: {"n_dims": k}, (1, 2), "dimensions", 5.0, _zeros, "zero velocity"),
}


@dataclasses.dataclass(frozen=True)
class DegeneracySettings:
    """The settings of one profile (validated on construction, before any training).

    ``tasks``: registry names from :data:`TASK_SETUPS`; ``networks``: networks per condition;
    ``steps``: training steps per task; ``complexity`` / ``base_complexity``: levels per task
    and the base level; ``gains`` (lazy to rich) / ``base_gain``; ``sizes`` / ``base_size``;
    ``regularisations`` (``"none"`` first, then names from :data:`REGULARISATIONS`) with
    ``l2``, ``l1`` and ``lowrank_rank``; ``nm_models``: neuromodulated models compared at the
    base condition (:data:`NM_MODELS`) with their ``nm_options``; training ``batch_size``,
    ``lr``, ``steps_per_call``, ``checkpoint_every``; ``task_options`` per task on top of
    :data:`TASK_SETUPS`; analysis: ``n_probe_trials``, DSA's ``dsa_delays`` and ``dsa_rank``,
    ``fixed_point_samples`` (0 skips the fixed points) and ``fixed_point_search`` (``"single"``:
    the search from states on the trajectories only; ``"between"``: also between the stable
    points found, which finds more saddles at about a hundred times the cost),
    ``match_restarts``; ``loss_threshold`` (a network has learned its task at a normalised
    held-out loss at most this; the smoke profile counts every network); ``dpi``.
    """

    tasks: tuple[str, ...]
    networks: int
    steps: dict
    complexity: dict
    base_complexity: dict
    gains: tuple[float, ...]
    base_gain: float
    sizes: tuple[int, ...]
    base_size: int
    regularisations: tuple[str, ...]
    l2: float
    l1: float
    lowrank_rank: int
    nm_models: tuple[str, ...]
    nm_options: dict
    batch_size: int
    lr: float
    n_probe_trials: int
    dsa_delays: int
    dsa_rank: int
    fixed_point_samples: int
    match_restarts: int = 8
    fixed_point_search: str = "single"
    loss_threshold: float = LOSS_THRESHOLD
    steps_per_call: int = 250
    checkpoint_every: int = 1000
    task_options: dict = dataclasses.field(default_factory=dict)
    dpi: int = 100

    def __post_init__(self):
        if not self.tasks:
            raise ValueError("the study needs at least one task")
        for t in self.tasks:
            if t not in TASK_SETUPS:
                raise ValueError(f"unknown task {t!r} for the degeneracy study; tasks: {', '.join(TASK_SETUPS)}")
            if t not in self.steps or t not in self.complexity or t not in self.base_complexity:
                raise ValueError(f"task {t!r} needs steps, complexity levels and a base complexity")
            levels = tuple(self.complexity[t])
            bad = [k for k in levels if k not in TASK_SETUPS[t].allowed]
            if bad:
                raise ValueError(f"unknown complexity level(s) {bad} for {t!r}; allowed: {TASK_SETUPS[t].allowed}")
            _levels(f"complexity of {t!r}", levels, self.base_complexity[t])
            check_positive_int(f"steps of {t!r}", self.steps[t])
        if self.networks < dg.MIN_POPULATION:
            raise ValueError(f"networks must be at least {dg.MIN_POPULATION} per condition, got {self.networks}")
        if self.networks > 1000:
            raise ValueError(f"networks must be at most 1000 per condition (seeds 1000 seed + k), got {self.networks}")
        _levels("gains", self.gains, self.base_gain)
        if any(g <= 0 for g in self.gains):
            raise ValueError(f"gains must be positive, got {self.gains}")
        _levels("sizes", self.sizes, self.base_size)
        for n in self.sizes:
            check_positive_int("size", n)
        if not self.regularisations or self.regularisations[0] != "none":
            raise ValueError(f"regularisations must start with 'none' (the base), got {self.regularisations}")
        bad = [r for r in self.regularisations if r not in REGULARISATIONS]
        if bad:
            raise ValueError(f"unknown regularisation level(s) {bad}; levels: {', '.join(REGULARISATIONS)}")
        _levels("regularisations", self.regularisations, "none")
        if "lowrank" in self.regularisations and self.lowrank_rank > self.base_size:
            raise ValueError(f"lowrank_rank={self.lowrank_rank} exceeds the base size {self.base_size}")
        bad = [m for m in self.nm_models if m not in NM_MODELS]
        if bad:
            raise ValueError(f"unknown neuromodulated model(s) {bad}; models: {', '.join(NM_MODELS)}")
        for name in ("batch_size", "n_probe_trials", "dsa_delays", "dsa_rank", "lowrank_rank"):
            check_positive_int(name, getattr(self, name))
        if self.fixed_point_search not in ("single", "between"):
            raise ValueError(f"fixed_point_search must be 'single' or 'between', got {self.fixed_point_search!r}")
        if not self.loss_threshold > 0:
            raise ValueError(f"loss_threshold must be positive, got {self.loss_threshold!r}")

    def levels(self, task: str) -> dict[str, tuple]:
        """The levels of every knob for ``task``."""
        return {"complexity": tuple(self.complexity[task]), "regime": tuple(self.gains),
                "size": tuple(self.sizes), "regularisation": tuple(self.regularisations)}


def _levels(name: str, levels, base) -> None:
    levels = tuple(levels)
    if len(levels) < 2:
        raise ValueError(f"{name} needs at least two levels, got {levels}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"{name} repeats a level: {levels}")
    if base not in levels:
        raise ValueError(f"{name}: the base level {base!r} is not among the levels {levels}")


# ----------------------------------------------------------------------------------------------
# conditions
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Condition:
    """One population: a task at a complexity level, a model of ``n_hidden`` neurons with its
    options, and the training options; ``key`` names its run directories."""

    task: str
    complexity: int
    model: str
    n_hidden: int
    model_options: dict
    task_options: dict
    train_options: dict
    key: str

    def run_spec(self, cfg: DegeneracySettings, seed: int) -> RunSpec:
        train = TrainConfig(
            steps=cfg.steps[self.task], lr=cfg.lr, batch_size=cfg.batch_size, noise=False,
            steps_per_call=min(cfg.steps_per_call, cfg.steps[self.task]), checkpoint_every=cfg.checkpoint_every,
            **self.train_options,
        )  # fmt: skip
        return RunSpec(self.model, self.n_hidden, self.task, train, seed, dict(self.model_options),
                       dict(self.task_options))


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _condition(cfg: DegeneracySettings, task: str, *, complexity=None, gain=None, size=None, reg="none",
               model="vanilla") -> Condition:
    setup = TASK_SETUPS[task]
    complexity = cfg.base_complexity[task] if complexity is None else complexity
    gain = cfg.base_gain if gain is None else gain
    size = cfg.base_size if size is None else size
    task_options = {**setup.options, **cfg.task_options.get(task, {}), **setup.complexity(complexity)}
    tau = setup.tau
    train: dict[str, Any] = {}
    if model == "vanilla" and reg == "lowrank":
        model, options = "lowrank", {"tau": tau, "rank": cfg.lowrank_rank}
        name = f"lowrank{cfg.lowrank_rank}-N{size}"
    elif model == "vanilla":
        options = {"tau": tau, "gain": float(gain)}
        name = f"vanilla-N{size}-g{_fmt(float(gain))}"
    else:
        options = dict(cfg.nm_options.get(model, {}))
        options.update({"tau_x": tau, "tau_z": 10 * tau} if model == "nmrnn" else {"tau_r": tau, "tau_n": 10 * tau})
        task_obj = make_task(task, **task_options)
        base = _condition(cfg, task, complexity=complexity)
        target = count_for("vanilla", n_in=task_obj.n_in, n_out=task_obj.n_out, n_hidden=base.n_hidden,
                           **base.model_options)
        size = match_size(model, target, n_in=task_obj.n_in, n_out=task_obj.n_out, **options)
        name = f"{model}-N{size}"
    if reg == "l2":
        train["weight_l2"] = cfg.l2
        name += f"-l2_{_fmt(cfg.l2)}"
    elif reg == "l1":
        train["weight_l1"] = cfg.l1
        name += f"-l1_{_fmt(cfg.l1)}"
    key = f"{task}/c{complexity}-{name}"
    return Condition(task, complexity, model, int(size), options, task_options, train, key)


def design(cfg: DegeneracySettings) -> dict[tuple, Condition]:
    """Every cell of the study: ``(task, knob, level) -> Condition`` for the four knobs, and
    ``(task, "model", name) -> Condition`` for the vanilla RNN and the neuromodulated models at
    the base condition. Cells at a knob's base level are the same condition."""
    cells: dict[tuple, Condition] = {}
    for task in cfg.tasks:
        for k in cfg.complexity[task]:
            cells[(task, "complexity", k)] = _condition(cfg, task, complexity=k)
        for g in cfg.gains:
            cells[(task, "regime", g)] = _condition(cfg, task, gain=g)
        for n in cfg.sizes:
            cells[(task, "size", n)] = _condition(cfg, task, size=n)
        for r in cfg.regularisations:
            cells[(task, "regularisation", r)] = _condition(cfg, task, reg=r)
        cells[(task, "model", "vanilla")] = _condition(cfg, task)
        for m in cfg.nm_models:
            cells[(task, "model", m)] = _condition(cfg, task, model=m)
    return cells


def grid_jobs(cfg: DegeneracySettings, seed: int) -> tuple[list[GridJob], dict[str, Condition]]:
    """One run per network of every distinct condition (``runs/<condition>/net<k>``); the
    networks of a condition form one group (one ensemble when workers train ensembles)."""
    conditions: dict[str, Condition] = {}
    for c in design(cfg).values():
        conditions.setdefault(c.key, c)
    jobs = [
        GridJob(f"runs/{c.key}/net{k}", c.run_spec(cfg, 1000 * seed + k), c.key)
        for c in conditions.values() for k in range(cfg.networks)
    ]
    return jobs, conditions


# ----------------------------------------------------------------------------------------------
# profiles
# ----------------------------------------------------------------------------------------------

_NM_OPTIONS = {"nmrnn": {"n_nm": 5, "rank": 3}, "enmrnn": {"n_nm": 4, "t_rank": 1}}

PROFILES: Profiles[DegeneracySettings] = Profiles(
    # Seconds: one task, two networks per condition, a few dozen steps, one neuromodulated model;
    # exercises every output (every clause is undecided: two networks cannot decide anything).
    smoke=DegeneracySettings(
        tasks=("flipflop",), networks=2, steps={"flipflop": 40}, complexity={"flipflop": (1, 2)},
        base_complexity={"flipflop": 2}, gains=(2.0, 1.0), base_gain=1.0, sizes=(6, 8), base_size=8,
        regularisations=("none", "l2"), l2=1e-4, l1=1e-5, lowrank_rank=2, nm_models=("nmrnn",),
        nm_options=_NM_OPTIONS, batch_size=8, lr=1e-2, n_probe_trials=4, dsa_delays=2, dsa_rank=4,
        fixed_point_samples=8, match_restarts=1, loss_threshold=10.0, steps_per_call=20, checkpoint_every=40,
        task_options={"flipflop": {"n_steps": 30}}, dpi=40,
    ),
    # Minutes: flip-flop and path integration, 8 networks per condition, two or three levels per
    # knob and both neuromodulated models (10 conditions per task: 160 networks).
    quick=DegeneracySettings(
        tasks=("flipflop", "pathint"), networks=8, steps={"flipflop": 1500, "pathint": 2000},
        complexity={"flipflop": (1, 3), "pathint": (1, 2)}, base_complexity={"flipflop": 3, "pathint": 2},
        gains=(2.0, 1.0, 0.25), base_gain=1.0, sizes=(16, 32, 64), base_size=32,
        regularisations=("none", "l2", "lowrank"), l2=1e-4, l1=1e-5, lowrank_rank=3, nm_models=NM_MODELS,
        nm_options=_NM_OPTIONS, batch_size=32, lr=1e-2, n_probe_trials=32, dsa_delays=5, dsa_rank=10,
        fixed_point_samples=64,
    ),
    # The published scale: four tasks, 50 networks per condition, four or five levels per knob
    # (62 conditions: 3,100 networks).
    paper=DegeneracySettings(
        tasks=("flipflop", "sinegen", "romo", "pathint"), networks=50,
        steps={"flipflop": 5000, "sinegen": 10000, "romo": 10000, "pathint": 8000},
        complexity={"flipflop": (1, 2, 3, 4), "sinegen": (2, 4, 8, 16), "romo": (1, 2, 3, 5), "pathint": (1, 2)},
        base_complexity={"flipflop": 3, "sinegen": 4, "romo": 5, "pathint": 2},
        gains=(2.0, 1.5, 1.0, 0.5, 0.25), base_gain=1.0, sizes=(16, 32, 64, 128), base_size=64,
        regularisations=("none", "l2", "l1", "lowrank"), l2=1e-4, l1=1e-5, lowrank_rank=3,
        nm_models=NM_MODELS, nm_options=_NM_OPTIONS, batch_size=64, lr=1e-2, n_probe_trials=64,
        dsa_delays=10, dsa_rank=20, fixed_point_samples=256, fixed_point_search="between",
    ),
)


# ----------------------------------------------------------------------------------------------
# analysis of one condition
# ----------------------------------------------------------------------------------------------


def normalised_loss(outputs, batch) -> float:
    """Masked MSE of ``outputs`` divided by the masked mean squared target."""
    w = np.asarray(batch.mask, dtype=np.float64)
    t = np.asarray(batch.targets, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    return float((w * (y - t) ** 2).sum() / max((w * t**2).sum(), 1e-30))


def analyse_condition(
    cond: Condition, run_dirs: list[Path], probes: dict, cfg: DegeneracySettings, *, key
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The measures of one population: per-network numbers and, over the networks that learned
    the task, every pairwise distance matrix (returned separately) and its degeneracy."""
    t0 = time.perf_counter()
    loaded = [load_run(d) for d in run_dirs]
    models = [m for _, m, _ in loaded]
    task = loaded[0][2]
    held, ood = probes["held_out"], probes["ood"]
    states, outputs = dg.population_states(models, held.inputs)
    losses = [normalised_loss(o, held) for o in outputs]
    ok = [i for i, v in enumerate(losses) if np.isfinite(v) and v <= cfg.loss_threshold]
    initial = [spec.build()[0] for spec, _, _ in loaded]
    init_states, _ = dg.population_states(initial, held.inputs)
    rep_change = [float(dg.cka_distances([a, b])[0, 1]) for a, b in zip(init_states, states, strict=True)]
    weight_change = [dg.relative_weight_change(dg.weight_view(a), dg.weight_view(b))
                     for a, b in zip(initial, models, strict=True)]
    info: dict[str, Any] = {
        "model": cond.model, "n_hidden": cond.n_hidden, "model_options": cond.model_options,
        "task_options": cond.task_options, "train_options": cond.train_options,
        "parameters": count_for(cond.model, n_in=task.n_in, n_out=task.n_out, n_hidden=cond.n_hidden,
                                **cond.model_options),
        "n_networks": len(models), "n_learned": len(ok), "normalised_loss": losses,
        "representation_change": rep_change, "relative_weight_change": weight_change,
    }
    mats: dict[str, np.ndarray] = {}
    if cfg.fixed_point_samples > 0:
        fp_input = jnp.asarray(TASK_SETUPS[cond.task].fixed_point_input(task), jnp.float32)
        counts = []
        for i, m in enumerate(models):
            traj = simulate(m, held.inputs)
            counts.append(dg.fixed_point_counts(m, traj.states, fp_input, key=jr.fold_in(key, i),
                                                n_samples=cfg.fixed_point_samples, search=cfg.fixed_point_search))
        info["fixed_point_counts"] = np.stack(counts)
    if len(ok) >= dg.MIN_POPULATION:
        sel = [models[i] for i in ok]
        sel_states = [states[i] for i in ok]
        _, ood_out = dg.population_states(sel, ood.inputs)
        mats["behaviour_held_out"] = dg.behaviour_distances(outputs[ok], held.mask, targets=held.targets)
        mats["behaviour_ood"] = dg.behaviour_distances(ood_out, ood.mask, targets=ood.targets)
        mats["dsa"] = dg.dsa_distances(sel_states, n_delays=cfg.dsa_delays, rank=cfg.dsa_rank)
        mats["procrustes"] = dg.procrustes_distances(sel_states)
        mats["cka"] = dg.cka_distances(sel_states)
        if "fixed_point_counts" in info:
            mats["fixed_points"] = dg.fixed_point_distances(info["fixed_point_counts"][ok])
        w = dg.weight_distances([dg.weight_view(m) for m in sel], seed=int(jr.randint(key, (), 0, 2**31 - 1)),
                                restarts=cfg.match_restarts)
        mats["weights_recurrent"], mats["weights_all"] = w.recurrent, w.all
    info["degeneracy"] = {name: dg.population_degeneracy(d)._asdict() for name, d in mats.items()}
    info["learned"] = ok
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return info, mats


# ----------------------------------------------------------------------------------------------
# clauses
# ----------------------------------------------------------------------------------------------


def bootstrap_mean_difference(low: Any, high: Any, *, seed: int, n_boot: int = N_BOOT, level: float = LEVEL):
    """``(mean(high) - mean(low), interval low end, interval high end)`` for per-network values,
    networks resampled with replacement (the central ``level`` percentile interval)."""
    a, b = np.asarray(low, float), np.asarray(high, float)
    if a.ndim != 1 or b.ndim != 1 or a.size < 2 or b.size < 2:
        raise ValueError(f"bootstrap_mean_difference needs two 1-D samples of at least 2, got {a.shape}, {b.shape}")
    rng = np.random.default_rng(seed)
    diff = rng.choice(b, (n_boot, b.size)).mean(1) - rng.choice(a, (n_boot, a.size)).mean(1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(diff, [tail, 1 - tail])
    return float(b.mean() - a.mean()), float(lo), float(hi)


def decide(interval: tuple[float, float], sign: int) -> tuple[bool, bool]:
    """``(passed, decided)`` of a clause claiming ``sign * (high - low) > 0`` from the interval
    of ``high - low``: passed when it lies on the claimed side of 0, decided (and failed) when it
    lies on the other side, undecided when it holds 0."""
    lo, hi = interval
    if (sign > 0 and lo > 0) or (sign < 0 and hi < 0):
        return True, True
    if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
        return False, True
    return False, False


def _clause(name, low_key, high_key, measure, sign, mats, infos, seed, blocked: str | None = None):
    d_low, d_high = mats[low_key].get(measure), mats[high_key].get(measure)
    n_low, n_high = infos[low_key]["n_learned"], infos[high_key]["n_learned"]
    word = "higher" if sign > 0 else "lower"
    criterion = (f"mean pairwise {measure} {word} at the high level: the 90% bootstrap interval of high - low "
                 f"{'above' if sign > 0 else 'below'} 0, with >= {MIN_NETWORKS} networks that learned the task per level")
    value: dict[str, Any] = {"networks_learned": [n_low, n_high]}
    if d_low is None or d_high is None:
        return check(name, value, False, criterion, decided=False)
    boot = dg.bootstrap_difference(d_low, d_high, seed=seed, n_boot=N_BOOT, level=LEVEL)
    value.update(low=float(dg.pairwise_values(d_low).mean()), high=float(dg.pairwise_values(d_high).mean()),
                 difference=boot.difference, interval=[boot.low, boot.high])
    passed, decided = decide((boot.low, boot.high), sign)
    if min(n_low, n_high) < MIN_NETWORKS:
        decided = False
    if blocked:
        value["blocked"] = blocked
        decided = False
    return check(name, value, passed, criterion, decided=decided)


def clauses(cfg: DegeneracySettings, cells, infos, mats, seed: int) -> tuple[list[dict], dict]:
    """The checks of every task and knob, and the regime preconditions (see the module
    docstring)."""
    checks, preconditions = [], {}
    counter = 0
    for task in cfg.tasks:
        levels = cfg.levels(task)
        pairs = {
            "complexity": [(min(levels["complexity"]), max(levels["complexity"]))],
            "regime": [(levels["regime"][0], levels["regime"][-1])],
            "size": [(min(levels["size"]), max(levels["size"]))],
            "regularisation": [("none", r) for r in levels["regularisation"][1:]],
        }
        lazy, rich = cells[(task, "regime", pairs["regime"][0][0])].key, cells[(task, "regime", pairs["regime"][0][1])].key
        a = [infos[lazy]["representation_change"][i] for i in infos[lazy]["learned"]]
        b = [infos[rich]["representation_change"][i] for i in infos[rich]["learned"]]
        blocked = None
        if len(a) >= 2 and len(b) >= 2:
            diff, lo, hi = bootstrap_mean_difference(a, b, seed=seed + 7919)
            preconditions[task] = {"representation_change_lazy": float(np.mean(a)),
                                   "representation_change_rich": float(np.mean(b)),
                                   "difference": diff, "interval": [lo, hi]}
            if not lo > 0:
                blocked = "the regime levels do not differ in representation change (rich - lazy interval holds 0 or is below)"
        else:
            blocked = "too few networks learned the task to compare the regimes' representation change"
            preconditions[task] = {"blocked": blocked}
        for knob, level_pairs in pairs.items():
            for lo_level, hi_level in level_pairs:
                low_key, high_key = cells[(task, knob, lo_level)].key, cells[(task, knob, hi_level)].key
                for level_name, sign in CLAIMS[knob].items():
                    measure = VERDICT_MEASURES[level_name]
                    counter += 1
                    name = f"{task}: {knob} {_fmt(lo_level)} -> {_fmt(hi_level)}, {level_name} degeneracy {'higher' if sign > 0 else 'lower'}"
                    checks.append(_clause(name, low_key, high_key, measure, sign, mats, infos, seed + counter,
                                          blocked if knob == "regime" else None))
    return checks, preconditions


def nm_comparison(cfg: DegeneracySettings, cells, infos, mats, seed: int) -> dict[str, Any]:
    """Per task and neuromodulated model: its degeneracy minus the base vanilla RNN's, with the
    bootstrap interval, for every measure; the models' parameter counts and losses."""
    out: dict[str, Any] = {}
    for t_i, task in enumerate(cfg.tasks):
        base = cells[(task, "model", "vanilla")].key
        out[task] = {}
        for m_i, m in enumerate(cfg.nm_models):
            key = cells[(task, "model", m)].key
            entry: dict[str, Any] = {
                "parameters": [infos[base]["parameters"], infos[key]["parameters"]],
                "networks_learned": [infos[base]["n_learned"], infos[key]["n_learned"]],
                "median_normalised_loss": [float(np.median(infos[base]["normalised_loss"])),
                                           float(np.median(infos[key]["normalised_loss"]))],
            }
            for j, measure in enumerate(MEASURES):
                if measure in mats[base] and measure in mats[key]:
                    b = dg.bootstrap_difference(mats[base][measure], mats[key][measure],
                                                seed=seed + 104729 * (t_i + 1) + 1009 * m_i + j)
                    side = "more" if b.low > 0 else "less" if b.high < 0 else "undecided"
                    if min(entry["networks_learned"]) < MIN_NETWORKS:
                        side = "undecided"
                    entry[measure] = {"vanilla": float(dg.pairwise_values(mats[base][measure]).mean()),
                                      m: float(dg.pairwise_values(mats[key][measure]).mean()),
                                      "difference": b.difference, "interval": [b.low, b.high],
                                      "more_or_less_degenerate": side}
            out[task][m] = entry
    return out


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def run(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """The degeneracy reproduction (registry format): train every population as one grid of
    runs (``grid``: workers, shared storage, ensembles), measure, decide, plot."""
    from ..plotting.degeneracy import plot_knobs, plot_models

    cfg = PROFILES[profile]
    out_dir = Path(out_dir)
    cells = design(cfg)
    jobs, conditions = grid_jobs(cfg, seed)
    to_train = sum(finished_metrics(out_dir / j.run_dir, j.spec) is None for j in jobs)
    t0 = time.perf_counter()
    run_grid(jobs, out_dir, **(grid or GridOptions()).kwargs(), log=None)
    train_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    infos: dict[str, dict] = {}
    mats: dict[str, dict] = {}
    probes: dict[str, dict] = {}
    base_key = seed_key(seed)
    for i, (ckey, cond) in enumerate(conditions.items()):
        pkey = f"{cond.task}/c{cond.complexity}"
        if pkey not in probes:
            task_obj = make_task(cond.task, **cond.task_options)
            probes[pkey] = dg.probe_batches(task_obj, jr.fold_in(base_key, 1 + cfg.tasks.index(cond.task)),
                                            cfg.n_probe_trials)
        dirs = [out_dir / "runs" / ckey / f"net{k}" for k in range(cfg.networks)]
        infos[ckey], mats[ckey] = analyse_condition(cond, dirs, probes[pkey], cfg, key=jr.fold_in(base_key, 10_000 + i))
        path = out_dir / "analysis" / f"{ckey}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **mats[ckey])
        atomic_write_json(path.with_suffix(".json"), to_jsonable(_public(infos[ckey])))
    analysis_seconds = time.perf_counter() - t1

    checks, preconditions = clauses(cfg, cells, infos, mats, seed)
    nm = nm_comparison(cfg, cells, infos, mats, seed)
    figures = []
    for task in cfg.tasks:
        table = {}
        described = {"complexity": f"complexity ({TASK_SETUPS[task].counts})", "regime": "regime (initial gain, lazy to rich)",
                     "size": "size (neurons)", "regularisation": "regularisation"}
        for knob, levels in cfg.levels(task).items():
            entry: dict[str, Any] = {"levels": [_fmt(v) for v in levels]}
            for measure in MEASURES:
                ds = [infos[cells[(task, knob, v)].key]["degeneracy"].get(measure) for v in levels]
                entry[measure] = {"mean": [None if d is None else d["mean"] for d in ds],
                                  "std": [None if d is None else d["std"] for d in ds],
                                  "n": [None if d is None else d["n_networks"] for d in ds]}
            table[described[knob]] = entry
        rel = f"figures/{task}_knobs.png"
        plot_knobs(table, MEASURES, out_dir / rel, title=f"{task}: degeneracy against each knob", dpi=cfg.dpi)
        figures.append(rel)
        models = {m: infos[cells[(task, "model", m)].key]["degeneracy"] for m in ("vanilla", *cfg.nm_models)}
        rel = f"figures/{task}_models.png"
        plot_models(models, MEASURES, out_dir / rel, title=f"{task}: base condition, equal parameters", dpi=cfg.dpi)
        figures.append(rel)

    metrics = {
        "wall_seconds": {"training": round(train_seconds, 1), "analysis": round(analysis_seconds, 1)},
        "networks": len(jobs),
        "networks_trained_now": to_train,
        "networks_per_minute": round(to_train / max(train_seconds, 1e-9) * 60, 2) if to_train else None,
        "conditions": {k: _brief(v) for k, v in infos.items()},
        "regime_preconditions": preconditions,
        "nm_comparison": nm,
    }
    settings = {
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("nm_options",)},
        "nm_options": cfg.nm_options,
        "min_networks": MIN_NETWORKS, "n_boot": N_BOOT, "level": LEVEL,
        "verdict_measures": VERDICT_MEASURES,
        "ood": {t: dg.ood_description(make_task(t, **_condition(cfg, t).task_options)) for t in cfg.tasks},
        "fixed_point_input": {t: TASK_SETUPS[t].fixed_point_note for t in cfg.tasks},
        "vanilla_tau": {t: TASK_SETUPS[t].tau for t in cfg.tasks},
        "conditions": {k: f"{c.model} N={c.n_hidden} {c.model_options} {c.train_options}" for k, c in conditions.items()},
    }
    return {
        "checks": checks,
        "metrics": to_jsonable(metrics),
        "settings": to_jsonable(settings),
        "figures": figures,
        "notes": _notes(cfg, infos, cells, nm, preconditions, train_seconds, len(jobs), to_train),
        "criterion": ("every clause (complexity and feature learning: dynamics lower, weights higher; size and "
                      "structural regularisation: behaviour, dynamics and weights lower) has a 90% bootstrap "
                      "interval of high - low on the claimed side of 0, with >= 5 networks that learned the task per level"),
    }


def _public(info: dict) -> dict:
    """Every number of a condition (per-network lists, arrays as lists): ``analysis/<condition>.json``."""
    out = dict(info)
    if "fixed_point_counts" in out:
        out["fixed_point_counts"] = np.asarray(out["fixed_point_counts"]).tolist()
    return out


def _brief(info: dict) -> dict:
    """A condition's numbers for the summary: sizes, how many networks learned the task, medians
    of the per-network numbers and the degeneracy (mean and spread) of every measure."""
    learned = info["learned"]
    med = lambda key: float(np.median([info[key][i] for i in learned])) if learned else None  # noqa: E731
    out = {
        "model": info["model"], "n_hidden": info["n_hidden"], "parameters": info["parameters"],
        "networks_learned": f"{info['n_learned']}/{info['n_networks']}",
        "median_normalised_loss": float(np.median(info["normalised_loss"])),
        "median_representation_change": med("representation_change"),
        "median_relative_weight_change": med("relative_weight_change"),
        "degeneracy": {m: f"{d['mean']:.4g} +- {d['std']:.2g}" for m, d in info["degeneracy"].items()},
    }
    if "fixed_point_counts" in info and learned:
        counts = np.asarray(info["fixed_point_counts"])[learned]
        out["median_fixed_points"] = dict(zip(dg.STABILITY_LABELS, np.median(counts, 0).tolist(), strict=True))
    return out


def _median_of(infos, cells, task, gain) -> str:
    info = infos[cells[(task, "regime", gain)].key]
    values = [info["relative_weight_change"][i] for i in info["learned"]]
    return f"{np.median(values):.3f}" if values else "n/a"


def _notes(cfg, infos, cells, nm, preconditions, train_seconds, n_jobs, to_train) -> str:
    speed = f" ({to_train / max(train_seconds, 1e-9) * 60:.1f} per minute)" if to_train else ""
    lines = [
        f"{n_jobs} networks, {to_train} of them trained by this run in {train_seconds:.0f} s{speed} and "
        f"{n_jobs - to_train} reused from finished run directories. "
        f"A network counts as having learned its task at a normalised held-out loss <= {cfg.loss_threshold}; "
        "degeneracy is measured over those networks only.",
        "",
        "Out-of-distribution probes: " + "; ".join(
            f"{t}: {dg.ood_description(make_task(t, **_condition(cfg, t).task_options))}" for t in cfg.tasks) + ".",
        "Fixed-point structure at: " + "; ".join(f"{t}: {TASK_SETUPS[t].fixed_point_note}" for t in cfg.tasks) + ".",
        "",
        "Networks that learned the task, per condition: " + "; ".join(
            f"{k} {v['n_learned']}/{v['n_networks']}" for k, v in infos.items()) + ".",
        "",
        "Feature learning of the regime levels, lazy -> rich (the clauses' precondition: mean representation "
        "change 1 - CKA of the states before and after training; beside it the median relative change of the "
        "recurrent weights): " + "; ".join(
            f"{t}: {p.get('representation_change_lazy', float('nan')):.3f} -> "
            f"{p.get('representation_change_rich', float('nan')):.3f} "
            f"(weights {_median_of(infos, cells, t, cfg.gains[0])} -> {_median_of(infos, cells, t, cfg.gains[-1])})"
            for t, p in preconditions.items()) + ".",
        "",
        "Neuromodulated models at the base condition, at the vanilla RNN's parameter count "
        "(degeneracy of the model minus the vanilla RNN's; 90% bootstrap interval):",
    ]
    for task, models in nm.items():
        for m, e in models.items():
            parts = []
            for measure in ("behaviour_ood", "dsa", "procrustes", "weights_all"):
                if measure in e:
                    x = e[measure]
                    parts.append(f"{measure} {x['difference']:+.3g} [{x['interval'][0]:+.3g}, {x['interval'][1]:+.3g}] "
                                 f"({x['more_or_less_degenerate']})")
            lines.append(f"- {task}, {m} ({e['parameters'][1]} vs {e['parameters'][0]} parameters; median normalised "
                         f"loss {e['median_normalised_loss'][1]:.3g} vs {e['median_normalised_loss'][0]:.3g}; learned "
                         f"{e['networks_learned'][1]} vs {e['networks_learned'][0]}): " + ("; ".join(parts) or "too few networks learned the task"))
    return "\n".join(lines)


__all__ = [
    "CLAIMS",
    "Condition",
    "DegeneracySettings",
    "KNOBS",
    "LOSS_THRESHOLD",
    "MEASURES",
    "MIN_NETWORKS",
    "PROFILES",
    "REGULARISATIONS",
    "TASK_SETUPS",
    "TaskSetup",
    "VERDICT_MEASURES",
    "analyse_condition",
    "bootstrap_mean_difference",
    "clauses",
    "decide",
    "design",
    "grid_jobs",
    "nm_comparison",
    "normalised_loss",
    "run",
]
