"""Speed of one training step of every model on the full Measure-Wait-Go batch, side by side with
alternative formulations of the NM-RNN step.

One training step = forward ``simulate`` + masked-MSE loss + gradient + optax
``chain(clip_by_global_norm(1.0), adamw(1e-2))`` update, compiled with ``jax.jit``, on the MWG
training set (``make_task("mwg").fixed_batch()``: 40 trials x 110 steps x 3 inputs, 1 output).

Models at the NM-RNN paper's parameter-matched sizes: NM-RNN N=100, M=5, K=3, tau_x=10,
tau_z=100 (1059 parameters); LR-RNN N=106, K=3; vanilla N=31; LSTM N=15; GRU and e-nmRNN sized by
``match_size`` to the same count.

Alternatives for the NM-RNN (same equations, same parameters, same optimiser):

* ``vmap over trials``: ``jax.vmap`` of the per-trial (unbatched) ``simulate``;
* ``vmap, QR in scan``: the per-trial formulation with L re-orthonormalised by QR at every step
  inside the scan (as research code that orthonormalises inside the step does), against our
  batched step of the same orthonormalised model (``ours, orthonormalised``), which computes the
  QR once per call;
* ``plain matmuls``: our batched step with every product a plain matmul; ours writes the products
  with a narrow side (K = 3 ranks, M = 5 NM units, P = 3 inputs) as broadcast multiply-adds or
  matrix-vector products (:func:`nmrnn.models.base.narrow_matmul`), which XLA runs faster on CPU;
* ``eager PyTorch``: the same step in plain PyTorch (a Python loop over time, ``backward``,
  ``clip_grad_norm_`` and ``AdamW``), if torch is installed.

Timing: every variant is compiled and warmed up first; then ``--rounds`` rounds each call every
variant ``--repeats`` times (interleaved, so that load from other processes hits all variants
alike), each call timed with ``block_until_ready``. Reported: median and 10th percentile in ms.
GFLOP/s are analytic FLOPs (see :func:`forward_flops`) over the median time; XLA's own cost
analysis counts a ``while`` loop body once, not once per step, so it is not used.

Run: ``python benchmarks/bench_models.py`` (``--quick`` for a short run, ``--no-write`` to print
only). Results are appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from nmrnn.models import count_for, make_model, match_size, param_count, simulate, trainable_filter
from nmrnn.models.bptt import scan_steps
from nmrnn.tasks import make_task, masked_mse

RESULTS = Path(__file__).with_name("RESULTS.md")
TARGET_MS = 4.0  # the NM-RNN step target on the 2-core development machine
NMRNN_PAPER = dict(n_hidden=100, n_nm=5, rank=3, tau_x=10.0, tau_z=100.0)


def optimizer() -> optax.GradientTransformation:
    """The NM-RNN reference recipe: clip the global norm to 1, then AdamW(1e-2)."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))


# ------------------------------------------------------------------------------------------------
# analytic FLOP counts
# ------------------------------------------------------------------------------------------------


def forward_flops(name: str, n: int, p: int, o: int, **opt) -> int:
    """FLOPs of one forward time step of one trial, readout included.

    Convention: a multiply-add counts 2, every other elementwise operation (transcendentals
    included) 1; the leaky update ``(1 - a) x + a drive`` counts 3 per unit. A training step is
    counted as 3x the forward pass (the backward pass of matrix products costs twice the forward)
    plus the loss; the optimiser update (~15 FLOPs per parameter) is added separately.
    """
    readout = 2 * o * n
    if name == "vanilla":
        return 2 * n * n + 2 * n * p + n + 3 * n + readout  # W phi(x), B u, tanh, update
    if name == "lowrank":
        k = opt["rank"]
        return 4 * n * k + k + 2 * n * p + n + 3 * n + readout
    if name == "nmrnn":
        m, k = opt["n_nm"], opt["rank"]
        z = 2 * m * m + 2 * m * p + m + 3 * m  # W_z tanh(z), B_z u, tanh, update
        gains = 2 * k * m + 2 * k  # A_z z + b_z, sigmoid
        x = 4 * n * k + 2 * k + 2 * n * p + n + 3 * n  # R^T tanh(x), /N, *s, L(.), B_x u, tanh, update
        return z + gains + x + readout
    if name == "enmrnn":
        m = opt["n_nm"]
        pre = 2 * n * n + 2 * m * n * n + 2 * m * n + 2 * n * p + 2 * n  # W r, T_k r, sum_k n_k, U u, b
        r = 4 * n + 3 * n  # relu(tanh(.) + e) * E, Euler update
        nm = 2 * m * n + 2 * m * m + m + 3 * m  # R r, Z n, sigmoid, update
        return pre + r + nm + readout
    if name == "gru":
        return 2 * 3 * n * (p + n) + 3 * n + 3 * n + 8 * n + readout  # two matmuls, bias, gates
    if name == "lstm":
        return 2 * 4 * n * (p + n) + 4 * n + 5 * n + 5 * n + readout
    raise ValueError(f"no FLOP count for model {name!r}")


