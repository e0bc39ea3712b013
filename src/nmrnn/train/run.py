"""Run directories: one trained model, fully described by a JSON spec.

Layout of a run directory::

    config.json       the RunSpec (model, task, training config, seed, objective)
    checkpoint.npz    latest checkpoint (model + optimiser state + curve), atomic
    curve.csv         learning curve: step, stage, group, loss
    metrics.json      evaluation of the final model (written by train and by evaluate)

A run is a pure function of its spec: the seed gives the model-initialisation key and the training
key. Resuming a run with a different spec is refused, listing the differences.

What a run minimises is its task's business: ``RunSpec.objective`` names one of the task's
objectives (:attr:`~nmrnn.tasks.base.AbstractTask.objectives`; ``None``, the default, is the
supervised loss the training config describes; an environment task such as ``"bandit"`` names
``"a2c"`` or ``"ppo"``), built by the task's ``training_objective`` hook, and a trained model is
evaluated by the task's ``evaluate_model`` hook, so nothing here depends on the kind of task.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

from .._validation import check_positive_int, check_seed, check_table, seed_key
from ..models import MODELS, make_model
from ..models.base import AbstractRecurrentModel
from ..options import coerce_options
from ..tasks import TASKS, make_task
from ..tasks.base import AbstractTask
from . import guard
from .checkpoint import atomic_write_json
from .config import TrainConfig
from .loop import CHECKPOINT, CURVE, TrainResult, _objective_for, _validate, fit, fit_ensemble
from .objectives import AbstractObjective

CONFIG = "config.json"
METRICS = "metrics.json"


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run."""

    model: str
    n_hidden: int
    task: str
    train: TrainConfig
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    #: A finished run directory whose final model this run starts from instead of a fresh one
    #: (a path relative to this run's directory, or absolute): the same model, size and options,
    #: trained further on this run's task and config, e.g. retraining one parameter group on a
    #: new task. ``None``: a freshly initialised model.
    init_from: str | None = None
    #: The training objective by name, one of the task's ``objectives``: ``None`` (default) is
    #: the supervised loss the training config describes; an environment task (``"bandit"``)
    #: trains with ``"a2c"`` or ``"ppo"`` (:data:`nmrnn.rl.OBJECTIVES`). Its regularisers and
    #: noise are the training config's (``activity_l2`` ...), its rollout length the task's.
    objective: str | None = None
    #: The objective's options (``entropy_coef``, ``gamma``, ... :func:`nmrnn.rl.objective_options`).
    objective_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        from .._validation import check_choice

        check_choice("model", self.model, MODELS)
        check_choice("task", self.task, TASKS)
        check_positive_int("n_hidden", self.n_hidden)
        object.__setattr__(self, "seed", check_seed(self.seed))
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig or an object of its fields, got {self.train!r}")
        for name in ("model_options", "task_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be an object of option=value pairs, got {getattr(self, name)!r}")
        skip = ("self", "key", "n_in", "n_hidden", "n_out")
        object.__setattr__(self, "model_options", coerce_options(
            f"model {self.model!r}", self.model_options, MODELS[self.model].__init__, skip=skip))
        object.__setattr__(self, "task_options", coerce_options(
            f"task {self.task!r}", self.task_options, TASKS[self.task].__init__))
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ValueError(f"init_from must be the path of a run directory, got {self.init_from!r}")
        self._check_objective()

    def _check_objective(self) -> None:
        """The objective is one the task takes, and its options are known and typed (before
        anything is built)."""
        from ..rl import FROM_TASK_AND_CONFIG, OBJECTIVES

        if not isinstance(self.objective_options, dict):
            raise ValueError(f"objective_options must be an object of option=value pairs, got {self.objective_options!r}")
        name, takes = self.objective, TASKS[self.task].objectives
        if name is not None and name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; valid choices: {', '.join(OBJECTIVES)} (or no objective: "
                             "the task's supervised loss)")
        if name not in takes:
            if name is None:
                raise ValueError(f"task {self.task!r} has no supervised loss: give a training objective "
                                 f"({', '.join(str(t) for t in takes)})")
            envs = ", ".join(t for t, c in TASKS.items() if name in c.objectives)
            raise ValueError(f"objective {name!r} does not apply to task {self.task!r}, which trains with its "
                             f"supervised loss (no objective); {name!r} trains on: {envs}")
        if name is None:
            if self.objective_options:
                raise ValueError(f"objective_options {self.objective_options} given without an objective")
            return
        object.__setattr__(self, "objective_options", coerce_options(
            f"objective {name!r}", self.objective_options, OBJECTIVES[name].__init__,
            skip=("self", *FROM_TASK_AND_CONFIG)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any) -> RunSpec:
        """A spec from its JSON form, every field checked (structure, types, known names)."""
        check_table(d, "a run spec", [f.name for f in dataclasses.fields(cls)],
                    required=("model", "n_hidden", "task", "train"))
        for k in ("model", "task"):
            if not isinstance(d[k], str):
                raise ValueError(f"field {k} must be a name, got {d[k]!r}")
        if not isinstance(d["train"], dict):
            raise ValueError(f"field train must be an object of training options, got {d['train']!r}")
        return cls(**d)

    def build(self) -> tuple[AbstractRecurrentModel, AbstractTask]:
        """The task and the freshly initialised model (validates every option)."""
        task = make_task(self.task, **self.task_options)
        model = make_model(
            self.model,
            n_in=task.n_in,
            n_out=task.n_out,
            n_hidden=self.n_hidden,
            key=self.model_key(),
            **self.model_options,
        )
        return model, task

    def training(self, task: AbstractTask) -> tuple[AbstractObjective | None, TrainConfig]:
        """What :func:`~nmrnn.train.fit` gets for this run on ``task`` (built by :meth:`build`):
        the objective (``None``: the supervised loss of the config) and the training config. A
        named objective takes the config's regularisers as its terms (the task's
        ``training_objective``), so the loop gets the config without them."""
        objective = task.training_objective(self.objective, self.objective_options, self.train)
        if objective is None:
            return None, self.train
        return objective, dataclasses.replace(self.train, weight_l2=0.0, activity_l2=0.0, weight_l1=0.0)

    def starting_model(self, run_dir: str | Path) -> AbstractRecurrentModel:
        """The model this run starts from: fresh (:meth:`build`), or the final model of the
        finished run ``init_from`` (resolved against ``run_dir``), which must be the same model
        with the same size and options."""
        fresh, _ = self.build()
        if self.init_from is None:
            return fresh
        source = Path(os.path.normpath(Path(run_dir) / self.init_from))  # lexically: run_dir may not exist yet
        if not (source / METRICS).exists():
            raise ValueError(f"init_from {self.init_from!r}: {source} is not a finished run directory (no {METRICS})")
        other, model, _ = load_run(source)
        same = (other.model, other.n_hidden, other.model_options) == (self.model, self.n_hidden, self.model_options)
        shapes = lambda m: [(a.shape, a.dtype) for a in jax.tree.leaves(eqx.filter(m, eqx.is_array))]  # noqa: E731
        if not same:
            raise ValueError(
                f"init_from {self.init_from!r}: {source} trained a {other.model} (N={other.n_hidden}, "
                f"options {other.model_options}), not this run's {self.model} (N={self.n_hidden}, options "
                f"{self.model_options})")
        if jax.tree.structure(eqx.filter(model, eqx.is_array)) != jax.tree.structure(
                eqx.filter(fresh, eqx.is_array)) or shapes(model) != shapes(fresh):
            raise ValueError(
                f"init_from {self.init_from!r}: the weights of {source} ({other.task}) do not have this "
                f"run's shapes ({self.task}: its inputs and outputs must have the same sizes)")
        return model

    def model_key(self):
        return jr.fold_in(seed_key(self.seed), 0)

    def train_key(self):
        return jr.fold_in(seed_key(self.seed), 1)

    def eval_key(self):
        return jr.fold_in(seed_key(self.seed), 2)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {old!r} (saved) vs {new!r} (now)"]
    return []


def prepare_run_dir(run_dir: str | Path, spec: RunSpec, resume: bool) -> Path:
    """Create ``run_dir`` with ``config.json``, or check an existing one for a resume.

    Refuses to overwrite an existing run without ``resume``, and refuses to resume with a spec
    that differs from the saved one (listing every difference).
    """
    path = check_run_path(run_dir)
    cfg = path / CONFIG
    new = json.loads(json.dumps(spec.to_dict()))
    if cfg.exists():
        old = saved_spec(cfg)
        if not resume:
            raise FileExistsError(
                f"{path} already holds a run; pass resume=True (--resume) to continue it or "
                "choose another directory"
            )
        diffs = _diff(old, new)
        if diffs:
            raise ValueError(
                f"cannot resume {path} with a different configuration:\n  " + "\n  ".join(diffs)
            )
        return path
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg, new)
    return path


