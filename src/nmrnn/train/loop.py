"""The one training loop: any model, any data source, any objective, staged by parameter group,
compiled in chunks, for one run or an ensemble of runs.

Per optimiser step ``g`` (global, counted across stages) the data and noise keys are
``fold_in(key, g)``: the run is a pure function of ``key`` and the config, independent of how the
steps are chunked, which is what makes a resumed run bit-identical to an uninterrupted one.

``steps_per_call`` steps are compiled into one ``lax.scan`` (trial generation included), so the host
loop only runs every few hundred steps: to check the loss and the parameters are finite, update
the progress bar and write checkpoints.

Hyperparameters as data: the learning rate (and its schedule's numbers), the weight decay, the
clipping threshold and the objective's regulariser weights are arrays passed to the compiled chunk,
and the models' time constants are array leaves; runs that differ only in them reuse one
compilation. :func:`fit_ensemble` trains S runs (seeds and/or settings) either as one vmapped
program or one after the other; per member the two give the same results to float tolerance.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ..models.base import AbstractRecurrentModel, check_inputs, check_trainable, trainable_filter
from ..runtime import release_compiled_programs
from ..tasks.base import AbstractTask, Batch
from .checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_checkpoint,
    read_arrays,
    save_checkpoint,
)
from .config import TrainConfig
from .guard import Interrupted, deferred_signals
from .objectives import (
    AbstractDirectionObjective,
    AbstractInnerObjective,
    AbstractObjective,
    ActivityL2,
    Supervised,
    WeightL1,
    WeightL2,
)

CHECKPOINT = "checkpoint.npz"
#: Folder of a run directory with the models kept over training (``TrainConfig.keep_every``).
SNAPSHOTS = "snapshots"
CURVE = "curve.csv"


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss or the parameters become NaN or infinite; the message names the step."""


class TrainResult(NamedTuple):
    model: AbstractRecurrentModel
    losses: np.ndarray  # (total_steps,) loss at each step, before that step's update
    stage_index: np.ndarray  # (total_steps,) which stage each step belongs to
    seconds: float
    terms: dict[str, np.ndarray] = {}  # every term of the objective's aux, (total_steps,) each


# ----------------------------------------------------------------------------------------------
# objective and optimiser from a config
# ----------------------------------------------------------------------------------------------


def default_objective(config: TrainConfig) -> Supervised:
    """The supervised objective a config describes: its loss plus the regularisers whose weights
    are positive (activity L2, weight L2, weight L1, in that order)."""
    terms, weights = [], []
    for term, w in ((ActivityL2(), config.activity_l2), (WeightL2(), config.weight_l2), (WeightL1(), config.weight_l1)):
        if w > 0:
            terms.append(term)
            weights.append(w)
    return Supervised(config.loss, terms, weights, noise=config.noise)


def loss_fn(model: AbstractRecurrentModel, batch: Batch, key, config: TrainConfig) -> jax.Array:
    """The total loss of the config's objective on ``batch`` (see :func:`default_objective`)."""
    return default_objective(config)(model, batch, key=key)[0]


def make_optimizer(config: TrainConfig, lr: float | jax.Array, weight_decay=None, clip=None) -> optax.GradientTransformation:
    """Gradient clipping (``clip_by_global_norm(clip)``, or element-wise ``clip(clip)`` with
    ``clip_mode="value"`` as the NM-RNN authors' code) then Adam or AdamW.

    The numbers may be traced arrays: the training loop builds the optimiser inside the compiled
    step from its hyperparameter arrays, so a new learning rate does not recompile.
    """
    weight_decay = config.weight_decay if weight_decay is None else weight_decay
    clip = config.clip if clip is None else clip
    parts = []
    if config.clip is not None:
        parts.append(optax.clip(clip) if config.clip_mode == "value" else optax.clip_by_global_norm(clip))
    if config.optimizer == "adamw":
        parts.append(optax.adamw(lr, weight_decay=weight_decay))
    else:
        parts.append(optax.adam(lr))
    return optax.chain(*parts)


