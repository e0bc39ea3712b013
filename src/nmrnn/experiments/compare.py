"""Parameter-matched model comparisons across seeds (``nmrnn compare``).

Every (model, seed) pair is an ordinary run directory under ``<out>/runs/<label>_seed<k>``, so an
interrupted comparison resumes where it stopped (finished runs are reused, unfinished ones resume
from their last checkpoint). The comparison writes:

* ``summary.json``: the settings, every per-seed number, and the per-model mean and s.e.m.;
* ``table.csv``: the printed table;
* ``figures/``: learning curves, plus the task's own figures (MWG: output ramps on trained and
  extrapolated intervals for each model, and the NM-RNN's gains s(t) aligned to the go cue).

Baseline sizes are picked by :func:`nmrnn.models.match_size` to reach the parameter count of the
reference model (the first entry), as the NM-RNN paper does.

A *protocol* names how the models are parametrised and trained:

* ``"standard"`` (default): the library's parametrisation (the paper's equations, e.g. the 1/N of
  the NM-RNN's low-rank term) and one training recipe for every model of a task.
* ``"reference"`` (MWG): the NM-RNN authors' code, lindermanlab/nm-rnn. Every model takes
  :func:`nmrnn.models.reference_options` (unit-norm QR factors, ``W / N`` for the vanilla RNN,
  x0 = 0.1, readout biases from N(0, 1/N), the LSTM's normal initialisation without a readout
  bias), training clips every gradient element to [-1, 1] before AdamW(wd 1e-4), every stage
  starts a fresh optimiser and ends with its best 1000-step block (``select_best_block``; the
  authors' functions also restart the optimiser at every block, ``restart_each_block``, which this
  protocol leaves off as the paper's text does: R1 reproduces without it; ``train=
  {"restart_each_block": True}`` adds it), and each
  model has the learning rate and step count of its script: NM-RNN 10k low-rank + 10k NM + 50k all
  at 1e-2 (``train_nm_rnn_wandb_plots.py``), LR-RNN 70k at 1e-2 (``train_lr_rnn_mwg.py``), vanilla
  RNN 50k at 1e-3 (``train_rnn_mwg.py``; the supplement's text says 1e-2 for every model), LSTM 50k
  at 1e-2 (``train_lstm_mwg.py``). Sizes are the paper's parameter-matched ones (the scripts'
  defaults are N = 100 for every model).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int
from ..models import MODELS, count_for, match_size, reference_options
from ..options import coerce_options, parse_text, split_top
from ..tasks import TASKS, make_task
from ..train.checkpoint import atomic_write_json, atomic_write_text
from ..train.config import Stage, TrainConfig
from ..train.guard import FolderLock
from ..train.run import RunSpec, check_run_path, load_run
from .grid import GridJob, GridOptions, run_grid
from .profiles import PROFILE_NAMES, Profiles, check_profile

PROFILES = PROFILE_NAMES


@dataclass(frozen=True)
class ModelEntry:
    """One model of a comparison. ``n_hidden=None``: matched to the reference's parameter count.

    ``stages``: staged-training schedule as fractions of the profile's step budget per group,
    e.g. ``(("lowrank", 1/7), ("nm", 1/7), ("all", 5/7))``; ``None`` trains everything.
    """

    label: str
    model: str
    n_hidden: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    stages: tuple[tuple[str, float], ...] | None = None
    #: Training options of this model on top of the plan's (e.g. ``{"lr": 1e-3}``).
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskPlan:
    """How a task is compared: its default models and the training budget of each profile."""

    models: tuple[ModelEntry, ...]
    steps: Profiles[int]
    seeds: Profiles[int]
    lr: float = 1e-2
    optimizer: str = "adamw"
    fixed_batch: bool = False
    headline: tuple[str, ...] = ("loss",)
    #: Further :class:`~nmrnn.train.TrainConfig` options for every model of the plan.
    train: dict[str, Any] = field(default_factory=dict)


# The NM-RNN paper's MWG setting (supplement C.3): NM-RNN N=100, M=5, K=3, tau_x=10, tau_z=100;
# stages 10k low-rank + 10k NM + 50k all; baselines matched in parameters and trained 50k steps
# (the reference scripts' iteration count); clip(1) + AdamW(1e-2); full-batch training on the
# 40 trials.
_NM_STAGES = (("lowrank", 1 / 7), ("nm", 1 / 7), ("all", 5 / 7))
_BASELINE = (("all", 5 / 7),)
PLANS: dict[str, TaskPlan] = {
    "mwg": TaskPlan(
        models=(
            ModelEntry("NM-RNN", "nmrnn", 100, {"n_nm": 5, "rank": 3, "tau_x": 10.0, "tau_z": 100.0}, _NM_STAGES),
            ModelEntry("LR-RNN", "lowrank", None, {"rank": 3, "tau": 10.0}, _BASELINE),
            ModelEntry("vanilla RNN", "vanilla", None, {"tau": 10.0}, _BASELINE),
            ModelEntry("LSTM", "lstm", None, {}, _BASELINE),
        ),
        steps=Profiles(smoke=14, quick=7000, paper=70_000),
        # 4 quick seeds: the fewest for which a one-sided rank test can reach p < 0.05 (1/70).
        seeds=Profiles(smoke=1, quick=4, paper=10),
        fixed_batch=True,
    ),
    # Element Finder at ~500 parameters (supplement C.3): the paper's sizes, not re-matched:
    # NM-RNN (M, N, K) = (5, 18, 8) with tau_x=10, tau_z=2 (403 parameters), LR-RNN (N, K) =
    # (50, 4) (501), vanilla N=16 (289), LSTM N=10 (491); Adam(1e-2); 20k steps of fresh batches
    # of 128.
    "eft": TaskPlan(
        models=(
            ModelEntry("NM-RNN", "nmrnn", 18, {"n_nm": 5, "rank": 8, "tau_x": 10.0, "tau_z": 2.0}),
            ModelEntry("LR-RNN", "lowrank", 50, {"rank": 4, "tau": 10.0}),
            ModelEntry("vanilla RNN", "vanilla", 16, {"tau": 10.0}),
            ModelEntry("LSTM", "lstm", 10, {}),
        ),
        steps=Profiles(smoke=10, quick=2000, paper=20_000),
        seeds=Profiles(smoke=1, quick=2, paper=10),
        optimizer="adam",
    ),
}

PROTOCOLS = ("standard", "reference")

_REFERENCE_TRAIN = {"clip_mode": "value", "select_best_block": 1000}
_ALL = (("all", 1.0),)
#: The NM-RNN authors' protocol, per task (see the module docstring).
REFERENCE_PLANS: dict[str, TaskPlan] = {
    "mwg": TaskPlan(
        models=(
            ModelEntry("NM-RNN", "nmrnn", 100,
                       reference_options("nmrnn", n_nm=5, rank=3, tau_x=10.0, tau_z=100.0), _NM_STAGES),
            ModelEntry("LR-RNN", "lowrank", None, reference_options("lowrank", rank=3, tau=10.0), _ALL),
            ModelEntry("vanilla RNN", "vanilla", None, reference_options("vanilla", tau=10.0), _BASELINE, {"lr": 1e-3}),
            ModelEntry("LSTM", "lstm", None, reference_options("lstm"), _BASELINE),
        ),
        steps=Profiles(smoke=14, quick=7000, paper=70_000),
        seeds=Profiles(smoke=1, quick=4, paper=10),
        fixed_batch=True,
        train=_REFERENCE_TRAIN,
    ),
}

DEFAULT_PLAN = TaskPlan(
    models=(
        ModelEntry("NM-RNN", "nmrnn", 100, {"n_nm": 5, "rank": 3}),
        ModelEntry("LR-RNN", "lowrank", None, {"rank": 3}),
        ModelEntry("vanilla RNN", "vanilla", None, {}),
        ModelEntry("GRU", "gru", None, {}),
        ModelEntry("LSTM", "lstm", None, {}),
    ),
    steps=Profiles(smoke=10, quick=1000, paper=20_000),
    seeds=Profiles(smoke=1, quick=2, paper=10),
)


def plan_for(task: str, protocol: str = "standard") -> TaskPlan:
    """The comparison plan of ``task`` under ``protocol`` (``"reference"``: only where the NM-RNN
    authors' code defines one)."""
    check_choice("protocol", protocol, PROTOCOLS)
    if protocol == "reference":
        if task not in REFERENCE_PLANS:
            raise ValueError(
                f"protocol 'reference' (the NM-RNN authors' code) is defined for task(s) "
                f"{', '.join(sorted(REFERENCE_PLANS))}, not {task!r}"
            )
        return REFERENCE_PLANS[task]
    return PLANS.get(task, DEFAULT_PLAN)


def with_reference_options(entry: ModelEntry) -> ModelEntry:
    """A user's model under the reference protocol: the authors' options of its model, under the
    entry's own."""
    return dataclasses.replace(entry, options=reference_options(entry.model, **entry.options))


def parse_model_entry(text: str) -> ModelEntry:
    """``name`` or ``name:N`` or ``name:N:key=value,key=value`` -> ModelEntry (label = text)."""
    bits = text.split(":", 2)
    name = check_choice("model", bits[0], MODELS)
    n_hidden = None
    options: dict[str, Any] = {}
    if len(bits) > 1 and bits[1]:
        if not bits[1].isdigit():
            raise ValueError(f"model size {bits[1]!r} in {text!r} must be a positive integer")
        n_hidden = check_positive_int("n_hidden", int(bits[1]))
    if len(bits) > 2 and bits[2]:
        for kv in _split_options(bits[2]):
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise ValueError(f"bad model option {kv!r} in {text!r}; expected key=value")
            options[k] = parse_text(v)
    options = coerce_options(f"model {name!r}", options, MODELS[name].__init__, skip=_SIZES)
    return ModelEntry(text, name, n_hidden, options)


_SIZES = ("self", "key", "n_in", "n_hidden", "n_out")


def _split_options(text: str) -> list[str]:
    """``a=1,b=[1,2],c=x`` -> ``["a=1", "b=[1,2]", "c=x"]`` (commas inside brackets kept)."""
    return [p for p in split_top(text, ",") if p]


def _stages(entry: ModelEntry, total: int) -> tuple[Stage, ...] | None:
    """The entry's schedule in steps: fractions of ``total`` (rounded; when the fractions sum to
    1 the last stage takes the remainder so the total is exact)."""
    if entry.stages is None:
        return None
    steps = [max(1, int(round(frac * total))) for _, frac in entry.stages]
    if abs(sum(frac for _, frac in entry.stages) - 1.0) < 1e-9:
        steps[-1] = max(1, total - sum(steps[:-1]))
    return tuple(Stage(s, g) for (g, _), s in zip(entry.stages, steps, strict=True))


def resolve_sizes(entries: Sequence[ModelEntry], n_in: int, n_out: int) -> list[tuple[ModelEntry, int, int]]:
    """Fill in matched sizes: (entry, n_hidden, parameter count) for each entry."""
    if entries[0].n_hidden is None:
        raise ValueError("the first (reference) model of a comparison needs an explicit size")
    ref = entries[0]
    target = count_for(ref.model, n_in=n_in, n_out=n_out, n_hidden=ref.n_hidden, **ref.options)
    out = []
    for e in entries:
        n = e.n_hidden or match_size(e.model, target, n_in=n_in, n_out=n_out, **e.options)
        out.append((e, n, count_for(e.model, n_in=n_in, n_out=n_out, n_hidden=n, **e.options)))
    return out


def grid_arguments(grid: GridOptions | None) -> dict[str, Any]:
    """The keyword arguments of :func:`run_compare` that run its grid as ``grid`` says (a
    reproduction's ``--workers``/``--storage``/``--study``)."""
    if grid is None:
        return {}
    kw = grid.kwargs()
    kw["vmap_seeds"] = kw.pop("ensemble")
    return kw


def _mean_sem(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return float(v.mean()), sem


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-").lower()


def run_compare(
    task: str = "mwg",
    *,
    out_dir: str | Path,
    models: Sequence[ModelEntry] | None = None,
    seeds: int | None = None,
    profile: str = "quick",
    protocol: str = "standard",
    steps: int | None = None,
    task_options: dict[str, Any] | None = None,
    progress: bool = False,
    figures: bool = True,
    vmap_seeds: bool | None = None,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    force: bool = False,
    processes: bool | None = None,
    train: Mapping[str, Any] | None = None,
    log=print,
) -> dict[str, Any]:
    """Train every model on ``task`` for each seed, then tabulate and plot. Returns the summary.

    The models x seeds are a grid of fixed runs (:func:`nmrnn.experiments.grid.run_grid`):
    ``workers`` one-CPU processes train them on this machine (``processes``: see
    :class:`~nmrnn.experiments.grid.GridOptions`), and workers on other machines can join
    through ``storage`` / ``study_name``; every seed is an ordinary run directory, so the result
    equals a serial run and an interrupted comparison resumes. ``vmap_seeds``: a worker trains
    the waiting seeds of a model as one vmapped ensemble (:func:`nmrnn.train.fit_ensemble`);
    ``None`` uses the backend's measured default (sequential on CPU). ``protocol``: see the
    module docstring; with ``"reference"``, models given explicitly take the authors' options of
    their model (their own options win) and the plan's training recipe. ``train``: training
    options (:class:`~nmrnn.train.config.TrainConfig` fields) for every model, over the plan's and
    the models' own, e.g. ``{"restart_each_block": True}`` under the reference protocol.
    """
    check_choice("task", task, TASKS)
    check_profile(profile)
    plan = plan_for(task, protocol)
    if models and protocol == "reference":
        models = [with_reference_options(e) for e in models]
    entries = tuple(models) if models else plan.models
    n_seeds = check_positive_int("seeds", seeds) if seeds is not None else plan.seeds[profile]
    total = check_positive_int("steps", steps) if steps is not None else plan.steps[profile]
    task_options = coerce_options(f"task {task!r}", dict(task_options or {}), TASKS[task].__init__)
    entries = tuple(
        dataclasses.replace(e, options=coerce_options(f"model {e.model!r}", e.options, MODELS[e.model].__init__, skip=_SIZES))
        for e in entries
    )
    task_obj = make_task(task, **task_options)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train = TrainConfig.read_options(dict(train or {}))
    for e in entries:
        bad = sorted(set(e.train) - fields)
        if bad:
            raise ValueError(f"unknown training option(s) {bad} for model {e.label!r}")
    configs = [_train_config(plan, e, total, train) for e in entries]  # every option checked here
    sized = resolve_sizes(entries, task_obj.n_in, task_obj.n_out)
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must be distinct, got {labels}")

    grid = dict(GridOptions(workers, storage, study_name, force, vmap_seeds, processes).kwargs(), progress=progress, log=log)
    out = check_run_path(out_dir)
    if log:  # once every argument is accepted
        log(f"comparing on {task} ({profile} profile, {protocol} protocol) -> {out}")
    with FolderLock(out):
        return _run_compare_locked(task, task_obj, plan, sized, configs, train, n_seeds, total, task_options,
                                   profile, protocol, out, figures, grid, log)


def _train_config(plan: TaskPlan, entry: ModelEntry, total: int, train: Mapping[str, Any]) -> TrainConfig:
    """The training recipe of ``entry``: the plan's defaults, then the plan's training options,
    the entry's own and the comparison's ``train``, each over the one before."""
    options = dict(
        steps=total,
        lr=plan.lr,
        optimizer=plan.optimizer,
        fixed_batch=plan.fixed_batch,
        stages=_stages(entry, total),
        steps_per_call=min(500, total),
        checkpoint_every=max(500, total // 10),
    )
    return TrainConfig(**{**options, **plan.train, **entry.train, **train})


def _run_compare_locked(task, task_obj, plan, sized, configs, train, n_seeds, total, task_options, profile,
                        protocol, out, figures, grid, log):
    per_model: dict[str, Any] = {}
    run_dirs: dict[str, list[Path]] = {}
    jobs: list[GridJob] = []
    for (entry, n_hidden, count), cfg in zip(sized, configs, strict=True):
        rel = [f"runs/{slug(entry.label)}_seed{seed}" for seed in range(n_seeds)]
        run_dirs[entry.label] = [out / r for r in rel]
        if log:
            log(f"  {entry.label}: N={n_hidden}, {count} params, {n_seeds} seed(s)")
        jobs += [GridJob(r, RunSpec(entry.model, n_hidden, task, cfg, seed, dict(entry.options), task_options), entry.label)
                 for seed, r in enumerate(rel)]
        per_model[entry.label] = {
            "model": entry.model,
            "n_hidden": n_hidden,
            "params": count,
            "steps": cfg.total_steps,
            "schedule": [[st.group, st.steps] for st in cfg.schedule],
            "options": dict(entry.options),
            "lr": cfg.lr,
            "train": {**plan.train, **entry.train, **train},
        }
    metrics = iter(run_grid(jobs, out, **grid))
    for info in per_model.values():
        info["per_seed"] = [next(metrics) for _ in range(n_seeds)]

    first = next(iter(per_model.values()))["per_seed"][0]
    sets = [k for k, v in first.items() if isinstance(v, dict)]
    rows = []
    for label, info in per_model.items():
        row: dict[str, Any] = {"model": label, "N": info["n_hidden"], "params": info["params"], "steps": info["steps"]}
        for s in sets:
            for metric in plan.headline:
                vals = [m[s][metric] for m in info["per_seed"]]
                mean, sem = _mean_sem(vals)
                info.setdefault("mean", {})[f"{s}/{metric}"] = mean
                info.setdefault("sem", {})[f"{s}/{metric}"] = sem
                row[f"{s} {metric}"] = (mean, sem)
        rows.append(row)

    summary = {
        "task": task,
        "task_options": task_options,
        "profile": profile,
        "protocol": protocol,
        "seeds": n_seeds,
        "steps": total,
        "evaluation_sets": sets,
        "models": per_model,
    }
    if figures:
        summary["figures"] = make_figures(out, run_dirs, task_obj)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.csv", _csv(rows))
    summary["table"] = format_table(rows, n_seeds)
    return summary


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    keys = list(rows[0].keys())
    header = []
    for k in keys:
        header += [f"{k} mean", f"{k} sem"] if isinstance(rows[0][k], tuple) else [k]
    w.writerow(header)
    for r in rows:
        line = []
        for k in keys:
            line += [repr(r[k][0]), repr(r[k][1])] if isinstance(r[k], tuple) else [r[k]]
        w.writerow(line)
    return buf.getvalue()


def format_table(rows: list[dict], n_seeds: int) -> str:
    """A fixed-width text table; metric cells are ``mean ± s.e.m.`` over seeds."""
    keys = list(rows[0].keys())
    cells = [[k if not isinstance(rows[0][k], tuple) else f"{k} (mean ± sem, n={n_seeds})" for k in keys]]
    for r in rows:
        cells.append(
            [f"{r[k][0]:.3e} ± {r[k][1]:.1e}" if isinstance(r[k], tuple) else str(r[k]) for k in keys]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def make_figures(out: Path, run_dirs: dict[str, list[Path]], task_obj) -> list[str]:
    """Learning curves for every task, plus the task's own figures (``task.figures``) of each
    model's first seed. Returns the files written, relative to ``out``."""
    from ..plotting import curves

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    written = [curves.plot_learning_curves(run_dirs, fig_dir / "learning_curves.png")]
    models = {label: load_run(dirs[0])[1] for label, dirs in run_dirs.items()}
    written += list(task_obj.figures(models, fig_dir))
    return [str(Path(w).relative_to(out)) for w in written]
