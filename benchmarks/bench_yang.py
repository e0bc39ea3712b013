"""Speed of the e-nmRNN training step at the sizes of the Yang multitask reproduction (R11), side by
side with an eager PyTorch step of the same model, and the paper profile's wall time estimated from
the measured step costs.

The step: a batch of 32 mixed-rule Yang trials (``make_task("yang_multitask")`` with the
reproduction's options: 209 steps x 85 inputs, 33 outputs), forward ``simulate`` + masked MSE +
gradient + ``clip_by_global_norm(1.0)`` + Adam(1e-3) (the reproduction's recipe), for the R11
e-nmRNN (128 ReLU-Tanh neurons, 4 NMs, ``tau_r = 5``, ``tau_n = 10`` steps) with the full
modulation tensor (97,969 parameters) and with the factorised one (``t_rank=17``: 49,841).

* ``ours (jit step)``: one jit-compiled step on a fixed batch;
* ``eager PyTorch``: the same equations in plain PyTorch (a Python loop over the 209 steps,
  ``backward``, ``clip_grad_norm_``, ``Adam``), float32, parameters copied from our model; its
  initial loss must equal ours (relative 1e-5) before anything is timed, or the script stops;
* ``ours, training loop``: :func:`nmrnn.train.fit` with 50 steps per compiled call, fresh batches
  generated inside the loop (the reproduction's path; every step draws and renders its own batch),
  the time per step of a second, already compiled run; also for the 224-unit vanilla RNN baseline.

The process computes in a one-CPU runtime (:func:`nmrnn.runtime.start_one_cpu_runtime`) and
PyTorch uses one thread: the conditions of every worker of a grid or sweep, whose step costs the
estimate uses. The estimate of the paper profile (its TPE searches and its training runs, shared by
``--workers`` one-CPU workers) leaves out compilation and the analyses after training.

Run: ``python benchmarks/bench_yang.py`` (``--quick`` for fewer timing rounds, ``--no-write`` to
print only). Results are appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nmrnn.runtime import start_one_cpu_runtime  # noqa: E402

start_one_cpu_runtime()

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from bench_models import machine_info, time_interleaved  # noqa: E402
from results_file import publish  # noqa: E402

from nmrnn.experiments.yang_multitask import PROFILES, TAU_R, task_options  # noqa: E402
from nmrnn.models import make_model, param_count, simulate, trainable_filter  # noqa: E402
from nmrnn.tasks import make_task, masked_mse  # noqa: E402
from nmrnn.train import TrainConfig, fit  # noqa: E402

LR = 1e-3
TAU_N = 10.0
LOOP_STEPS = 50


def optimizer() -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(LR))


def jax_step(model):
    """A jitted training step on a fixed batch and the initial loss."""
    params, static = eqx.partition(model, trainable_filter(model))
    opt = optimizer()

    def loss_fn(p, inputs, targets, mask):
        return masked_mse(simulate(eqx.combine(p, static), inputs).outputs, targets, mask)

    @jax.jit
    def step(p, s, inputs, targets, mask):
        loss, grads = jax.value_and_grad(loss_fn)(p, inputs, targets, mask)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    state = {"p": params, "s": opt.init(params)}

    def run(batch):
        state["p"], state["s"], loss = step(state["p"], state["s"], batch.inputs, batch.targets, batch.mask)
        return loss

    return run, lambda b: float(jax.jit(loss_fn)(params, b.inputs, b.targets, b.mask))


def torch_step(model, threads: int = 1):
    """The e-nmRNN training step in eager PyTorch (the equations of :mod:`nmrnn.models.enmrnn`,
    noise-free, zero initial state), parameters copied from ``model``."""
    import torch

    torch.set_num_threads(threads)

    def param(a):
        return torch.nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32)))

    full = model.T is not None
    names = ["W", "U", "b", "R", "Z", "D", "d", "E", "e"] + (["T"] if full else ["T_left", "T_right"])
    P = {k: param(getattr(model, k)) for k in names}
    opt = torch.optim.Adam(P.values(), lr=LR)
    ar, an = model.dt / float(model.tau_r), model.dt / float(model.tau_n)
    N, M = model.n_hidden, model.n_nm

    def loss_fn(batch):
        inputs = torch.from_numpy(np.array(batch.inputs, dtype=np.float32))
        targets = torch.from_numpy(np.array(batch.targets, dtype=np.float32))
        mask = torch.from_numpy(np.array(batch.mask, dtype=np.float32))
        B = inputs.shape[0]
        r, n = torch.zeros(B, N), torch.zeros(B, M)
        drive = inputs @ P["U"].T + P["b"]  # (B, T, N): the input current of every step at once
        ys = []
        for t in range(inputs.shape[1]):
            if full:
                tr = (r @ P["T"].reshape(M * N, N).T).reshape(B, M, N)  # (T_k r)_i
                mod = (n[:, :, None] * tr).sum(1)
            else:
                proj = torch.einsum("bj,kjq->bkq", r, P["T_right"])
                mod = torch.einsum("bk,bkq,kiq->bi", n, proj, P["T_left"])
            pre = r @ P["W"].T + mod + drive[:, t]
            r_new = r + ar * (-r + P["E"] * torch.relu(torch.tanh(pre) + P["e"]))
            n = n + an * (-n + torch.sigmoid(r @ P["R"].T + n @ P["Z"].T))
            r = r_new
            ys.append(r)
        y = torch.stack(ys, 1) @ P["D"].T + P["d"]
        return torch.sum(mask * (y - targets) ** 2) / torch.sum(mask)

    def run(batch):
        opt.zero_grad()
        loss = loss_fn(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(P.values(), 1.0)
        opt.step()
        return loss.detach()

    def first_loss(batch):
        with torch.no_grad():
            return float(loss_fn(batch))

    return run, first_loss


def loop_ms_per_step(model, task, steps: int = LOOP_STEPS) -> float:
    """Milliseconds per step of :func:`nmrnn.train.fit` (fresh batches inside the loop), measured
    on a second run of the compiled loop."""
    cfg = TrainConfig(steps=steps, steps_per_call=steps, batch_size=32, lr=LR, optimizer="adam", weight_l2=1e-6)
    fit(model, task, cfg, key=jr.PRNGKey(1))  # compiles
    t0 = time.perf_counter()
    fit(model, task, cfg, key=jr.PRNGKey(2))
    return 1e3 * (time.perf_counter() - t0) / steps


def paper_estimate(ms: dict[str, float], workers: int) -> tuple[float, str]:
    """Hours of the paper profile from the loop's ms per step (TPE searches + training runs; the
    spatial e-nmRNN at the factorised e-nmRNN's cost)."""
    s = PROFILES["paper"]
    cost = {"e-nmRNN": ms["e-nmRNN"], "e-nmRNN spatial": ms["e-nmRNN"], "vanilla RNN": ms["vanilla RNN"]}
    sweep = sum(cost[m] * s.sweep_trials * s.sweep_steps for m in s.models) / 1e3
    train = sum(cost[m] * s.seeds * s.steps for m in s.models) / 1e3
    hours = (sweep + train) / workers / 3600
    text = (f"paper profile ({', '.join(s.models)}; TPE {s.sweep_trials} trials x {s.sweep_steps} steps per model, "
            f"then {s.seeds} seeds x {s.steps} steps per model, batch 32): {sweep / 3600:.1f} h of searches + "
            f"{train / 3600:.1f} h of training on one CPU = about {hours:.0f} h with {workers} workers "
            "(compilation and the analyses after training not included)")
    return hours, text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 calls")
    p.add_argument("--workers", type=int, default=2, help="workers of the paper-profile estimate")
    p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)
    rounds, repeats = (2, 2) if args.quick else (args.rounds, args.repeats)
    load_start = os.getloadavg()[0]

    task = make_task("yang_multitask", **task_options(PROFILES["quick"]))
    batch = task.sample(jr.PRNGKey(0), 32)
    opts = dict(n_in=85, n_out=33, n_hidden=128, n_nm=4, activation="relutanh", tau_r=TAU_R, tau_n=TAU_N)
    models = {"full T": make_model("enmrnn", t_rank=None, key=jr.PRNGKey(0), **opts),
              "t_rank=17": make_model("enmrnn", t_rank=17, key=jr.PRNGKey(0), **opts)}
    runs, losses = {}, {}
    for label, model in models.items():
        for form, builder in (("ours (jit step)", jax_step), ("eager PyTorch", torch_step)):
            key = f"{label}|{form}"
            runs[key], first = builder(model)
            losses[key] = first(batch)
        ours, theirs = losses[f"{label}|ours (jit step)"], losses[f"{label}|eager PyTorch"]
        if abs(ours - theirs) > 1e-5 * abs(ours):
            raise SystemExit(f"{label}: the PyTorch step's initial loss {theirs:.8g} differs from ours {ours:.8g}")
        print(f"{label}: initial loss {ours:.8g} (ours) = {theirs:.8g} (PyTorch)")
    times = time_interleaved(runs, batch, rounds, repeats)

    vanilla = make_model("vanilla", n_in=85, n_out=33, n_hidden=224, tau=TAU_R, activation="relu", bias=True,
                         sigma_rec=0.05, key=jr.PRNGKey(0))
    noisy = make_model("enmrnn", t_rank=17, sigma_rec=0.05, key=jr.PRNGKey(0), **opts)  # as the reproduction trains
    loop = {"e-nmRNN": loop_ms_per_step(noisy, task),
            "vanilla RNN": loop_ms_per_step(vanilla, task)}
    load_end = os.getloadavg()[0]

    table = ["| model | formulation | params | ms/step (median) | ms/step (p10) | vs ours |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for key, t in times.items():
        label, form = key.split("|")
        ref = float(np.median(times[f"{label}|ours (jit step)"]))
        med = float(np.median(t))
        table.append(f"| e-nmRNN, {label} | {form} | {param_count(models[label])} | {med:.1f} | "
                     f"{float(np.percentile(t, 10)):.1f} | {med / ref:.2f}x |")
    table.append(f"| e-nmRNN, t_rank=17 | ours, training loop (batches generated inside) | "
                 f"{param_count(models['t_rank=17'])} | {loop['e-nmRNN']:.1f} | | |")
    table.append(f"| vanilla RNN, 224 units | ours, training loop (batches generated inside) | {param_count(vanilla)} | "
                 f"{loop['vanilla RNN']:.1f} | | |")
    ratios = ", ".join(
        f"{label}: PyTorch {float(np.median(times[f'{label}|eager PyTorch'])) / float(np.median(times[f'{label}|ours (jit step)'])):.1f}x slower"
        for label in models)
    _, estimate = paper_estimate(loop, args.workers)
    info = machine_info()
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = "\n".join([
        f"## R11 e-nmRNN training step on Yang's tasks ({stamp})",
        "",
        f"`benchmarks/bench_yang.py`: one training step (simulate + masked MSE + grad + clip(1) + Adam(1e-3)) of "
        f"the R11 e-nmRNN on a batch of 32 mixed-rule Yang trials x 209 steps, {rounds} interleaved rounds x "
        f"{repeats} calls; one-CPU JAX runtime, PyTorch with 1 thread; initial losses equal (relative 1e-5). "
        f"Machine: {info['nproc']} CPU cores ({info['cpu']}); load average {load_start:.1f} at the start, "
        f"{load_end:.1f} at the end (other jobs). Versions: {info['versions']}.",
        "",
        *table,
        "",
        f"Eager PyTorch against ours: {ratios}. Estimate of the {estimate}. The paper reports 48+ hours on a GPU.",
        "",
    ])
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
