"""Speed of the training loop's compiled chunk: hyperparameters as data against the old baked-in
formulation, and ensembles (vmapped against sequential).

Part 1, no regression. For every model at the NM-RNN paper's MWG sizes, one chunk of ``--chunk``
optimiser steps on the full MWG batch (40 trials x 110 steps), timed per step:

* ``as data`` (the library): ``nmrnn.train.loop._run_chunk``, the chunk ``fit`` compiles, with the
  learning rate, weight decay and clipping threshold passed as arrays, the optimiser built inside
  the step, the time constants as array leaves of the model, and the objective's aux terms
  recorded;
* ``baked in`` (the formulation before hyperparameters became data): the same scan with
  ``chain(clip_by_global_norm(1.0), adamw(1e-2))`` built once from Python floats, time constants
  as Python floats on the model (static), and the bare masked-MSE loss.

Part 2, ensembles. The NM-RNN on MWG, S = 1, 4, 10 members (different seeds): one vmapped chunk of
S members against S sequential chunks, per member-step. The faster one is the CPU default of
:func:`nmrnn.train.fit_ensemble` (:func:`nmrnn.train.loop.default_ensemble_vmap`).

Every variant is compiled and warmed up first; rounds interleave the variants. Reported: median
ms per optimiser step (per member-step for ensembles) and the ratio to the reference row.

Run: ``python benchmarks/bench_training.py`` (``--quick`` for a short run, ``--no-write`` to print
only). Results are appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from results_file import publish

from nmrnn.models import make_model, match_size, param_count, trainable_filter
from nmrnn.models.base import replace_fields
from nmrnn.tasks import make_task, masked_mse
from nmrnn.train import TrainConfig
from nmrnn.train.loop import (
    _hyper,
    _Plan,
    _run_chunk,
    _run_chunk_vmapped,
    _stack,
    default_objective,
    make_optimizer,
)

NMRNN_PAPER = dict(n_hidden=100, n_nm=5, rank=3, tau_x=10.0, tau_z=100.0)
TIME_CONSTANTS = ("tau", "tau_x", "tau_z", "tau_r", "tau_n")


def models(task):
    ref = make_model("nmrnn", n_in=task.n_in, n_out=task.n_out, key=jr.PRNGKey(0), **NMRNN_PAPER)
    target = param_count(ref)
    out = {"NM-RNN": ref}
    for label, name, opts in (("LR-RNN", "lowrank", {"rank": 3}), ("vanilla RNN", "vanilla", {}),
                              ("LSTM", "lstm", {}), ("GRU", "gru", {}), ("e-nmRNN (M=4)", "enmrnn", {"n_nm": 4})):
        n = match_size(name, target, n_in=task.n_in, n_out=task.n_out, **opts)
        out[label] = make_model(name, n_in=task.n_in, n_out=task.n_out, n_hidden=n, key=jr.PRNGKey(0), **opts)
    return out


def new_chunk(model, task, config, batch, n_steps):
    """A callable running one chunk of ``fit``'s compiled loop (state carried between calls)."""
    params, static = eqx.partition(model, trainable_filter(model))
    hp = _hyper(config, 0)
    opt_state = make_optimizer(config, hp["lr"]).init(params)
    plan = _Plan(config.compiled_form(), batch.batch_size, True)
    objective = default_objective(config)
    state = {"p": params, "o": opt_state}

    def run():
        p, o, losses, _, _ = _run_chunk(state["p"], static, state["o"], objective, batch, hp, jr.PRNGKey(0),
                                        jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32),
                                        jnp.asarray(n_steps, jnp.int32), task, plan, n_steps)
        state["p"], state["o"] = p, o
        return losses

    return run


def old_chunk(model, task, batch, n_steps):
    """The formulation before: Python-float hyperparameters baked into the optimiser, static
    time constants, the bare loss."""
    floats = {k: float(getattr(model, k)) for k in TIME_CONSTANTS if hasattr(model, k)}
    model = replace_fields(model, **floats)  # Python floats: static under jit, as before
    params, static = eqx.partition(model, trainable_filter(model))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=1e-4))

    @eqx.filter_jit
    def chunk(params, opt_state, batch, key, start):
        # as the loop before: the fixed batch and the start step are arguments, the keys
        # fold_in(key, global step)
        def one(carry, i):
            p, s = carry
            k_noise = jr.split(jr.fold_in(key, start + i))[1]
            loss, g = eqx.filter_value_and_grad(
                lambda q: masked_mse(eqx.combine(q, static).forward(batch.inputs, key=k_noise).outputs,
                                     batch.targets, batch.mask))(p)
            u, s = opt.update(g, s, p)
            return (eqx.apply_updates(p, u), s), loss

        (params, opt_state), losses = jax.lax.scan(one, (params, opt_state), jnp.arange(n_steps))
        return params, opt_state, losses

    state = {"p": params, "o": opt.init(params)}

    def run():
        state["p"], state["o"], losses = chunk(state["p"], state["o"], batch, jr.PRNGKey(0), jnp.asarray(0, jnp.int32))
        return losses

    return run


