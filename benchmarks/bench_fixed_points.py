"""Fixed points of a GRU trained on the 3-bit flip-flop: this library's searches side by side with
Golub & Sussillo's fixed-point-finder (PyTorch), on the same network and the same initial states.

The network: ``nmrnn train --model gru --task flipflop --hidden 32 --steps 3000 --batch-size 32``
(seed 0; trained into ``--run`` if that folder does not hold it yet). Initial states: 1024 states
sampled from its trajectories on 64 fresh trials plus N(0, 0.1^2) noise; the input is zero.

Searches (each called once to compile, then timed over ``--repeats`` calls; median):

* :func:`nmrnn.analysis.find_fixed_points` with each search (``search="between"``, the default:
  a second search from the first one's points and from points between its stable points;
  ``"single"``: from the initial states only) and each optimiser (``method="lm"``, the default:
  Levenberg-Marquardt; ``"adam-lm"``: Adam's descent on q, then Levenberg-Marquardt polishing);
* fixed-point-finder's ``FixedPointFinderTorch`` with ``lr_init=0.01``, with its default
  ``lr_init=1.0`` (both with its default ``max_iters=5000``) and with ``lr_init=0.01`` and
  ``max_iters=20000`` (on a copy of the initial states: it overwrites its argument), the GRU's weights
  copied into ``torch.nn.GRU`` (the same equations). Needs ``torch`` and the fixed-point-finder
  sources (``--fpf PATH`` to a checkout of github.com/mattgolub/fixed-point-finder); skipped
  otherwise.

Every unique point of every search is re-checked by an independent NumPy float64 implementation
of the GRU step: *genuine* if ``q = 0.5 ||F(x) - x||^2 < 1e-12`` in float64; its number of
unstable directions (``|lambda| > 1``) from the float64 finite-difference Jacobian. Reported: the
genuine points of each search by number of unstable directions, how many of them every other
search also found (max-abs distance below 1e-3), the time per call and genuine points per second.

Run: ``python benchmarks/bench_fixed_points.py --fpf /path/to/fixed-point-finder`` (``--no-write``
to print only). Results are appended to ``benchmarks/RESULTS.md``. Target: at least as many
genuine points as fixed-point-finder with its best setting, at least 10x faster per call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from results_file import publish

from nmrnn.analysis import find_fixed_points, sample_states
from nmrnn.models import simulate
from nmrnn.train.run import load_run

GENUINE_Q = 1e-12
SAME = 1e-3


def ensure_network(run: Path) -> None:
    if (run / "metrics.json").exists():
        return
    cmd = [sys.executable, "-m", "nmrnn.cli", "train", "--model", "gru", "--task", "flipflop", "--hidden", "32",
           "--steps", "3000", "--batch-size", "32", "--lr", "1e-2", "--seed", "0", "--no-progress", "--out", str(run)]
    subprocess.run(cmd, check=True)


class NumpyGRU:
    """The GRU step in NumPy float64 (r, z, n gates; ``b_hn`` inside the reset gate)."""

    def __init__(self, model):
        self.W_ih = np.asarray(model.W_ih, np.float64)
        self.W_hh = np.asarray(model.W_hh, np.float64)
        self.b = np.asarray(model.b, np.float64)
        self.b_hn = np.asarray(model.b_hn, np.float64)
        self.n = self.W_hh.shape[1]

    def step(self, h, u):
        n = self.n
        gi = self.W_ih @ u + self.b
        gh = self.W_hh @ h
        sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
        r = sig(gi[:n] + gh[:n])
        z = sig(gi[n : 2 * n] + gh[n : 2 * n])
        c = np.tanh(gi[2 * n :] + r * (gh[2 * n :] + self.b_hn))
        return (1.0 - z) * c + z * h

    def q(self, h, u):
        d = self.step(h, u) - h
        return 0.5 * float(d @ d)

    def jacobian(self, h, u, eps=1e-6):
        cols = [(self.step(h + eps * e, u) - self.step(h - eps * e, u)) / (2 * eps) for e in np.eye(self.n)]
        return np.stack(cols, axis=1)


def check_points(ref: NumpyGRU, points: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine mask and number of unstable directions of each point (float64)."""
    pts = np.asarray(points, np.float64)
    genuine = np.array([ref.q(p, u) < GENUINE_Q for p in pts], bool)
    unstable = np.array([int(np.sum(np.abs(np.linalg.eigvals(ref.jacobian(p, u))) > 1.0)) for p in pts], int)
    return genuine, unstable


