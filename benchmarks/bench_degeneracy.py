"""Speed of the solution-degeneracy study (:mod:`nmrnn.experiments.degeneracy`): networks trained
per minute, and the batched pairwise distances against plain loops over pairs.

Part 1, training. S vanilla RNNs (N = 32, tau = dt) on the 3-bit flip-flop, the quick profile's
base condition (``--steps`` Adam steps, batch 32, fresh trials), S seeds, trained

* ``sequential``: :func:`nmrnn.train.fit_ensemble` with ``vmap=False`` (one after the other, the
  CPU default and what a grid worker does);
* ``ensemble``: :func:`nmrnn.train.fit_ensemble` with ``vmap=True`` (one vmapped program).

Both are compiled first (a warm-up of one chunk); the timed runs exclude compilation, which is
reported separately. Reported: networks per minute and the speed-up of the ensemble. The process
runs in a one-CPU runtime, as grid workers do.

Part 2, distances. A population of S networks' outputs and state trajectories (random data of
the quick profile's shapes: 32 trials x 100 steps, 32 units), every pair:

* behaviour (:func:`~nmrnn.analysis.degeneracy.behaviour_distances`: one row of pairs at a time,
  vectorised over the population) against a double loop over pairs;
* Procrustes and CKA (:func:`~nmrnn.analysis.degeneracy.procrustes_distances`,
  :func:`~nmrnn.analysis.degeneracy.cka_distances`: one product of the stacked trajectories, one
  batched SVD) against a double loop calling ``scipy.spatial.procrustes`` and the per-pair CKA
  formula;
* the weight matching (one linear-assignment ascent per pair, no batched form) and DSA (the
  ``dsa-metric`` package's own loop), timed for reference.

Each number is the median of ``--rounds`` timed runs; the largest difference between the batched
and the looped results is printed beside it.

Run: ``python benchmarks/bench_degeneracy.py`` (``--quick``: fewer steps and rounds;
``--no-write``: print only). Results are appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from nmrnn.runtime import start_one_cpu_runtime

start_one_cpu_runtime()

import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from results_file import publish  # noqa: E402
from scipy.spatial import procrustes  # noqa: E402

from nmrnn.analysis import degeneracy as dg  # noqa: E402
from nmrnn.models import make_model  # noqa: E402
from nmrnn.tasks import FlipFlop  # noqa: E402
from nmrnn.train import TrainConfig  # noqa: E402
from nmrnn.train.loop import fit_ensemble  # noqa: E402


def train_population(n: int, steps: int, vmap: bool) -> float:
    task = FlipFlop()
    models = [make_model("vanilla", n_in=3, n_out=3, n_hidden=32, key=jr.PRNGKey(k), tau=1.0) for k in range(n)]
    cfg = TrainConfig(steps=steps, lr=1e-2, batch_size=32, noise=False, steps_per_call=min(250, steps))
    t0 = time.perf_counter()
    results = fit_ensemble(models, task, cfg, keys=[jr.PRNGKey(100 + k) for k in range(n)], vmap=vmap)
    np.asarray(results[-1].losses)
    return time.perf_counter() - t0


def naive_behaviour(y, w, scale):
    s = y.shape[0]
    out = np.zeros((s, s))
    for i in range(s):
        for j in range(s):
            out[i, j] = np.sqrt((w * (y[i] - y[j]) ** 2).sum() / w.sum()) / scale
    return out


def naive_procrustes(xs):
    s = len(xs)
    out = np.zeros((s, s))
    for i in range(s):
        for j in range(i + 1, s):
            disparity = procrustes(xs[i], xs[j])[2]
            out[i, j] = out[j, i] = np.arccos(np.sqrt(np.clip(1 - disparity, 0, 1)))
    return out


def naive_cka(xs):
    s = len(xs)
    cs = [x - x.mean(0) for x in xs]
    out = np.zeros((s, s))
    for i in range(s):
        for j in range(i + 1, s):
            a, b = cs[i], cs[j]
            cka = np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))
            out[i, j] = out[j, i] = 1 - cka
    return out


def timed(fn, rounds):
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=8, help="networks per population")
    p.add_argument("--steps", type=int, default=1500, help="training steps per network")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="300 steps, 1 round")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    steps, rounds = (300, 1) if args.quick else (args.steps, args.rounds)
    n = args.networks
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    # Part 1: training
    compile_s = {v: train_population(n, min(250, steps), v) for v in (False, True)}  # warm-up: compiles
    train = {}
    for v in (False, True):
        train[v] = float(np.median([train_population(n, steps, v) for _ in range(rounds)]))

    # Part 2: distances
    rng = np.random.default_rng(0)
    outs = rng.standard_normal((16, 32, 100, 3))
    mask = (rng.random((32, 100, 3)) > 0.1).astype(float)
    targets = rng.standard_normal((32, 100, 3))
    scale = np.sqrt((mask * targets**2).sum() / mask.sum())
    trajs = [rng.standard_normal((3200, 8)) @ rng.standard_normal((8, 32)) + 0.1 * rng.standard_normal((3200, 32))
             for _ in range(16)]
    rows = []
    t_b, d_b = timed(lambda: dg.behaviour_distances(outs, mask, targets=targets), rounds)
    t_n, d_n = timed(lambda: naive_behaviour(outs, mask, scale), rounds)
    rows.append(("behaviour", t_b, t_n, np.abs(d_b - d_n).max()))
    t_b, d_b = timed(lambda: dg.procrustes_distances(trajs), rounds)
    t_n, d_n = timed(lambda: naive_procrustes(trajs), rounds)
    rows.append(("Procrustes", t_b, t_n, np.abs(d_b - d_n).max()))
    t_b, d_b = timed(lambda: dg.cka_distances(trajs), rounds)
    t_n, d_n = timed(lambda: naive_cka(trajs), rounds)
    rows.append(("CKA", t_b, t_n, np.abs(d_b - d_n).max()))
    views = [dg.weight_view(make_model("vanilla", n_in=3, n_out=3, n_hidden=32, key=jr.PRNGKey(k))) for k in range(16)]
    t_w, _ = timed(lambda: dg.weight_distances(views, seed=0), rounds)
    dsa_states = [x.reshape(32, 100, 32).astype(np.float32) for x in trajs]
    try:
        dg.dsa_distances(dsa_states[:2])  # import and warm-up
        t_dsa, _ = timed(lambda: dg.dsa_distances(dsa_states), rounds)
    except ImportError:
        t_dsa = float("nan")

    today = dt.date.today().isoformat()
    seq, ens = train[False], train[True]
    lines = [
        f"## Solution degeneracy: training and distances ({today}, `bench_degeneracy.py`)",
        "",
        f"One-CPU runtime, load average {load:.1f} at the start (other jobs share the 2 cores).",
        "",
        f"Training: {n} vanilla RNNs (N = 32) on the 3-bit flip-flop, {steps} steps each, batch 32.",
        "",
        "| variant | wall time | networks per minute | warm-up (compile + one chunk of 250 steps) |",
        "| --- | --- | --- | --- |",
        f"| sequential (`fit_ensemble(vmap=False)`) | {seq:.1f} s | {n / seq * 60:.1f} | {compile_s[False]:.1f} s |",
        f"| ensemble (`fit_ensemble(vmap=True)`) | {ens:.1f} s | {n / ens * 60:.1f} | {compile_s[True]:.1f} s |",
        "",
        f"Ensemble / sequential speed: {seq / ens:.2f}x.",
        "",
        "Distances among 16 networks (120 pairs; trajectories of 3200 samples x 32 units, outputs 32 x 100 x 3):",
        "",
        "| measure | batched | loop over pairs | speed-up | max abs difference |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {b * 1e3:.1f} ms | {nv * 1e3:.1f} ms | {nv / b:.1f}x | {diff:.1e} |" for name, b, nv, diff in rows]
    lines += [
        "",
        f"Weight matching (linear-assignment ascent, 8 restarts, per pair; no batched form): {t_w / 120 * 1e3:.1f} ms per pair "
        f"({t_w:.2f} s for 120 pairs). DSA (dsa-metric, eigenvalue Wasserstein, 5 delays, rank 10): {t_dsa:.2f} s for 16 networks.",
        "",
    ]
    publish("\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
