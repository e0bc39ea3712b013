"""The one training loop: any model, any task, staged by parameter group, compiled in chunks.

Per optimiser step ``g`` (global, counted across stages) the data and noise keys are
``fold_in(key, g)``: the run is a pure function of ``key`` and the config, independent of how the
steps are chunked, which is what makes a resumed run bit-identical to an uninterrupted one.

``steps_per_call`` steps are compiled into one ``lax.scan`` (trial generation included), so the host
loop only runs every few hundred steps: to check the loss is finite, update the progress bar and
write checkpoints.
"""

from __future__ import annotations

import csv
import functools
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ..models.base import AbstractRecurrentModel, check_inputs, simulate, trainable_filter
from ..tasks.base import AbstractTask, Batch, masked_mse
from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from .config import TrainConfig

CHECKPOINT = "checkpoint.npz"
CURVE = "curve.csv"


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss becomes NaN or infinite; the message names the step."""


class TrainResult(NamedTuple):
    model: AbstractRecurrentModel
    losses: np.ndarray  # (total_steps,) loss at each step, before that step's update
    stage_index: np.ndarray  # (total_steps,) which stage each step belongs to
    seconds: float


@functools.lru_cache(maxsize=64)
def make_optimizer(config: TrainConfig, lr: float) -> optax.GradientTransformation:
    """``clip_by_global_norm(clip)`` then Adam or AdamW (the NM-RNN reference recipe).

    Cached, so that repeated runs (seeds) reuse the same object and hit the compilation cache.
    """
    parts = []
    if config.clip is not None:
        parts.append(optax.clip_by_global_norm(config.clip))
    if config.optimizer == "adamw":
        parts.append(optax.adamw(lr, weight_decay=config.weight_decay))
    else:
        parts.append(optax.adam(lr))
    return optax.chain(*parts)


def loss_fn(model: AbstractRecurrentModel, batch: Batch, key, config: TrainConfig) -> jax.Array:
    """Masked MSE plus the configured regularisers."""
    traj = simulate(model, batch.inputs, key=key if config.noise else None)
    loss = masked_mse(traj.outputs, batch.targets, batch.mask)
    if config.activity_l2 > 0:
        acts = [jnp.mean(s**2) for s in jax.tree.leaves(traj.states)]
        loss = loss + config.activity_l2 * sum(acts) / len(acts)
    if config.weight_l2 > 0:
        params = eqx.filter(model, trainable_filter(model, "all"))
        loss = loss + config.weight_l2 * sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
    return loss


def _resolve_batch(task: AbstractTask, config: TrainConfig, key) -> tuple[int, Batch | None]:
    batch_size = config.batch_size or task.default_batch_size
    if not config.fixed_batch:
        return batch_size, None
    fixed = task.fixed_batch()
    if fixed is None:
        fixed = task.sample(jr.fold_in(key, 2**31 - 1), batch_size)
    return fixed.batch_size, fixed


def _validate(model: AbstractRecurrentModel, task: AbstractTask, config: TrainConfig) -> None:
    if model.n_in != task.n_in:
        raise ValueError(
            f"the model has n_in={model.n_in} but task {type(task).__name__} has {task.n_in} "
            "input channels"
        )
    if model.n_out != task.n_out:
        raise ValueError(
            f"the model has n_out={model.n_out} but task {type(task).__name__} has {task.n_out} "
            "outputs"
        )
    for stage in config.schedule:
        trainable_filter(model, stage.group)  # raises on unknown groups
    check_inputs(model, jnp.zeros((1, task.n_in)))


@eqx.filter_jit
def _run_chunk(params, static, opt_state, optimizer, task, config, fixed, batch_size, key, start, n_steps):
    """``n_steps`` optimiser steps in one compiled scan. Returns new params, state and losses."""

    def one_step(carry, i):
        params, opt_state = carry
        k_data, k_noise = jr.split(jr.fold_in(key, start + i))
        batch = fixed if fixed is not None else task.sample(k_data, batch_size)
        loss, grads = eqx.filter_value_and_grad(
            lambda p: loss_fn(eqx.combine(p, static), batch, k_noise, config)
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = eqx.apply_updates(params, updates)
        return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        one_step, (params, opt_state), jnp.arange(n_steps)
    )
    return params, opt_state, losses


def _write_curve(path: Path, losses: np.ndarray, stage_index: np.ndarray, config: TrainConfig) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", "stage", "group", "loss"])
    groups = [s.group for s in config.schedule]
    for i, (loss, s) in enumerate(zip(losses, stage_index, strict=True)):
        w.writerow([i, int(s), groups[int(s)], repr(float(loss))])
    atomic_write_text(path, buf.getvalue())


def fit(
    model: AbstractRecurrentModel,
    task: AbstractTask,
    config: TrainConfig,
    *,
    key,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[int, np.ndarray], Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``task``.

    Args:
        model: initial model (also the skeleton when resuming from ``run_dir``).
        task: any task; its ``sample`` runs inside the compiled loop.
        config: a :class:`TrainConfig`.
        key: PRNG key for data and noise (model initialisation is the caller's business).
        run_dir: if given, checkpoints (``checkpoint.npz``) and the learning curve (``curve.csv``)
            are written there every ``config.checkpoint_every`` steps and at the end.
        resume: continue from ``run_dir/checkpoint.npz`` if it exists.
        progress: show a progress bar with the loss and the time left.
        callback: called as ``callback(step, losses_so_far)`` after every compiled chunk.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is left untouched.
    """
    _validate(model, task, config)
    schedule = config.schedule
    total = config.total_steps
    batch_size, fixed = _resolve_batch(task, config, key)
    stage_start = np.cumsum([0] + [s.steps for s in schedule])
    losses = np.full(total, np.nan, dtype=np.float64)
    stage_index = np.repeat(np.arange(len(schedule)), [s.steps for s in schedule])

    run_path = None if run_dir is None else Path(run_dir)
    step = 0
    opt_state_loaded = None
    if run_path is not None and resume and (run_path / CHECKPOINT).exists():
        step, model, opt_state_loaded, losses = _load(run_path, model, config, stage_start, losses)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    last_ckpt = step
    try:
        for s_idx, stage in enumerate(schedule):
            s1 = int(stage_start[s_idx + 1])
            if step >= s1:
                continue
            spec = trainable_filter(model, stage.group)
            params, static = eqx.partition(model, spec)
            optimizer = make_optimizer(config, stage.lr or config.lr)
            opt_state = optimizer.init(params)
            if opt_state_loaded is not None:
                opt_state = opt_state_loaded(opt_state)
                opt_state_loaded = None
            while step < s1:
                n = min(config.steps_per_call, s1 - step)
                new_params, new_opt, chunk = _run_chunk(
                    params, static, opt_state, optimizer, task, config, fixed, batch_size, key,
                    jnp.asarray(step, dtype=jnp.int32), n,
                )
                chunk = np.asarray(chunk)
                bad = np.flatnonzero(~np.isfinite(chunk))
                if bad.size:
                    first = step + int(bad[0])
                    losses[step:first] = chunk[: bad[0]]
                    where = (
                        f"; the last good checkpoint (step {last_ckpt}) in {run_path} is intact"
                        if run_path is not None and last_ckpt > 0
                        else ""
                    )
                    raise NonFiniteLossError(
                        f"loss became {chunk[bad[0]]} at step {first} (stage {s_idx}, group "
                        f"{stage.group!r}); training stopped{where}"
                    )
                params, opt_state = new_params, new_opt
                losses[step : step + n] = chunk
                step += n
                model = eqx.combine(params, static)
                if bar is not None:
                    bar.update(n)
                    bar.set_postfix(loss=f"{chunk[-1]:.4g}", stage=stage.group)
                if run_path is not None and (
                    step - last_ckpt >= config.checkpoint_every or step == s1
                ):
                    _save(run_path, model, opt_state, step, losses, stage_index, config)
                    last_ckpt = step
                if callback is not None:
                    callback(step, losses[:step])
            # next stage: combine so the frozen parts of this stage carry over
            model = eqx.combine(params, static)
    finally:
        if bar is not None:
            bar.close()
    return TrainResult(model, losses, stage_index, time.perf_counter() - t0)