def _hyper(config: TrainConfig, stage_index: int) -> dict[str, jax.Array]:
    stage = config.schedule[stage_index]
    f = jnp.result_type(float)
    return {
        "lr": jnp.asarray(stage.lr or config.lr, f),
        "weight_decay": jnp.asarray(config.weight_decay, f),
        "clip": jnp.asarray(config.clip if config.clip is not None else 1.0, f),
        "warmup": jnp.asarray(config.warmup_steps, f),
        "final": jnp.asarray(config.final_lr_factor, f),
    }


def learning_rate(hp: dict[str, jax.Array], t, n, schedule: str) -> jax.Array:
    """The learning rate at step ``t`` (0-based) of a stage of ``n`` steps."""
    t = jnp.asarray(t, hp["lr"].dtype)
    warm = jnp.where(hp["warmup"] > 0, jnp.minimum(1.0, (t + 1.0) / jnp.maximum(hp["warmup"], 1.0)), 1.0)
    frac = jnp.clip(t / jnp.maximum(jnp.asarray(n, t.dtype) - 1.0, 1.0), 0.0, 1.0)
    if schedule == "cosine":
        factor = hp["final"] + (1.0 - hp["final"]) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    elif schedule == "exponential":
        factor = hp["final"] ** frac
    else:
        factor = 1.0
    return hp["lr"] * warm * factor


# ----------------------------------------------------------------------------------------------
# the compiled chunk
# ----------------------------------------------------------------------------------------------


class _Progress:
    """A progress bar on a terminal; elsewhere (logs, CI) one line per tenth of the run and per
    stage change, on stderr."""

    def __init__(self, total: int, initial: int):
        import sys

        self.total, self.done, self.stage = total, initial, None
        self.t0 = time.perf_counter()
        self.next_line = initial
        self.stream = sys.stderr
        self.bar = None
        if self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)

    def update(self, n: int, loss: float, stage: str) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4g}", stage=stage)
            return
        if self.done >= self.next_line or stage != self.stage or self.done == self.total:
            elapsed = time.perf_counter() - self.t0
            print(f"step {self.done}/{self.total} (group {stage}) loss {loss:.4g}, {elapsed:.0f} s",
                  file=self.stream, flush=True)
            self.next_line = self.done + max(1, self.total // 10)
            self.stage = stage

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Plan(NamedTuple):
    """The static part of a run (what the compiled chunk depends on besides shapes)."""

    config: TrainConfig  # the config's compiled form only: its numbers are data
    batch_size: int
    use_fixed: bool
    minibatch: bool = False  # draw batch_size trials of the fixed set per step


def _chunk_one(params, static, opt_state, objective, fixed, hp, key, start, stage_start, stage_len, *, task, plan, n_steps):
    config = plan.config

    def one_step(carry, scanned):
        params, opt_state = carry
        i, lr = scanned
        k_data, k_noise = jr.split(jr.fold_in(key, start + i))
        if plan.minibatch:  # uniform with replacement, as the NM-RNN authors' jr.choice
            data = fixed.take(jr.randint(k_data, (plan.batch_size,), 0, fixed.batch_size))
        elif plan.use_fixed:
            data = fixed
        else:
            data = task.sample(k_data, plan.batch_size)
        optimizer = make_optimizer(config, lr, hp["weight_decay"], hp["clip"])

        def update(params, opt_state, loss_of):
            (loss, aux), grads = eqx.filter_value_and_grad(lambda p: loss_of(eqx.combine(p, static)), has_aux=True)(params)
            return apply(params, opt_state, grads, loss, aux)

        def apply(params, opt_state, grads, loss, aux):
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return eqx.apply_updates(params, updates), opt_state, loss, aux

        if isinstance(objective, AbstractDirectionObjective):  # a local rule: its own direction
            (loss, aux), direction = objective.loss_and_direction(eqx.combine(params, static), data, key=k_noise)
            spec = jax.tree.map(lambda p: p is not None, params, is_leaf=lambda x: x is None)
            params, opt_state, loss, aux = apply(params, opt_state, eqx.filter(direction, spec), loss, aux)
            return (params, opt_state), (loss, aux)
        if not isinstance(objective, AbstractInnerObjective):
            params, opt_state, loss, aux = update(params, opt_state, lambda m: objective(m, data, key=k_noise))
            return (params, opt_state), (loss, aux)
        # several optimiser steps on what the current model prepared (PPO's epochs x minibatches)
        k_prep, k_inner = jr.split(k_noise)
        prepared = jax.lax.stop_gradient(objective.prepare(eqx.combine(params, static), data, key=k_prep))

        def inner(carry, i):
            p, o = carry
            p, o, loss, aux = update(p, o, lambda m: objective.inner(m, prepared, i, key=jr.fold_in(k_inner, i)))
            return (p, o), (loss, aux)

        (params, opt_state), (losses, auxs) = jax.lax.scan(inner, (params, opt_state), jnp.arange(objective.n_inner))
        return (params, opt_state), (jnp.mean(losses), jax.tree.map(jnp.mean, auxs))

    steps = jnp.arange(n_steps)
    # the chunk's learning rates in one vectorised computation (scalar ops inside the scan cost
    # a kernel launch each on CPU)
    lrs = learning_rate(hp, start + steps - stage_start, stage_len, config.lr_schedule)
    (params, opt_state), (losses, aux) = jax.lax.scan(one_step, (params, opt_state), (steps, lrs))
    # what a checkpoint would save must be finite: the last update of a chunk can overflow
    leaves = [x for x in jax.tree.leaves((params, opt_state)) if jnp.issubdtype(x.dtype, jnp.inexact)]
    finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves]))
    return params, opt_state, losses, aux, finite


