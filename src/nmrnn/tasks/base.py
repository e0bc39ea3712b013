"""The batch type and the task interface shared by every task.

A task is an immutable ``equinox.Module`` holding its configuration (static fields). It generates
trials as a pure function of a PRNG key -- ``task.sample(key, batch_size) -> Batch`` -- which is
jit-compatible, so data generation can live inside the compiled training loop. Each task declares
its own evaluation metric through ``task.evaluate(outputs, batch) -> dict``.

Arrays are batch-major: ``inputs (B, T, P)``, ``targets (B, T, O)``, ``mask (B, T, O)`` (per-step
and per-output loss weights; 0 where the output is not scored). ``info`` holds per-trial metadata
(condition labels, epoch boundaries in steps), each an array with leading axis ``B``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Batch(eqx.Module):
    """A batch of trials. See the module docstring for shapes."""

    inputs: Float[Array, "B T P"]
    targets: Float[Array, "B T O"]
    mask: Float[Array, "B T O"]
    info: dict[str, Array] = eqx.field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[1]

    def take(self, index) -> Batch:
        """A sub-batch (``index`` indexes the trial axis)."""
        return jax.tree.map(lambda a: a[index], self)


def masked_mse(outputs: Array, targets: Array, mask: Array) -> Array:
    """``sum(mask * (outputs - targets)^2) / sum(mask)`` (0 if the mask is empty)."""
    err = mask * (outputs - targets) ** 2
    return jnp.sum(err) / jnp.maximum(jnp.sum(mask), 1e-12)


class AbstractTask(eqx.Module):
    """Base class of all tasks.

    Subclasses set ``n_in``, ``n_out``, ``n_steps`` and implement :meth:`sample`; they override
    :meth:`evaluate` when the task has a metric beyond the masked MSE, and
    :meth:`fixed_batch` when the task has a canonical full training set (MWG).
    """

    n_in: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]
    n_steps: eqx.AbstractVar[int]

    #: Batch size the papers train with (used when none is given).
    default_batch_size: ClassVar[int] = 64
    #: The training objectives the task takes, by name (``RunSpec.objective``): ``None`` is the
    #: task's supervised loss, the objective the training config describes. An environment task
    #: has no supervised loss and names reinforcement-learning objectives instead
    #: (:data:`nmrnn.rl.OBJECTIVES`).
    objectives: ClassVar[tuple[str | None, ...]] = (None,)

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """``batch_size`` independent random trials; a pure function of ``key``."""

    def fixed_batch(self) -> Batch | None:
        """The task's canonical full training set, or ``None`` if it has none."""
        return None

    def evaluation_batches(self, key: PRNGKeyArray) -> dict[str, Batch]:
        """Named batches a trained model is evaluated on.

        Default: the fixed training set if the task has one, else ``4 * default_batch_size``
        fresh trials drawn with ``key``. Tasks with held-out conditions add their own sets.
        """
        fixed = self.fixed_batch()
        if fixed is not None:
            return {"train": fixed}
        return {"test": self.sample(key, 4 * self.default_batch_size)}

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, Array]:
        """Metrics of ``outputs (B, T, O)`` on ``batch``. Default: the masked MSE."""
        return {"loss": masked_mse(outputs, batch.targets, batch.mask)}

    def training_objective(self, name: str | None, options: Mapping[str, Any], config: Any) -> Any:
        """The objective ``name`` (one of :attr:`objectives`) with ``options``, for training with
        ``config`` (a :class:`~nmrnn.train.TrainConfig`). ``None`` means the supervised loss,
        which :func:`nmrnn.train.fit` builds from the config: the default returns ``None`` and
        refuses any other name."""
        if name is not None or options:
            raise ValueError(f"{type(self).__name__} trains with its supervised loss only (no objective), "
                             f"not objective {name!r}")
        return None

    def evaluate_model(self, model: Any, key: PRNGKeyArray) -> dict[str, dict[str, float]]:
        """The metrics of a trained ``model``, ``{set: {metric: value}}`` (``metrics.json``).
        Default: :meth:`evaluate` on each of :meth:`evaluation_batches`, the model simulated on
        their inputs without noise."""
        from ..models.base import simulate

        out: dict[str, dict[str, float]] = {}
        for name, batch in self.evaluation_batches(key).items():
            traj = simulate(model, batch.inputs)
            out[name] = {k: float(v) for k, v in self.evaluate(traj.outputs, batch).items()}
        return out

    def figures(self, models: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """The task's own figures of trained ``models`` (``{label: model}``), written to
        ``out_dir``; returns the files written. Default: none (comparisons always add learning
        curves)."""
        return []