def _save(run_path, model, opt_state, step, losses, stage_index, config) -> None:
    save_checkpoint(
        run_path / CHECKPOINT,
        {"model": eqx.filter(model, eqx.is_array), "opt_state": opt_state},
        {"step": np.asarray(step), "losses": losses[:step]},
    )
    _write_curve(run_path / CURVE, losses[:step], stage_index[:step], config)


def _load(run_path, model, config, stage_start, losses):
    """Restore (step, model, a function filling the optimiser state, losses) from a checkpoint."""
    path = run_path / CHECKPOINT
    arrays_part, static_part = eqx.partition(model, eqx.is_array)
    with np.load(path, allow_pickle=False) as data:
        step = int(data["array/step"])
    trees, arrays = load_checkpoint(path, {"model": arrays_part})
    model = eqx.combine(trees["model"], static_part)
    total = len(losses)
    if step > total:
        raise ValueError(f"checkpoint {path} is at step {step}, beyond this run's {total} steps")
    losses = losses.copy()
    losses[:step] = arrays["losses"]

    def fill(opt_skeleton):
        # The checkpoint's optimiser state belongs to the stage in progress at ``step``; at a
        # stage boundary the next stage starts fresh, so only restore mid-stage.
        if step in set(int(s) for s in stage_start):
            return opt_skeleton
        restored, _ = load_checkpoint(path, {"opt_state": opt_skeleton})
        return restored["opt_state"]

    return step, model, fill, losses