@eqx.filter_jit
def _run_chunk(params, static, opt_state, objective, fixed, hp, key, start, stage_start, stage_len, task, plan, n_steps):
    return _chunk_one(params, static, opt_state, objective, fixed, hp, key, start, stage_start, stage_len,
                      task=task, plan=plan, n_steps=n_steps)


@eqx.filter_jit
def _run_chunk_vmapped(params, static, opt_state, objective, fixed, hp, key, start, stage_start, stage_len, task, plan, n_steps):
    def member(p, s, o, obj, fx, h, k):
        return _chunk_one(p, s, o, obj, fx, h, k, start, stage_start, stage_len, task=task, plan=plan, n_steps=n_steps)

    return eqx.filter_vmap(member)(params, static, opt_state, objective, fixed, hp, key)


# ----------------------------------------------------------------------------------------------
# validation and data
# ----------------------------------------------------------------------------------------------


def _resolve_batch(task: AbstractTask, config: TrainConfig, key) -> tuple[int, Batch | None]:
    """(trials per step, the fixed training set or None). With ``fixed_batch`` and a
    ``batch_size`` below the fixed set's size, each step draws that many of its trials."""
    batch_size = config.batch_size or task.default_batch_size
    if not config.fixed_batch:
        return batch_size, None
    fixed = task.fixed_batch()
    if fixed is None:
        fixed = task.sample(jr.fold_in(key, 2**31 - 1), batch_size)
    if config.batch_size is not None and config.batch_size < fixed.batch_size:
        return config.batch_size, fixed
    return fixed.batch_size, fixed


def _validate(model: AbstractRecurrentModel, task: AbstractTask, config: TrainConfig, objective: AbstractObjective) -> None:
    objective.validate(model, task)
    check_trainable(model, "all")
    for i, stage in enumerate(config.schedule):
        check_trainable(model, stage.group, f"stage {i} trains group {stage.group!r}")
    check_inputs(model, jnp.zeros((1, task.n_in)))


def _objective_for(config: TrainConfig, objective: AbstractObjective | None) -> AbstractObjective:
    if objective is None:
        return default_objective(config)
    if config.weight_l2 or config.activity_l2 or config.weight_l1:
        raise ValueError(
            "give the regularisers either in the TrainConfig (weight_l2, activity_l2, weight_l1) or "
            "as terms of the objective, not both"
        )
    return objective