def step_flops(name: str, n: int, p: int, o: int, batch: int, steps: int, n_params: int, **opt) -> int:
    return 3 * forward_flops(name, n, p, o, **opt) * batch * steps + 3 * batch * steps * o + 15 * n_params


# ------------------------------------------------------------------------------------------------
# training steps
# ------------------------------------------------------------------------------------------------


def jax_train_step(model, forward: Callable | None = None):
    """A jitted ``step(params, opt_state, batch) -> (params, opt_state, loss)`` and its state.

    ``forward(model, inputs) -> outputs`` defaults to ``simulate(model, inputs).outputs``.
    """
    forward = forward or (lambda m, u: simulate(m, u).outputs)
    params, static = eqx.partition(model, trainable_filter(model))
    opt = optimizer()

    def loss_fn(p, inputs, targets, mask):
        return masked_mse(forward(eqx.combine(p, static), inputs), targets, mask)

    @jax.jit
    def step(p, opt_state, inputs, targets, mask):
        loss, grads = jax.value_and_grad(loss_fn)(p, inputs, targets, mask)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    state = {"p": params, "s": opt.init(params)}

    def run(batch):
        state["p"], state["s"], loss = step(state["p"], state["s"], batch.inputs, batch.targets, batch.mask)
        return loss

    def first_loss(batch):
        return float(jax.jit(loss_fn)(params, batch.inputs, batch.targets, batch.mask))

    return run, first_loss


def autodiff_forward(model, inputs):
    """Our batched forward pass differentiated by plain autodiff of the scan (the weight
    gradients summed inside the reverse loop): the formulation before the hand-written backward
    pass of :mod:`nmrnn.models.bptt`."""
    core = model.materialize()
    xs = jnp.moveaxis(inputs, 1, 0)
    states = scan_steps(core, core.initial_state(inputs.shape[:1]), xs, manual=False)
    return jnp.moveaxis(core.readout(states), 0, 1)


def vmap_forward(model, inputs):
    """Per-trial ``simulate`` (unbatched, ``(T, P)``) vmapped over the trials."""
    return jax.vmap(lambda u: simulate(model, u).outputs)(inputs)


def vmap_qr_in_scan_forward(model, inputs):
    """Per-trial scan of the raw (not materialised) model: its step re-orthonormalises L by QR
    at every time step; vmapped over the trials."""

    def trial(u):
        def body(state, u_t):
            state = model.step(state, u_t)
            return state, model.readout(state)

        _, ys = jax.lax.scan(body, model.initial_state(), u)
        return ys

    return jax.vmap(trial)(inputs)


def plain_matmul_nmrnn_forward(model, inputs):
    """The NM-RNN step (plain options: tanh, non-symmetric, no feedback, all channels to both
    subnetworks) with every product a plain matmul, batched like ours: the formulation the
    model used before :func:`nmrnn.models.base.narrow_matmul`."""
    a_x, a_z = model.dt / model.tau_x, model.dt / model.tau_z
    L, R = model.L, model.R

    def body(state, u):
        x, z = state
        z = (1 - a_z) * z + a_z * (jnp.tanh(z) @ model.W_z.T + u @ model.B_z.T)
        s = jax.nn.sigmoid(z @ model.A_z.T + model.b_z)
        x = (1 - a_x) * x + a_x * ((((jnp.tanh(x) @ R) / model.n_hidden) * s) @ L.T + u @ model.B_x.T)
        return (x, z), x

    batch = inputs.shape[0]
    init = (jnp.zeros((batch, model.n_hidden)), jnp.zeros((batch, model.n_nm)))
    _, xs = jax.lax.scan(body, init, jnp.moveaxis(inputs, 1, 0))
    return jnp.moveaxis(xs @ model.C.T + model.d, 0, 1)


