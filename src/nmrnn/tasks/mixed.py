"""Batches that mix several tasks, trial by trial, with per-task evaluation.

:class:`MixedTask` draws a task id for every trial (``info["task_id"]``, an index into ``tasks``)
and fills the trial from that task. All sub-tasks must agree on ``n_in``, ``n_out`` and
``n_steps``. Generation stays a pure, jit-compatible function of the key:

* general path: every sub-task generates the whole batch and each trial is taken from its own
  task's batch (cost: ``len(tasks)`` batches per batch);
* shared-rendering path: when every sub-task is a :class:`~nmrnn.tasks.driscoll.DriscollTask` with
  the same rendering settings, only the per-trial conditions (a few scalars per trial) are drawn
  per task; the selected conditions are rendered once (cost: about one batch).

Both paths give identically distributed batches (the same keys do not give the same numbers on the
two paths). ``info`` keeps every key that all sub-tasks provide with the same trailing shape and
dtype, plus ``task_id``.

:class:`DriscollMultitask` is the mixed batch of Driscoll-convention tasks sharing one channel
layout (the NM-RNN paper's multitask setting), buildable by name from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validation import check_nonnegative, check_positive_int
from .base import AbstractTask, Batch, masked_mse
from .driscoll import _SPEC, DRISCOLL_TASKS, PERIODS, DriscollTask, resolve_task_name


class MixedTask(AbstractTask):
    """Trials of several tasks in one batch.

    Args:
        tasks: the sub-tasks (at least one), with equal ``n_in``, ``n_out`` and ``n_steps``.
        weights: relative sampling probability of each sub-task (default: uniform).
        names: names used in metrics (default: each task's ``name`` attribute, else its class
            name; repeated names get a ``_<index>`` suffix).
    """

    tasks: tuple[AbstractTask, ...]
    weights: tuple[float, ...] = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        tasks: Sequence[AbstractTask],
        weights: Sequence[float] | None = None,
        names: Sequence[str] | None = None,
    ):
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("MixedTask needs at least one task")
        for i, t in enumerate(tasks):
            if not isinstance(t, AbstractTask):
                raise ValueError(f"tasks[{i}] is a {type(t).__name__}, not a task (AbstractTask)")
        for attr in ("n_in", "n_out", "n_steps"):
            values = [getattr(t, attr) for t in tasks]
            if len(set(values)) > 1:
                listing = ", ".join(
                    f"{_default_name(t)}: {v}" for t, v in zip(tasks, values, strict=True)
                )
                raise ValueError(f"all tasks of a mixed batch need the same {attr}; got {listing}")
        if weights is None:
            weights = (1.0,) * len(tasks)
        weights = tuple(check_nonnegative("task weight", w) for w in weights)
        if len(weights) != len(tasks):
            raise ValueError(f"got {len(weights)} weights for {len(tasks)} tasks")
        total = sum(weights)
        if total <= 0:
            raise ValueError(f"task weights must not all be zero, got {list(weights)}")
        if names is None:
            names = [_default_name(t) for t in tasks]
        names = [str(n) for n in names]
        if len(names) != len(tasks):
            raise ValueError(f"got {len(names)} names for {len(tasks)} tasks")
        counts = {n: names.count(n) for n in names}
        names = [f"{n}_{i}" if counts[n] > 1 else n for i, n in enumerate(names)]
        self.tasks = tasks
        self.weights = tuple(w / total for w in weights)
        self.names = tuple(names)
        self.n_in, self.n_out, self.n_steps = tasks[0].n_in, tasks[0].n_out, tasks[0].n_steps

    @property
    def shares_rendering(self) -> bool:
        """Whether the cheap shared-rendering path applies (see the module docstring)."""
        first = self.tasks[0]
        return all(isinstance(t, DriscollTask) for t in self.tasks) and all(
            t.render_settings() == first.render_settings() for t in self.tasks
        )

    def sample_ids(self, key: PRNGKeyArray, batch_size: int) -> Array:
        """Task id of each trial ``(B,)``."""
        return jr.choice(key, len(self.tasks), (batch_size,), p=jnp.asarray(self.weights))

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        return _sample_jit(self, key, batch_size)

    def _sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        k_ids, k_tasks, k_noise = jr.split(key, 3)
        ids = self.sample_ids(k_ids, batch_size)
        keys = jr.split(k_tasks, len(self.tasks))
        if self.shares_rendering:
            conds = [t.sample_conditions(k, batch_size) for t, k in zip(self.tasks, keys, strict=True)]
            cond = jax.tree.map(lambda *xs: _select(jnp.stack(xs), ids), *conds)
            batch = self.tasks[0].render(cond, k_noise)
            return Batch(batch.inputs, batch.targets, batch.mask, {**batch.info, "task_id": ids})
        batches = [t.sample(k, batch_size) for t, k in zip(self.tasks, keys, strict=True)]
        return _combine(batches, ids)

    def sample_each(self, key: PRNGKeyArray, n_per_task: int) -> Batch:
        """``n_per_task`` trials of every sub-task, grouped by task (ids ``0 .. len(tasks)-1``)."""
        check_positive_int("n_per_task", n_per_task)
        keys = jr.split(key, len(self.tasks))
        batches = [t.sample(k, n_per_task) for t, k in zip(self.tasks, keys, strict=True)]
        ids = jnp.repeat(jnp.arange(len(self.tasks)), n_per_task)
        info_keys = _common_info(batches)
        return Batch(
            jnp.concatenate([b.inputs for b in batches]),
            jnp.concatenate([b.targets for b in batches]),
            jnp.concatenate([b.mask for b in batches]),
            {**{k: jnp.concatenate([b.info[k] for b in batches]) for k in info_keys},
             "task_id": ids},
        )

    def evaluation_batches(self, key: PRNGKeyArray) -> dict[str, Batch]:
        """``test``: ``default_batch_size`` trials of every sub-task."""
        return {"test": self.sample_each(key, self.default_batch_size)}

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, float]:
        """Each sub-task's own metrics on its trials (``"<name>/<metric>"``) and the overall ones.

        Overall: ``loss`` is the masked MSE of the whole batch; every other metric that all
        evaluated sub-tasks report is their trial-weighted mean (for percent correct: the
        fraction of all trials that are correct). ``n_trials/<name>`` counts each task's trials.
        """
        if "task_id" not in batch.info:
            raise ValueError("the batch has no info['task_id']; it was not made by a MixedTask")
        ids = np.asarray(batch.info["task_id"])
        outputs = jnp.asarray(outputs)
        result: dict[str, float] = {"loss": float(masked_mse(outputs, batch.targets, batch.mask))}
        sums: dict[str, float] = {}
        seen: list[set[str]] = []
        n_total = 0
        for i, (name, task) in enumerate(zip(self.names, self.tasks, strict=True)):
            sel = np.flatnonzero(ids == i)
            result[f"n_trials/{name}"] = float(sel.size)
            if sel.size == 0:
                continue
            metrics = task.evaluate(outputs[sel], batch.take(sel))
            seen.append(set(metrics))
            for k, v in metrics.items():
                result[f"{name}/{k}"] = float(v)
                sums[k] = sums.get(k, 0.0) + sel.size * float(v)
            n_total += sel.size
        common = set.intersection(*seen) if seen else set()
        for k in sorted(common - {"loss"}):
            result[k] = sums[k] / n_total
        return result


class DriscollMultitask(AbstractTask):
    """A mixed batch of Driscoll-convention tasks sharing one channel layout.

    Args:
        tasks: the task names to mix (the NM-RNN paper: DelayPro, DelayAnti, MemoryPro; then
            MemoryAnti alone for retraining, with the same ``rules`` so the layout is unchanged).
        weights: relative sampling probability of each task (default: uniform).
        rules: rule channels, as in :class:`~nmrnn.tasks.driscoll.DriscollTask` (default: all 15).
        n_train: if given, ``fixed_batch()`` is this many trials drawn with ``seed`` (the paper
            trains on 3000 fixed trials).
        n_test: trials per task in ``evaluation_batches`` (the paper tests on 1000 per task).
        seed: seed of the fixed training set.
        n_steps, timing, dt, n_modalities, durations, mask, input_noise, require_release: as in
            :class:`DriscollTask`, shared by all tasks (with absolute timing, ``n_steps``
            defaults to the longest trial any of the tasks can have). Each task takes the
            ``durations`` entries of its own periods.
    """

    mixed: MixedTask
    n_train: int | None = eqx.field(static=True)
    n_test: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        tasks: Sequence[str] = ("DelayPro", "DelayAnti", "MemoryPro"),
        weights: Sequence[float] | None = None,
        rules: Sequence[str] = DRISCOLL_TASKS,
        n_train: int | None = None,
        n_test: int = 1000,
        seed: int = 0,
        *,
        n_steps: int | None = None,
        timing: str = "scaled",
        dt: float = 20.0,
        n_modalities: int = 2,
        durations: Mapping[str, tuple[float, float]] | None = None,
        mask: str = "ones",
        input_noise: float = 0.0,
        require_release: bool = False,
    ):
        if isinstance(tasks, str):
            tasks = (tasks,)
        names = [resolve_task_name(t) for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks repeats a task: {names}")
        options: dict[str, Any] = dict(
            n_steps=n_steps, timing=timing, dt=dt, n_modalities=n_modalities,
            durations=durations, mask=mask, input_noise=input_noise,
            require_release=require_release,
        )
        durations = dict(durations or {})
        families = {n: _SPEC[n][0] for n in names}
        known = {p for n in names for p, _ in PERIODS[families[n]]}
        unknown = sorted(set(durations) - known)
        if unknown:
            raise ValueError(
                f"unknown period(s) {', '.join(unknown)} for tasks {names}; valid periods: "
                f"{', '.join(sorted(known))}"
            )

        def build(name: str, **extra: Any) -> DriscollTask:
            own = {p for p, _ in PERIODS[families[name]]}
            mine = {p: v for p, v in durations.items() if p in own}
            return DriscollTask(name, rules=rules, **{**options, "durations": mine, **extra})

        if n_steps is None and timing == "absolute":
            # one length for all: the longest trial any of the tasks can have
            options["n_steps"] = max(build(n).n_steps for n in names)
        built = [build(n) for n in names]
        self.mixed = MixedTask(built, weights=weights, names=names)
        self.n_train = None if n_train is None else check_positive_int("n_train", n_train)
        self.n_test = check_positive_int("n_test", n_test)
        self.seed = int(seed)
        self.n_in, self.n_out, self.n_steps = self.mixed.n_in, self.mixed.n_out, self.mixed.n_steps

    @property
    def tasks(self) -> tuple[DriscollTask, ...]:
        return self.mixed.tasks  # type: ignore[return-value]

    @property
    def names(self) -> tuple[str, ...]:
        return self.mixed.names

    @property
    def sensory_channels(self) -> tuple[int, ...]:
        return self.tasks[0].sensory_channels

    @property
    def context_channels(self) -> tuple[int, ...]:
        return self.tasks[0].context_channels

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        return self.mixed.sample(key, batch_size)

    def fixed_batch(self) -> Batch | None:
        if self.n_train is None:
            return None
        return self.sample(jr.PRNGKey(self.seed), self.n_train)

    def evaluation_batches(self, key: PRNGKeyArray) -> dict[str, Batch]:
        """``test``: ``n_test`` trials of every task."""
        return {"test": self.mixed.sample_each(key, self.n_test)}

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, float]:
        return self.mixed.evaluate(outputs, batch)


@eqx.filter_jit
def _sample_jit(task: MixedTask, key, batch_size: int) -> Batch:
    # compiled once per configuration and batch size (host-side sub-tasks run as callbacks)
    return task._sample(key, batch_size)


def _default_name(task: AbstractTask) -> str:
    name = getattr(task, "name", None)
    return name if isinstance(name, str) else type(task).__name__


def _select(stacked: Array, ids: Array) -> Array:
    """``stacked (n_tasks, B, ...)`` -> ``(B, ...)`` taking trial ``b`` from task ``ids[b]``."""
    return stacked[ids, jnp.arange(ids.shape[0])]


def _common_info(batches: Sequence[Batch]) -> list[str]:
    first = batches[0].info
    keys = []
    for k, v in first.items():
        if k == "task_id":
            continue
        if all(
            k in b.info
            and jnp.shape(b.info[k])[1:] == jnp.shape(v)[1:]
            and jnp.result_type(b.info[k]) == jnp.result_type(v)
            for b in batches
        ):
            keys.append(k)
    return keys


def _combine(batches: Sequence[Batch], ids: Array) -> Batch:
    info: Mapping[str, Array] = {
        k: _select(jnp.stack([b.info[k] for b in batches]), ids) for k in _common_info(batches)
    }
    return Batch(
        _select(jnp.stack([b.inputs for b in batches]), ids),
        _select(jnp.stack([b.targets for b in batches]), ids),
        _select(jnp.stack([b.mask for b in batches]), ids),
        {**info, "task_id": ids},
    )


__all__ = ["DriscollMultitask", "MixedTask"]