def _term_names(objective, model, task, plan, fixed, key) -> tuple[str, ...]:
    data = fixed if plan.use_fixed else jax.eval_shape(lambda k: task.sample(k, plan.batch_size), key)
    aux = eqx.filter_eval_shape(lambda m, d: objective(m, d, key=key)[1], model, data)
    declared = tuple(getattr(objective, "term_names", ()))
    return declared if set(declared) == set(aux) else tuple(aux)


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------


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
    objective: AbstractObjective | None = None,
) -> TrainResult:
    """Train ``model`` on ``task``.

    Args:
        model: initial model (also the skeleton when resuming from ``run_dir``).
        task: the data source: ``task.sample(key, batch_size)`` runs inside the compiled loop
            (``fixed_batch()`` and ``default_batch_size`` as for a supervised task).
        config: a :class:`TrainConfig`.
        key: PRNG key for data and noise (model initialisation is the caller's business).
        run_dir: if given, checkpoints (``checkpoint.npz``) and the learning curve (``curve.csv``)
            are written there every ``config.checkpoint_every`` steps and at the end.
        resume: continue from ``run_dir/checkpoint.npz`` if it exists.
        progress: show a progress bar with the loss and the time left.
        callback: called as ``callback(step, losses_so_far)`` after every compiled chunk.
        objective: what to minimise (default: :func:`default_objective` of the config).

    Raises:
        NonFiniteLossError: the loss or the parameters became NaN/inf; the last good checkpoint
            (always finite) is left untouched.
        ValueError: the model, a stage's group or the whole model has no trainable parameters,
            or the model does not fit the task.
    """
    return _fit_members(
        [model], task, [config], keys=[key], run_dirs=[run_dir], resume=resume, progress=progress,
        callback=callback, objectives=[objective], vmapped=False,
    )[0]


def default_ensemble_vmap() -> bool:
    """Whether :func:`fit_ensemble` vmaps by default on this backend.

    On CPU, ``benchmarks/bench_ensemble.py`` measured S vmapped members no faster per member than
    S sequential runs (see ``benchmarks/RESULTS.md``), so the CPU default is sequential; on an
    accelerator the vmapped program fills the device and is the default.
    """
    return jax.default_backend() != "cpu"


def fit_ensemble(
    models: Sequence[AbstractRecurrentModel],
    task: AbstractTask,
    config: TrainConfig | Sequence[TrainConfig],
    *,
    keys: Sequence,
    run_dirs: Sequence[str | Path | None] | None = None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[int, np.ndarray], Any] | None = None,
    objectives: Sequence[AbstractObjective | None] | None = None,
    vmap: bool | None = None,
) -> list[TrainResult]:
    """Train S runs: ``models[i]`` with ``keys[i]`` (and ``config[i]``, ``objectives[i]`` when
    sequences are given).

    The members must share structure (same model class, sizes and options up to array values such
    as weights and time constants; configs equal up to their numeric hyperparameters, see
    :meth:`TrainConfig.structure`). ``vmap=True`` trains them as one vmapped program,
    ``vmap=False`` one after the other; ``None`` picks :func:`default_ensemble_vmap`. Both give
    per-member results equal to separate :func:`fit` runs (bit-identical when sequential, to
    float tolerance when vmapped). ``run_dirs[i]`` gets member i's checkpoints and curve.
    """
    models = list(models)
    n = len(models)
    if n == 0:
        raise ValueError("fit_ensemble needs at least one model")
    configs = list(config) if isinstance(config, Sequence) else [config] * n
    keys = list(keys)
    run_dirs = [None] * n if run_dirs is None else list(run_dirs)
    objectives = [None] * n if objectives is None else list(objectives)
    for name, seq in (("config", configs), ("keys", keys), ("run_dirs", run_dirs), ("objectives", objectives)):
        if len(seq) != n:
            raise ValueError(f"fit_ensemble got {n} models but {len(seq)} {name}")
    vmapped = default_ensemble_vmap() if vmap is None else bool(vmap)
    if not vmapped or n == 1:
        return [
            _fit_members([m], task, [c], keys=[k], run_dirs=[d], resume=resume, progress=progress,
                         callback=callback, objectives=[o], vmapped=False)[0]
            for m, c, k, d, o in zip(models, configs, keys, run_dirs, objectives, strict=True)
        ]
    return _fit_members(models, task, configs, keys=keys, run_dirs=run_dirs, resume=resume,
                        progress=progress, callback=callback, objectives=objectives, vmapped=True)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def _check_same_structure(items, what: str) -> None:
    ref = jax.tree.structure(items[0])
    shapes = [np.shape(x) for x in jax.tree.leaves(items[0])]
    for i, item in enumerate(items[1:], 1):
        if jax.tree.structure(item) != ref or [np.shape(x) for x in jax.tree.leaves(item)] != shapes:
            raise ValueError(
                f"ensemble member {i} has a different {what} structure than member 0 (sizes, options "
                "or static settings differ); train it separately"
            )