def torch_train_step(model, batch, threads: int):
    """The NM-RNN training step in eager PyTorch (float32), parameters copied from ``model``.

    ``threads`` intra-op threads: for these small products one thread is PyTorch's fastest
    setting, and it does not degrade when other processes load the machine.
    """
    import torch

    torch.set_num_threads(threads)

    def param(a):
        return torch.nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32)))

    names = ("W_z", "B_z", "A_z", "b_z", "L", "R", "B_x", "C", "d")
    params = {k: param(getattr(model, k)) for k in names}
    opt = torch.optim.AdamW(params.values(), lr=1e-2, weight_decay=1e-4)  # optax's default decay
    inputs = torch.from_numpy(np.array(batch.inputs, dtype=np.float32))
    targets = torch.from_numpy(np.array(batch.targets, dtype=np.float32))
    mask = torch.from_numpy(np.array(batch.mask, dtype=np.float32))
    a_x, a_z, n = model.dt / float(model.tau_x), model.dt / float(model.tau_z), model.n_hidden

    def loss_fn():
        P = params
        x = torch.zeros(inputs.shape[0], n)
        z = torch.zeros(inputs.shape[0], model.n_nm)
        xs = []
        for t in range(inputs.shape[1]):
            u = inputs[:, t]
            z = (1 - a_z) * z + a_z * (torch.tanh(z) @ P["W_z"].T + u @ P["B_z"].T)
            s = torch.sigmoid(z @ P["A_z"].T + P["b_z"])
            x = (1 - a_x) * x + a_x * ((((torch.tanh(x) @ P["R"]) / n) * s) @ P["L"].T + u @ P["B_x"].T)
            xs.append(x)
        y = torch.stack(xs, 1) @ P["C"].T + P["d"]
        return torch.sum(mask * (y - targets) ** 2) / torch.sum(mask)

    def run(_batch):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        return loss.detach()

    def first_loss(_batch):
        with torch.no_grad():
            return float(loss_fn())

    return run, first_loss


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------