def timed(fn, repeats: int):
    result = fn()  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, float(np.median(times))


def fpf_search(fpf_path: Path, model, x0: np.ndarray, u: np.ndarray, lr_init: float, max_iters: int, repeats: int):
    import torch

    sys.path.insert(0, str(fpf_path))
    from FixedPointFinderTorch import FixedPointFinderTorch

    n = model.n_hidden
    gru = torch.nn.GRU(model.n_in, n, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(np.asarray(model.W_ih)))
        gru.weight_hh_l0.copy_(torch.from_numpy(np.asarray(model.W_hh)))
        gru.bias_ih_l0.copy_(torch.from_numpy(np.asarray(model.b)))
        gru.bias_hh_l0.copy_(torch.from_numpy(np.concatenate([np.zeros(2 * n, np.float32), np.asarray(model.b_hn)])))
    finder = FixedPointFinderTorch(gru, lr_init=lr_init, max_iters=max_iters, verbose=False, super_verbose=False)
    inputs = np.tile(u.astype(np.float32), (len(x0), 1))

    def call():
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints progress unconditionally
            unique, _ = finder.find_fixed_points(x0.copy(), inputs)
        return np.asarray(unique.xstar)

    times = []
    points = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        points = call()
        times.append(time.perf_counter() - t0)
    return points, float(np.median(times))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=Path("/tmp/nmrnn-bench-fp-gru"), help="the network's run directory")
    p.add_argument("--fpf", type=Path, default=None, help="a checkout of fixed-point-finder")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fpf-repeats", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)

    ensure_network(args.run)
    spec, model, task = load_run(args.run)
    batch = task.sample(jr.PRNGKey(1), 64)
    traj = simulate(model, batch.inputs)
    x0 = np.asarray(sample_states(traj.states, 1024, key=jr.PRNGKey(2), noise_scale=0.1).h)
    u = np.zeros(model.n_in, np.float32)
    ref = NumpyGRU(model)

    searches: dict[str, tuple[np.ndarray, float]] = {}
    for name, kw in [
        ("between, lm (default)", dict()),
        ("between, adam-lm", dict(method="adam-lm")),
        ("single, lm", dict(search="single")),
        ("single, adam-lm", dict(search="single", method="adam-lm")),
    ]:
        fps, sec = timed(lambda kw=kw: find_fixed_points(model, jnp.asarray(x0), jnp.asarray(u), **kw), args.repeats)
        searches[name] = (fps.points, sec)
    if args.fpf is not None:
        for lr, iters in ((0.01, 5000), (1.0, 5000), (0.01, 20000)):
            pts, sec = fpf_search(args.fpf, model, x0, u, lr, iters, args.fpf_repeats)
            searches[f"fixed-point-finder lr_init={lr:g}, max_iters={iters}"] = (pts, sec)

    checked = {k: check_points(ref, pts, u) for k, (pts, _) in searches.items()}
    genuine = {k: searches[k][0][g] for k, (g, _) in checked.items()}
    lines = []
    for k, (pts, sec) in searches.items():
        g, unstable = checked[k]
        by_dim = Counter(unstable[g].tolist())
        others = []
        for k2, pts2 in genuine.items():
            if k2 == k:
                continue
            if len(pts2) and g.any():
                near = np.min(np.max(np.abs(genuine[k][:, None, :] - pts2[None, :, :]), axis=-1), axis=1) < SAME
                others.append(f"{int(near.sum())} in {k2}")
        dims = ", ".join(f"{by_dim[d]} with {d}" for d in sorted(by_dim))
        lines.append(f"| {k} | {len(pts)} | {int(g.sum())} | {dims} | {sec:.2f} | {g.sum() / sec:.1f} | {'; '.join(others)} |")

    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    machine = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), JAX {jax.__version__} on {jax.default_backend()}"
    text = (
        f"## Fixed points of a flip-flop GRU: searches side by side ({stamp})\n\n"
        "`benchmarks/bench_fixed_points.py`: GRU N=32 trained on the 3-bit flip-flop, 1024 initial states (trajectory samples + "
        "N(0, 0.1^2)), zero input; every point re-checked in NumPy float64 (genuine: q < 1e-12; unstable directions from the "
        f"finite-difference Jacobian). {machine}.\n\n"
        "| search | unique points | genuine | by unstable directions | s per call | genuine per s | also found by |\n"
        "| --- | ---: | ---: | --- | ---: | ---: | --- |\n" + "\n".join(lines) + "\n"
    )
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