def ensemble_runs(task, config, batch, n_steps, sizes):
    """{(S, "vmapped"|"sequential"): callable running S members for one chunk}."""
    out = {}
    for S in sizes:
        members = [make_model("nmrnn", n_in=task.n_in, n_out=task.n_out, key=jr.PRNGKey(i), **NMRNN_PAPER) for i in range(S)]
        out[(S, "sequential")] = _sequential(members, task, config, batch, n_steps)
        out[(S, "vmapped")] = _vmapped(members, task, config, batch, n_steps)
    return out


def _sequential(members, task, config, batch, n_steps):
    runs = [new_chunk(m, task, config, batch, n_steps) for m in members]

    def run():
        return [r() for r in runs]

    return run


def _vmapped(members, task, config, batch, n_steps):
    parts = [eqx.partition(m, trainable_filter(m)) for m in members]
    hp = _hyper(config, 0)
    S = len(members)
    params = _stack([p for p, _ in parts])
    static = _stack([s for _, s in parts])
    opt_state = _stack([make_optimizer(config, hp["lr"]).init(p) for p, _ in parts])
    hps = _stack([hp] * S)
    objective = _stack([default_objective(config)] * S)
    fixed = _stack([batch] * S)
    keys = jnp.stack([jr.PRNGKey(i) for i in range(S)])
    plan = _Plan(config.compiled_form(), batch.batch_size, True)
    state = {"p": params, "o": opt_state}

    def run():
        p, o, losses, _, _ = _run_chunk_vmapped(state["p"], static, state["o"], objective, fixed, hps, keys,
                                                jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32),
                                                jnp.asarray(n_steps, jnp.int32), task, plan, n_steps)
        state["p"], state["o"] = p, o
        return losses

    return run


def time_interleaved(runs, rounds, repeats):
    for r in runs.values():
        jax.block_until_ready(r())  # compile
        jax.block_until_ready(r())  # warm
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, r in runs.items():
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(r())
                times[k].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--chunk", type=int, default=50, help="optimiser steps per compiled chunk")
    p.add_argument("--sizes", default="1,4,10", help="ensemble sizes")
    p.add_argument("--quick", action="store_true", help="2 rounds of 1 call, chunks of 20 steps")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--skip-models", action="store_true", help="only the ensemble part")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats, args.chunk = 2, 1, 20
    sizes = [int(s) for s in args.sizes.split(",")]
    task = make_task("mwg")
    batch = task.fixed_batch()
    config = TrainConfig(fixed_batch=True, steps_per_call=args.chunk)
    load0 = os.getloadavg()[0]
    lines = []
    if not args.skip_models:
        runs = {}
        for label, model in models(task).items():
            runs[(label, "as data")] = new_chunk(model, task, config, batch, args.chunk)
            runs[(label, "baked in")] = old_chunk(model, task, batch, args.chunk)
        times = time_interleaved(runs, args.rounds, args.repeats)
        lines += ["| model | formulation | ms/step (median) | ms/step (p10) | as data / baked in (median, p10) |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for label in models(task):
            new, old = times[(label, "as data")] / args.chunk * 1e3, times[(label, "baked in")] / args.chunk * 1e3
            nm, om, n10, o10 = np.median(new), np.median(old), np.percentile(new, 10), np.percentile(old, 10)
            lines.append(f"| {label} | as data (the library) | {nm:.2f} | {n10:.2f} | {nm / om:.2f}x, {n10 / o10:.2f}x |")
            lines.append(f"| {label} | baked in (before) | {om:.2f} | {o10:.2f} | |")
        lines.append("")
    eruns = ensemble_runs(task, config, batch, args.chunk, sizes)
    etimes = time_interleaved(eruns, args.rounds, args.repeats)
    lines += ["| members S | sequential ms per member-step | vmapped ms per member-step | vmapped / sequential |",
              "| ---: | ---: | ---: | ---: |"]
    for S in sizes:
        seq = np.median(etimes[(S, "sequential")]) / (args.chunk * S) * 1e3
        vm = np.median(etimes[(S, "vmapped")]) / (args.chunk * S) * 1e3
        lines.append(f"| {S} | {seq:.2f} | {vm:.2f} | {vm / seq:.2f}x |")
    load1 = os.getloadavg()[0]
    header = (
        f"## Training chunk: hyperparameters as data, ensembles ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n"
        f"`benchmarks/bench_training.py`: chunks of {args.chunk} optimiser steps on the MWG batch (40 trials x "
        f"110 steps), {args.rounds} interleaved rounds x {args.repeats} calls; {os.cpu_count()} CPU cores, JAX "
        f"{jax.__version__} on {jax.default_backend()}; load average {load0:.1f} at the start, {load1:.1f} at the end.\n"
    )
    text = header + "\n" + "\n".join(lines) + "\n"
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