def _fit_members(models, task, configs, *, keys, run_dirs, resume, progress, callback, objectives, vmapped):
    n_members = len(models)
    config = configs[0]
    for i, c in enumerate(configs[1:], 1):
        if c.structure() != config.structure():
            raise ValueError(
                f"ensemble member {i}'s training config differs from member 0's in more than its "
                "numeric hyperparameters (lr, weight_decay, clip, regulariser weights, warm-up, "
                "final_lr_factor); train it separately"
            )
    objectives = [_objective_for(c, o) for c, o in zip(configs, objectives, strict=True)]
    for m, c, o in zip(models, configs, objectives, strict=True):
        _validate(m, task, c, o)
    if vmapped:
        _check_same_structure(models, "model")
        _check_same_structure(objectives, "objective")
    release_compiled_programs()  # a long-lived process (sweep worker) would run out of mappings

    schedule = config.schedule
    total = config.total_steps
    resolved = [_resolve_batch(task, c, k) for c, k in zip(configs, keys, strict=True)]
    batch_size = resolved[0][0]
    fixed_list = [f for _, f in resolved]
    minibatch = fixed_list[0] is not None and batch_size < fixed_list[0].batch_size
    plan = _Plan(config.compiled_form(), batch_size, config.fixed_batch, minibatch)
    stage_start = np.cumsum([0] + [s.steps for s in schedule])
    stage_index = np.repeat(np.arange(len(schedule)), [s.steps for s in schedule])
    names = _term_names(objectives[0], models[0], task, plan, fixed_list[0], keys[0])
    losses = np.full((n_members, total), np.nan, dtype=np.float64)
    terms = {k: np.full((n_members, total), np.nan, dtype=np.float64) for k in names}

    run_paths = [None if d is None else Path(d) for d in run_dirs]
    steps = [0] * n_members
    fills: list[Callable | None] = [None] * n_members
    models = list(models)
    block = config.select_best_block
    bests: list[tuple[Any, float] | None] = [None] * n_members  # (model, loss) of the stage's best block so far
    for i, path in enumerate(run_paths):
        if path is not None and resume and (path / CHECKPOINT).exists():
            steps[i], models[i], fills[i], losses[i], loaded_terms, bests[i] = _load(
                path, models[i], stage_start, total, names, block is not None
            )
            for k, v in loaded_terms.items():
                terms[k][i] = v
    if len(set(steps)) > 1:
        raise ValueError(
            "the ensemble members' checkpoints are at different steps "
            f"({dict(zip(map(str, run_paths), steps, strict=True))}); resume them one at a time"
        )
    step = steps[0]
    keep = config.keep_every
    if keep is not None and step == 0:  # the initial model is the first snapshot
        for path, m in zip(run_paths, models, strict=True):
            if path is not None:
                save_snapshot(path, m, 0)
    last_kept = step

    bar = _Progress(total, step) if progress else None
    t0 = time.perf_counter()
    last_ckpt = step
    chunk_fn = _run_chunk_vmapped if vmapped else _run_chunk
    keys_arr = jnp.stack([jnp.asarray(k) for k in keys]) if vmapped else keys[0]
    fixed = (_stack(fixed_list) if fixed_list[0] is not None else None) if vmapped else fixed_list[0]
    objective = _stack(objectives) if vmapped else objectives[0]

    def label(i):
        return f"member {i} ({run_paths[i]})" if n_members > 1 else ""

    with deferred_signals() as flag:  # SIGINT/SIGTERM stop at the next chunk boundary
        try:
            for s_idx, stage in enumerate(schedule):
                s0, s1 = int(stage_start[s_idx]), int(stage_start[s_idx + 1])
                if step >= s1:
                    continue
                parts = [eqx.partition(m, trainable_filter(m, stage.group)) for m in models]
                hps = [_hyper(c, s_idx) for c in configs]

                def fresh_states(trainable, hps=hps):
                    """A new optimiser state per member (``trainable``: each member's parameters)."""
                    return [make_optimizer(c, h["lr"], h["weight_decay"], h["clip"]).init(p)
                            for p, c, h in zip(trainable, configs, hps, strict=True)]

                opt_states = []
                for i, o in enumerate(fresh_states([p for p, _ in parts])):
                    if fills[i] is not None:
                        o = fills[i](o)
                        fills[i] = None
                    opt_states.append(o)
                if vmapped:
                    params = _stack([p for p, _ in parts])
                    static = _stack([s for _, s in parts])
                    opt_state = _stack(opt_states)
                    hp = _stack(hps)
                else:
                    (params, static), opt_state, hp = parts[0], opt_states[0], hps[0]
                best = best_loss = None
                if block is not None:
                    best, best_loss = _resumed_best(bests, models, stage.group, params, vmapped)
                while step < s1:
                    n = min(config.steps_per_call, s1 - step)
                    if block is not None:  # chunks end on block boundaries
                        n = min(n, block - (step - s0) % block)
                    new_params, new_opt, chunk, aux, finite = chunk_fn(
                        params, static, opt_state, objective, fixed, hp, keys_arr,
                        jnp.asarray(step, dtype=jnp.int32), jnp.asarray(s0, dtype=jnp.int32),
                        jnp.asarray(s1 - s0, dtype=jnp.int32), task, plan, n,
                    )
                    chunk = np.asarray(chunk).reshape(n_members, n)
                    finite = np.asarray(finite).reshape(n_members)
                    aux = {k: np.asarray(v).reshape(n_members, n) for k, v in aux.items()}
                    for i in range(n_members):
                        bad = np.flatnonzero(~np.isfinite(chunk[i]))
                        if bad.size or not finite[i]:
                            first = step + int(bad[0]) if bad.size else step + n - 1
                            upto = int(bad[0]) if bad.size else n
                            losses[i, step:step + upto] = chunk[i, :upto]
                            what = f"loss became {chunk[i, bad[0]]}" if bad.size else "the parameters became non-finite"
                            path = run_paths[i]
                            where = (
                                f"; the last good checkpoint (step {last_ckpt}) in {path} is intact"
                                if path is not None and last_ckpt > 0
                                else ""
                            )
                            who = label(i)
                            raise NonFiniteLossError(
                                f"{who + ': ' if who else ''}{what} at step {first} (stage {s_idx}, group "
                                f"{stage.group!r}); training stopped{where}"
                            )
                    params, opt_state = new_params, new_opt
                    losses[:, step : step + n] = chunk
                    for k, v in aux.items():
                        terms[k][:, step : step + n] = v
                    step += n
                    if bar is not None:
                        bar.update(n, float(chunk[:, -1].mean()), stage.group)
                    if block is not None and ((step - s0) % block == 0 or step == s1):
                        best, best_loss = _keep_best(best, best_loss, params, losses[:, step - 1], vmapped)
                        if step == s1:
                            params = best
                        elif config.restart_each_block:
                            members = [_unstack(params, i) for i in range(n_members)] if vmapped else [params]
                            opt_state = _stack(fresh_states(members)) if vmapped else fresh_states(members)[0]
                    mid = (best, best_loss) if block is not None and step < s1 else None

                    if keep is not None and step // keep > last_kept // keep:
                        # before the checkpoint: a run killed in between trains this chunk again
                        # and writes the same snapshot
                        _keep_members(run_paths, params, static, step, vmapped)
                        last_kept = step
                    if any(p is not None for p in run_paths) and (
                        step - last_ckpt >= config.checkpoint_every or step == s1
                    ):
                        _save_members(run_paths, params, static, opt_state, step, losses, stage_index, configs, terms, vmapped, mid)
                        last_ckpt = step
                    if flag.signum is not None:
                        if step > last_ckpt:
                            _save_members(run_paths, params, static, opt_state, step, losses, stage_index, configs, terms, vmapped, mid)
                        where = f"; checkpoint at step {step}" if any(p is not None for p in run_paths) else ""
                        raise Interrupted(flag.signum, f"training stopped at step {step} of {total}{where}")
                    if callback is not None:
                        callback(step, losses[0, :step] if n_members == 1 else losses[:, :step])
                # next stage: combine so the frozen parts of this stage carry over
                if vmapped:
                    models = [eqx.combine(_unstack(params, i), _unstack(static, i)) for i in range(n_members)]
                else:
                    models = [eqx.combine(params, static)]
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0
        return [
            TrainResult(models[i], losses[i], stage_index, seconds, {k: v[i] for k, v in terms.items()})
            for i in range(n_members)
        ]


