"""Run directories: one trained model, fully described by a JSON spec.

Layout of a run directory::

    config.json       the RunSpec (model, task, training config, seed)
    checkpoint.npz    latest checkpoint (model + optimiser state + curve), atomic
    curve.csv         learning curve: step, stage, group, loss
    metrics.json      evaluation of the final model (written by train and by evaluate)

A run is a pure function of its spec: the seed gives the model-initialisation key and the training
key. Resuming a run with a different spec is refused, listing the differences.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax.random as jr
import numpy as np

from .._validation import check_nonnegative_int, check_positive_int
from ..models import make_model, simulate
from ..models.base import AbstractRecurrentModel
from ..tasks import make_task
from ..tasks.base import AbstractTask
from .checkpoint import atomic_write_json
from .config import TrainConfig
from .loop import CHECKPOINT, TrainResult, fit

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

    def __post_init__(self):
        check_positive_int("n_hidden", self.n_hidden)
        check_nonnegative_int("seed", self.seed)
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
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

    def model_key(self):
        return jr.fold_in(jr.PRNGKey(self.seed), 0)

    def train_key(self):
        return jr.fold_in(jr.PRNGKey(self.seed), 1)

    def eval_key(self):
        return jr.fold_in(jr.PRNGKey(self.seed), 2)


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
    path = Path(run_dir)
    cfg = path / CONFIG
    new = json.loads(json.dumps(spec.to_dict()))
    if cfg.exists():
        old = json.loads(cfg.read_text())
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


def train_run(
    run_dir: str | Path,
    spec: RunSpec,
    *,
    resume: bool = False,
    progress: bool = False,
    callback=None,
) -> TrainResult:
    """Train the run described by ``spec`` into ``run_dir`` and evaluate it (``metrics.json``)."""
    model, task = spec.build()  # validate everything before touching the directory
    path = prepare_run_dir(run_dir, spec, resume)
    result = fit(
        model,
        task,
        spec.train,
        key=spec.train_key(),
        run_dir=path,
        resume=resume,
        progress=progress,
        callback=callback,
    )
    metrics = evaluate_model(result.model, task, spec.eval_key())
    metrics["train_seconds"] = result.seconds
    metrics["final_train_loss"] = float(result.losses[-1])
    atomic_write_json(path / METRICS, metrics)
    return result


def load_run(run_dir: str | Path) -> tuple[RunSpec, AbstractRecurrentModel, AbstractTask]:
    """The spec, the model at its latest checkpoint, and the task of a run directory."""
    from .loop import _load

    path = Path(run_dir)
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
    spec = RunSpec.from_dict(json.loads((path / CONFIG).read_text()))
    model, task = spec.build()
    if not (path / CHECKPOINT).exists():
        raise FileNotFoundError(f"{path} has no checkpoint yet ({CHECKPOINT})")
    stage_start = np.cumsum([0] + [s.steps for s in spec.train.schedule])
    _, model, _, _ = _load(path, model, spec.train, stage_start, np.zeros(spec.train.total_steps))
    return spec, model, task


def evaluate_model(model: AbstractRecurrentModel, task: AbstractTask, key) -> dict[str, Any]:
    """The task's metrics on each of its evaluation batches: ``{set: {metric: value}}``."""
    out: dict[str, Any] = {}
    for name, batch in task.evaluation_batches(key).items():
        traj = simulate(model, batch.inputs)
        out[name] = {k: float(v) for k, v in task.evaluate(traj.outputs, batch).items()}
    return out


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Evaluate a run directory's latest checkpoint and (re)write its ``metrics.json``."""
    spec, model, task = load_run(run_dir)
    path = Path(run_dir)
    metrics = evaluate_model(model, task, spec.eval_key())
    if (path / METRICS).exists():
        old = json.loads((path / METRICS).read_text())
        for k in ("train_seconds", "final_train_loss"):
            if k in old:
                metrics[k] = old[k]
    atomic_write_json(path / METRICS, metrics)
    return metrics