def time_interleaved(runs: dict[str, Callable], batch, rounds: int, repeats: int) -> dict[str, np.ndarray]:
    """Per-call wall times (ms) of every ``run(batch)``, interleaved over ``rounds``."""
    for run in runs.values():  # compile and warm up
        for _ in range(3):
            jax.block_until_ready(run(batch))
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(run(batch))
                times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * np.asarray(v) for k, v in times.items()}


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jaxlib

    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "equinox": eqx.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
    }
    try:
        import torch

        versions["torch"] = f"{torch.__version__} (threads={torch.get_num_threads()})"
    except ImportError:
        versions["torch"] = "not installed"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "backend": jax.default_backend(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def build_rows(n_in: int, n_out: int) -> list[dict]:
    """The models at the paper's sizes (GRU and e-nmRNN matched to the NM-RNN's count)."""
    nm_opts = {k: v for k, v in NMRNN_PAPER.items() if k != "n_hidden"}
    target = count_for("nmrnn", n_in=n_in, n_out=n_out, **NMRNN_PAPER)
    specs = [
        ("nmrnn", "NM-RNN", NMRNN_PAPER["n_hidden"], nm_opts),
        ("lowrank", "LR-RNN", 106, dict(rank=3)),
        ("vanilla", "vanilla RNN", 31, {}),
        ("lstm", "LSTM", 15, {}),
        ("gru", "GRU", match_size("gru", target, n_in=n_in, n_out=n_out), {}),
        ("enmrnn", "e-nmRNN (M=4)", match_size("enmrnn", target, n_in=n_in, n_out=n_out, n_nm=4), dict(n_nm=4)),
    ]
    rows = []
    for i, (name, label, n, opts) in enumerate(specs):
        model = make_model(name, n_in=n_in, n_out=n_out, n_hidden=n, key=jr.PRNGKey(i), **opts)
        rows.append(dict(name=name, label=label, n=n, opts=opts, model=model, params=param_count(model)))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per variant per round")
    p.add_argument("--quick", action="store_true", help="3 rounds of 5 calls")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch row")
    p.add_argument("--torch-threads", type=int, default=1, help="PyTorch intra-op threads")
    p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)
    rounds, repeats = (3, 5) if args.quick else (args.rounds, args.repeats)
    load_start = os.getloadavg()[0]

    task = make_task("mwg")
    batch = task.fixed_batch()
    n_batch, n_steps, n_in = batch.inputs.shape
    n_out = batch.targets.shape[-1]
    rows = build_rows(n_in, n_out)
    nm = rows[0]

    runs, losses, meta = {}, {}, {}
    for row in rows:
        key = f"{row['label']}|ours (batched simulate)"
        runs[key], first = jax_train_step(row["model"])
        losses[key] = first(batch)
        meta[key] = row
    # alternative formulations of the NM-RNN step
    nm_ortho = make_model("nmrnn", n_in=n_in, n_out=n_out, key=jr.PRNGKey(0), orthonormalize=True,
                          **NMRNN_PAPER)
    alternatives = [
        ("autodiff of the scan (before)", nm["model"], autodiff_forward),
        ("vmap over trials", nm["model"], vmap_forward),
        ("plain matmuls", nm["model"], plain_matmul_nmrnn_forward),
        ("ours, orthonormalised L", nm_ortho, None),
        ("vmap, QR in scan", nm_ortho, vmap_qr_in_scan_forward),
    ]
    for label, model, forward in alternatives:
        key = f"NM-RNN|{label}"
        runs[key], first = jax_train_step(model, forward)
        losses[key] = first(batch)
        meta[key] = nm
    # the hand-written backward pass against autodiff of the scan, for every model that has one
    manual_rows = [row for row in rows if row["model"].materialize().manual_backward]
    for row in manual_rows[1:]:
        key = f"{row['label']}|autodiff of the scan (before)"
        runs[key], first = jax_train_step(row["model"], autodiff_forward)
        losses[key] = first(batch)
        meta[key] = row
    torch_note = ""
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            torch_note = "PyTorch row skipped: torch is not installed (`pip install torch`)."
            print(torch_note)
        else:
            key = "NM-RNN|eager PyTorch"
            runs[key], first = torch_train_step(nm["model"], batch, args.torch_threads)
            losses[key] = first(batch)
            meta[key] = nm

    # every formulation computes the same loss as ours at the initial parameters
    ref = losses[f"{nm['label']}|ours (batched simulate)"]
    ref_ortho = losses["NM-RNN|ours, orthonormalised L"]
    for key, value in losses.items():
        if key.startswith("NM-RNN|"):
            expected = ref_ortho if ("QR" in key or "orthonormalised" in key) else ref
            if abs(value - expected) > 1e-4 * abs(expected):
                print(f"WARNING: {key} has initial loss {value:.6g}, ours {expected:.6g}")

    # where the NM-RNN step spends its time: forward only, forward + backward, full step
    params, static = eqx.partition(nm["model"], trainable_filter(nm["model"]))

    def nm_loss(p, b):
        return masked_mse(simulate(eqx.combine(p, static), b.inputs).outputs, b.targets, b.mask)

    fwd, grad = jax.jit(nm_loss), jax.jit(jax.grad(nm_loss))
    runs["NM-RNN|(forward + loss only)"] = lambda b: fwd(params, b)
    runs["NM-RNN|(forward + backward, no update)"] = lambda b: grad(params, b)
    meta["NM-RNN|(forward + loss only)"] = meta["NM-RNN|(forward + backward, no update)"] = None

    times = time_interleaved(runs, batch, rounds, repeats)
    load_end = os.getloadavg()[0]

    ours_nm = float(np.median(times[f"{nm['label']}|ours (batched simulate)"]))
    table = ["| model | formulation | N | params | ms/step (median) | ms/step (p10) | GFLOP/s | vs ours |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, t in times.items():
        label, form = key.split("|")
        med, p10 = float(np.median(t)), float(np.percentile(t, 10))
        row = meta[key]
        if row is None:
            table.append(f"| {label} | {form} | | | {med:.2f} | {p10:.2f} | | |")
            continue
        flops = step_flops(row["name"], row["n"], n_in, n_out, n_batch, n_steps, row["params"], **row["opts"])
        ratio = f"{med / ours_nm:.2f}x" if label == "NM-RNN" else ""
        table.append(
            f"| {label} | {form} | {row['n']} | {row['params']} | {med:.2f} | {p10:.2f} | "
            f"{flops / (med * 1e-3) / 1e9:.2f} | {ratio} |"
        )
    verdict = "meets" if ours_nm <= TARGET_MS else "misses"
    summary = f"NM-RNN step: {ours_nm:.2f} ms median ({verdict} the {TARGET_MS:g} ms target)."
    speedups = []
    for row in manual_rows:
        before = float(np.median(times[f"{row['label']}|autodiff of the scan (before)"]))
        after = float(np.median(times[f"{row['label']}|ours (batched simulate)"]))
        speedups.append(f"{row['label']} {before / after:.2f}x")
    summary += (" Hand-written backward pass (nmrnn.models.bptt) against autodiff of the scan, "
                f"whole training step, median: {', '.join(speedups)} (target for the NM-RNN: >= 1.5x).")
    print("\n".join(table))
    print(summary)
    if torch_note:
        print(torch_note)

    if args.no_write:
        return
    info = machine_info()
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "",
        f"## Model training step on the MWG batch ({stamp})",
        "",
        f"`benchmarks/bench_models.py`: one jit-compiled training step (simulate + masked MSE + "
        f"grad + clip(1.0) + AdamW(1e-2)) on the full MWG batch ({n_batch} trials x {n_steps} steps), "
        f"{rounds} interleaved rounds x {repeats} calls per variant. Machine: {info['nproc']} CPU cores "
        f"({info['cpu']}), JAX backend {info['backend']}; load average {load_start:.1f} at the start, "
        f"{load_end:.1f} at the end. Versions: {info['versions']}. GFLOP/s from analytic FLOP counts "
        "(3x forward + loss + optimiser). Rows in parentheses break the NM-RNN step down.",
        "",
        *table,
        "",
        summary + (f" {torch_note}" if torch_note else ""),
        "",
    ]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(text.rstrip("\n") + "\n" + "\n".join(lines))
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