# ----------------------------------------------------------------------------------------------
# checkpoints and curves
# ----------------------------------------------------------------------------------------------


def _write_curve(path: Path, losses, stage_index, config: TrainConfig, terms: dict[str, np.ndarray]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    names = list(terms)
    w.writerow(["step", "stage", "group", "loss", *names])
    groups = [s.group for s in config.schedule]
    for i, (loss, s) in enumerate(zip(losses, stage_index, strict=True)):
        w.writerow([i, int(s), groups[int(s)], repr(float(loss)), *(repr(float(terms[k][i])) for k in names)])
    atomic_write_text(path, buf.getvalue())


def _keep_best(best, best_loss, params, block_losses, vmapped):
    """Best-block selection at a block's end: keep ``params`` for every member whose block's last
    recorded loss (``block_losses``, ``(members,)``) is below its best so far."""
    block_losses = np.asarray(block_losses, dtype=np.float64)
    if best is None:
        return params, block_losses.copy()
    better = block_losses < best_loss
    new_loss = np.where(better, block_losses, best_loss)
    if not vmapped:
        return (params if better[0] else best), new_loss
    mask = jnp.asarray(better)

    def pick(b, p):
        return jnp.where(mask.reshape((-1,) + (1,) * (p.ndim - 1)), p, b)

    return jax.tree.map(pick, best, params), new_loss


def _resumed_best(bests, models, group, params, vmapped):
    """The best block so far of a stage resumed mid-way (from the checkpoints), else none."""
    if all(b is None for b in bests):
        return None, None
    if any(b is None for b in bests):
        raise CheckpointError("some ensemble members' checkpoints lack their best block; resume them one at a time")
    parts = [eqx.partition(m, trainable_filter(m, group))[0] for m, _ in bests]
    loss = np.asarray([b[1] for b in bests], dtype=np.float64)
    for i in range(len(bests)):
        bests[i] = None
    return (_stack(parts) if vmapped else parts[0]), loss


def _save_members(run_paths, params, static, opt_state, step, losses, stage_index, configs, terms, vmapped, mid=None) -> None:
    """Write every member's checkpoint and curve (members of a vmapped ensemble are unstacked).
    ``mid``: ``(best params, best losses)`` of the stage's best block so far, kept in the
    checkpoint so that a resumed run selects the same block."""
    for i, path in enumerate(run_paths):
        if path is None:
            continue
        p_i = _unstack(params, i) if vmapped else params
        s_i = _unstack(static, i) if vmapped else static
        o_i = _unstack(opt_state, i) if vmapped else opt_state
        best_i = None
        if mid is not None and mid[0] is not None:
            b_i = _unstack(mid[0], i) if vmapped else mid[0]
            best_i = (eqx.combine(b_i, s_i), float(mid[1][i]))
        _save(path, eqx.combine(p_i, s_i), o_i, step, losses[i], stage_index, configs[i],
              {k: v[i] for k, v in terms.items()}, best_i)


def snapshot_path(run_path: str | Path, step: int) -> Path:
    """Where the snapshot of a run at ``step`` is kept: ``run_dir/snapshots/step-00001000.npz``."""
    return Path(run_path) / SNAPSHOTS / f"step-{int(step):08d}.npz"


def save_snapshot(run_path: str | Path, model, step: int) -> None:
    """Keep ``model`` (its arrays) as the snapshot of step ``step`` (atomic, like a checkpoint)."""
    path = snapshot_path(run_path, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": eqx.filter(model, eqx.is_array)}, {"step": np.asarray(step)})


def _keep_members(run_paths, params, static, step, vmapped) -> None:
    for i, path in enumerate(run_paths):
        if path is not None:
            p_i = _unstack(params, i) if vmapped else params
            s_i = _unstack(static, i) if vmapped else static
            save_snapshot(path, eqx.combine(p_i, s_i), step)


def _save(run_path, model, opt_state, step, losses, stage_index, config, terms, best=None) -> None:
    arrays = {"step": np.asarray(step), "losses": losses[:step]}
    arrays.update({f"term:{k}": v[:step] for k, v in terms.items()})
    trees = {"model": eqx.filter(model, eqx.is_array), "opt_state": opt_state}
    if best is not None:
        trees["best_model"] = eqx.filter(best[0], eqx.is_array)
        arrays["best_loss"] = np.asarray(best[1], dtype=np.float64)
    save_checkpoint(run_path / CHECKPOINT, trees, arrays)
    _write_curve(run_path / CURVE, losses[:step], stage_index[:step], config, {k: v[:step] for k, v in terms.items()})


def _load(run_path, model, stage_start, total, names=(), best_block=False):
    """Restore (step, model, a function filling the optimiser state, losses, terms, best) from a
    checkpoint; ``best`` is the (model, loss) of the stage's best block so far when the checkpoint
    is mid-stage and ``best_block`` selection is on, else ``None``."""
    path = run_path / CHECKPOINT
    arrays_part, static_part = eqx.partition(model, eqx.is_array)
    files = read_arrays(path)
    step_arr = files.get("array/step")
    if step_arr is None or np.ndim(step_arr) != 0 or not np.issubdtype(step_arr.dtype, np.integer) or int(step_arr) < 0:
        raise CheckpointError(f"checkpoint {path}: array/step must be a non-negative integer scalar")
    step = int(step_arr)
    if step > total:
        raise CheckpointError(f"checkpoint {path} is at step {step}, beyond this run's {total} steps")
    trees, arrays = load_checkpoint(path, {"model": arrays_part}, files)
    model = eqx.combine(trees["model"], static_part)
    saved = arrays.get("losses")
    if saved is None or saved.ndim != 1 or len(saved) != step or not np.issubdtype(saved.dtype, np.floating):
        raise CheckpointError(f"checkpoint {path}: array/losses must be a float vector of length {step}")
    losses = np.full(total, np.nan)
    losses[:step] = saved
    terms = {}
    for k in names:
        v = np.full(total, np.nan)
        saved_term = arrays.get(f"term:{k}")
        if saved_term is not None and saved_term.ndim == 1 and len(saved_term) == step:
            v[:step] = saved_term
        terms[k] = v

    def fill(opt_skeleton):
        # The checkpoint's optimiser state belongs to the stage in progress at ``step``; at a
        # stage boundary the next stage starts fresh, so only restore mid-stage.
        if step in set(int(s) for s in stage_start):
            return opt_skeleton
        restored, _ = load_checkpoint(path, {"opt_state": opt_skeleton}, files)
        return restored["opt_state"]

    best = None
    if best_block and step not in set(int(s) for s in stage_start):
        if "array/best_loss" not in files:
            raise CheckpointError(
                f"checkpoint {path} was written without best-block selection (select_best_block); "
                "resume it with the settings it was trained with"
            )
        restored, _ = load_checkpoint(path, {"best_model": arrays_part}, files)
        best = (eqx.combine(restored["best_model"], static_part), float(arrays["best_loss"]))
    return step, model, fill, losses, terms, best