def saved_spec(cfg: Path) -> Any:
    """The saved spec of a run (``config.json``) in its current JSON form: fields added to the spec
    or the training config after the run was written take their defaults, so that a run written
    by an earlier version compares equal to the same run now. A file that is no valid spec is
    returned as read."""
    old = read_json(cfg)
    try:
        return json.loads(json.dumps(RunSpec.from_dict(old).to_dict()))
    except (ValueError, TypeError):
        return old


def check_run_path(run_dir: str | Path) -> Path:
    """``run_dir`` as a path that can be a run directory: not empty, not a file, not inside a file."""
    if str(run_dir).strip() == "":
        raise ValueError("the run directory must be a path, got an empty string")
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} (a parent of {path}) is a file, not a folder")
            break
    return path


def read_json(path: Path) -> Any:
    """The JSON content of ``path``; ``ValueError`` naming the file if it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, expected a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def train_run(
    run_dir: str | Path,
    spec: RunSpec,
    *,
    resume: bool = False,
    progress: bool = False,
    callback=None,
    check_memory: bool = True,
) -> TrainResult:
    """Train the run described by ``spec`` into ``run_dir`` and evaluate it (``metrics.json``).

    Everything (options, groups, sizes, the memory the run needs) is validated before the
    directory is touched, and a run that fails before its first checkpoint removes the folder it
    created, so a refused or failed command leaves no folder behind. The folder is locked while
    the run trains (:class:`~nmrnn.train.guard.FolderLock`).
    """
    if check_memory:  # on shapes only, before any array is allocated
        abstract = eqx.filter_eval_shape(spec.build)
        guard.check_memory(abstract[0], abstract[1], spec.train)
    _, task = spec.build()
    model = spec.starting_model(run_dir)
    objective, config = spec.training(task)
    _validate(model, task, config, _objective_for(config, objective))
    path = check_run_path(run_dir)
    created = not path.exists()
    try:
        with guard.FolderLock(path):
            path = prepare_run_dir(path, spec, resume)
            result = fit(
                model,
                task,
                config,
                key=spec.train_key(),
                run_dir=path,
                resume=resume,
                progress=progress,
                callback=callback,
                objective=objective,
            )
            _write_metrics(path, result, task, spec)
    except BaseException:
        if created and path.is_dir() and not (path / CHECKPOINT).exists():
            shutil.rmtree(path, ignore_errors=True)
        raise
    return result


def train_runs(
    run_dirs: list[str | Path],
    specs: list[RunSpec],
    *,
    resume: bool = False,
    progress: bool = False,
    vmap: bool | None = None,
) -> list[TrainResult]:
    """Train several runs (seeds, or settings differing only in numbers) as one ensemble
    (:func:`nmrnn.train.fit_ensemble`), each into its own run directory with its own
    ``metrics.json``; ``vmap=None`` uses the backend's default. Members whose checkpoints are at
    different steps are resumed one at a time."""
    if len(run_dirs) != len(specs) or not specs:
        raise ValueError(f"train_runs needs one run directory per spec, got {len(run_dirs)} and {len(specs)}")
    built = [(spec.starting_model(d), spec.build()[1]) for d, spec in zip(run_dirs, specs, strict=True)]
    training = [spec.training(task) for (_, task), spec in zip(built, specs, strict=True)]
    for (model, task), (objective, config) in zip(built, training, strict=True):
        _validate(model, task, config, _objective_for(config, objective))
    locks = [guard.FolderLock(check_run_path(d)) for d in run_dirs]
    for lock in locks:
        lock.acquire()
    try:
        return _train_runs_locked(run_dirs, specs, built, training, resume=resume, progress=progress, vmap=vmap)
    finally:
        for lock in locks:
            lock.release()


def _train_runs_locked(run_dirs, specs, built, training, *, resume, progress, vmap):
    paths = [prepare_run_dir(d, spec, resume) for d, spec in zip(run_dirs, specs, strict=True)]
    try:
        results = fit_ensemble(
            [m for m, _ in built], built[0][1], [c for _, c in training],
            keys=[s.train_key() for s in specs], run_dirs=paths, resume=resume, progress=progress,
            objectives=[o for o, _ in training], vmap=vmap,
        )
    except ValueError as err:
        if "different steps" not in str(err):
            raise
        results = [
            fit(m, t, c, key=s.train_key(), run_dir=p, resume=resume, progress=progress, objective=o)
            for (m, t), (o, c), s, p in zip(built, training, specs, paths, strict=True)
        ]
    for (_, task), spec, path, result in zip(built, specs, paths, results, strict=True):
        _write_metrics(path, result, task, spec)
    return results


def _write_metrics(path: Path, result: TrainResult, task: AbstractTask, spec: RunSpec) -> None:
    metrics = evaluate_model(result.model, task, spec.eval_key())
    metrics["train_seconds"] = result.seconds
    metrics["final_train_loss"] = float(result.losses[-1])
    atomic_write_json(path / METRICS, metrics)


class RunOutcome(NamedTuple):
    """A finished run: its ``spec``, the trained ``model`` (latest checkpoint), the ``task`` built
    from the spec, the ``metrics`` of ``metrics.json`` and the per-step total ``losses``."""

    spec: RunSpec
    model: AbstractRecurrentModel
    task: AbstractTask
    metrics: dict[str, Any]
    losses: np.ndarray


def finished_metrics(run_dir: str | Path, spec: RunSpec) -> dict | None:
    """The metrics of a completed run of ``spec`` in ``run_dir``, else ``None``.

    Raises ``ValueError`` listing the differences if the folder holds a run of another spec.
    """
    path = Path(run_dir)
    cfg, met = path / CONFIG, path / METRICS
    if not cfg.exists():
        return None
    if saved_spec(cfg) != json.loads(json.dumps(spec.to_dict())):
        prepare_run_dir(path, spec, resume=True)  # raises with the list of differences
    if not met.exists() or not (path / CHECKPOINT).exists():
        return None
    try:
        metrics = read_json(met)
    except ValueError:
        return None  # a damaged metrics file: evaluate again
    return metrics if isinstance(metrics, dict) else None


def ensure_run(
    run_dir: str | Path,
    spec: RunSpec,
    *,
    progress: bool = False,
    callback=None,
    log=None,
) -> RunOutcome:
    """The run of ``spec`` in ``run_dir``, trained if need be: a finished run with the same spec is
    reused, an unfinished one resumes from its checkpoint (bit-identically), an empty folder
    starts one. This is the one training path of every experiment and reproduction."""
    metrics = finished_metrics(run_dir, spec)
    if metrics is None:
        if log is not None:
            log(f"training {spec.model} (N={spec.n_hidden}) on {spec.task}, seed {spec.seed} -> {run_dir}")
        train_run(run_dir, spec, resume=True, progress=progress, callback=callback)
        metrics = json.loads((Path(run_dir) / METRICS).read_text())
    elif log is not None:
        log(f"reusing finished run {run_dir}")
    _, model, task = load_run(run_dir)
    return RunOutcome(spec, model, task, metrics, read_curve(run_dir))


def read_curve(run_dir: str | Path, column: str = "loss") -> np.ndarray:
    """One column of a run directory's learning curve (``curve.csv``), ``(steps,)``: by default
    the per-step training loss."""
    with open(Path(run_dir) / CURVE) as f:
        rows = csv.DictReader(f)
        if rows.fieldnames is None or column not in rows.fieldnames:
            raise ValueError(f"{Path(run_dir) / CURVE} has no column {column!r}; it has {rows.fieldnames}")
        return np.asarray([float(r[column]) for r in rows])


def load_run(run_dir: str | Path) -> tuple[RunSpec, AbstractRecurrentModel, AbstractTask]:
    """The spec, the model at its latest checkpoint, and the task of a run directory."""
    from .loop import _load

    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a run directory (no such folder)")
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
    try:
        spec = RunSpec.from_dict(read_json(path / CONFIG))
    except ValueError as err:
        raise ValueError(f"{path / CONFIG}: {err}") from None
    model, task = spec.build()
    if not (path / CHECKPOINT).exists():
        raise FileNotFoundError(f"{path} has no checkpoint yet ({CHECKPOINT})")
    stage_start = np.cumsum([0] + [s.steps for s in spec.train.schedule])
    _, model, _, _, _, _ = _load(path, model, stage_start, spec.train.total_steps)
    return spec, model, task


def load_snapshots(run_dir: str | Path) -> list[tuple[int, AbstractRecurrentModel]]:
    """The models a run kept over training (``TrainConfig.keep_every``), as ``(step, model)`` in
    the order of their steps; step 0 is the initial model. Every file is checked against the
    run's model (:func:`nmrnn.train.checkpoint.load_checkpoint`)."""
    from .checkpoint import CheckpointError, load_checkpoint, read_arrays
    from .loop import SNAPSHOTS

    path = Path(run_dir)
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
    spec = RunSpec.from_dict(read_json(path / CONFIG))
    skeleton = eqx.filter(spec.build()[0], eqx.is_array)
    out = []
    for f in sorted((path / SNAPSHOTS).glob("step-*.npz")):
        files = read_arrays(f)
        step = files.get("array/step")
        if step is None or np.ndim(step) != 0 or not np.issubdtype(np.asarray(step).dtype, np.integer):
            raise CheckpointError(f"snapshot {f}: array/step must be an integer scalar")
        trees, _ = load_checkpoint(f, {"model": skeleton}, files)
        out.append((int(step), eqx.combine(trees["model"], spec.build()[0])))
    return sorted(out, key=lambda t: t[0])


def evaluate_model(model: AbstractRecurrentModel, task: AbstractTask, key) -> dict[str, Any]:
    """The task's metrics of ``model``, ``{set: {metric: value}}``: the task's own
    :meth:`~nmrnn.tasks.base.AbstractTask.evaluate_model` (a supervised task's metrics on each of
    its evaluation batches, an environment's over fresh episodes played by the agent)."""
    return task.evaluate_model(model, key)


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Evaluate a run directory's latest checkpoint and (re)write its ``metrics.json``."""
    spec, model, task = load_run(run_dir)
    path = Path(run_dir)
    with guard.FolderLock(path):
        metrics = evaluate_model(model, task, spec.eval_key())
        bad = [f"{s}/{k}" for s, v in metrics.items() for k, x in v.items() if not np.isfinite(x)]
        if bad:
            raise FloatingPointError(f"{path}: the model gives non-finite metrics ({', '.join(bad)})")
        if (path / METRICS).exists():
            try:
                old = read_json(path / METRICS)
            except ValueError:
                old = {}
            for k in ("train_seconds", "final_train_loss"):
                if isinstance(old, dict) and k in old:
                    metrics[k] = old[k]
        atomic_write_json(path / METRICS, metrics)
    return metrics
