"""Wall time of a comparison grid with N local worker processes against 1, in the same run.

The grid: ``nmrnn compare`` on MWG, its four models (NM-RNN, LR-RNN, vanilla RNN, LSTM at the
paper's parameter-matched sizes and stages) x ``--seeds`` seeds, ``--steps`` optimiser steps per
model (a short schedule). Every round trains the whole grid from scratch into fresh folders, with
1 worker, with ``--workers`` worker processes (one-CPU runtimes, each kept on a CPU of its own),
and with ``--in-process`` (1 worker: the runs trained in the command's own process, whose runtime
spans every CPU: the serial path before one-CPU workers), each with a cold compiled-program cache
(an empty folder: a first run, everything compiled) and a warm one (filled by an untimed run
beforehand: a second run), alternating the order between rounds, each as ``nmrnn compare`` in a
fresh process (as a user runs it); every result with workers is checked equal to the first (all
metrics but the training time; the in-process results are compared and reported). Reported:
median wall time of each, and the speed-ups over 1 worker and over the in-process run. Target on
the 2-core development machine: >= 1.7x with 2 workers.

``--paper``: instead, one run of the MWG comparison's paper profile (4 models x 10 seeds, the
paper's step counts: 70k for the staged NM-RNN, 50k for the baselines) with ``--workers``
workers, timed once (about three quarters of an hour on 2 cores; target < 45 minutes).

Run: ``python benchmarks/bench_grid.py`` (``--no-write`` to print only). Results are appended to
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from results_file import publish


def _per_seed_without_times(summary: dict) -> dict:
    models = json.loads(json.dumps(summary["models"]))
    for info in models.values():
        for m in info["per_seed"]:
            m.pop("train_seconds", None)
    return models


def timed_compare(out: Path, workers: int, *, profile: str, cache: Path, seeds: int | None = None,
                  steps: int | None = None, in_process: bool = False) -> tuple[float, dict]:
    """``nmrnn compare`` in a fresh process with its compiled-program cache in ``cache`` (an empty
    folder: every process compiles what it runs, as on a first run), timed from start to exit;
    returns the wall time and the summary."""
    cmd = [sys.executable, "-m", "nmrnn.cli", "compare", "--task", "mwg", "--profile", profile, "--out", str(out),
           "--workers", str(workers), "--force", "--no-figures", "--no-progress"]
    if seeds is not None:
        cmd += ["--seeds", str(seeds)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if in_process:
        cmd.append("--in-process")
    env = {**os.environ, "NMRNN_COMPILATION_CACHE": str(cache)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    seconds = time.perf_counter() - t0
    return seconds, json.loads((out / "summary.json").read_text())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=1400, help="optimiser steps per model (staged NM-RNN included)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--paper", action="store_true", help="time the paper profile once with --workers workers")
    p.add_argument("--paper-seeds", type=int, default=None, help="with --paper: seeds per model (default: the profile's 10)")
    p.add_argument("--out", type=Path, default=None, help="keep the grids here (default: a temporary folder)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="nmrnn-bench-grid-"))
    load0 = os.getloadavg()[0]
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    machine = (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), JAX {jax.__version__} "
               f"on {jax.default_backend()}")
    if args.paper:
        out = root / f"paper-{args.workers}w"
        seconds, summary = timed_compare(out, args.workers, profile="paper", cache=root / "cache-paper",
                                         seeds=args.paper_seeds)
        load1 = os.getloadavg()[0]
        n_runs = sum(len(v["per_seed"]) for v in summary["models"].values())
        train = sum(m["train_seconds"] for v in summary["models"].values() for m in v["per_seed"])
        seeds = summary["seeds"]
        scaled = ""
        if seeds != 10:  # runs this long are independent of compilation: the time scales with the seeds
            scaled = (f" Scaled to the profile's 10 seeds (linear in the seeds; an estimate, not a "
                      f"measurement): **{seconds * 10 / seeds / 60:.0f} min**.")
        text = (
            f"## MWG comparison, paper profile, {args.workers} workers ({stamp})\n\n"
            f"`benchmarks/bench_grid.py --paper`: `nmrnn compare --task mwg --profile paper --workers {args.workers}"
            f"{'' if args.paper_seeds is None else f' --seeds {seeds}'}`, "
            f"{n_runs} runs (4 models x {seeds} seeds; NM-RNN {summary['models']['NM-RNN']['steps']} "
            f"steps in stages, baselines {summary['models']['LR-RNN']['steps']}); {machine}; load average "
            f"{load0:.1f} at the start, {load1:.1f} at the end.\n\n"
            f"Wall time: **{seconds / 60:.1f} min** (target for 10 seeds: < 45 min).{scaled} The runs' own "
            f"training time summed: {train / 60:.1f} min, i.e. {train / seconds:.2f} runs training at a time "
            "on average.\n\n```\n" + (out / "table.csv").read_text() + "```\n"
        )
    else:
        kw = dict(seeds=args.seeds, steps=args.steps, profile="quick")
        warm = root / "cache-warm"
        timed_compare(root / "warm-up", 1, cache=warm, **kw)  # fills the warm cache, not timed
        timed_compare(root / "warm-up-here", 1, cache=warm, in_process=True, **kw)  # its own programs
        # "here": 1 worker with --in-process, the runs trained in the command's own process, whose
        # runtime spans every CPU (the serial path before one-CPU workers; its last bits differ)
        variants = [(1, "cold"), (args.workers, "cold"), ("here", "cold"),
                    (1, "warm"), (args.workers, "warm"), ("here", "warm")]
        times: dict[tuple, list[float]] = {v: [] for v in variants}
        ref, here_equal = None, []
        for r in range(args.rounds):
            for w, c in variants if r % 2 == 0 else variants[::-1]:
                out = root / f"round{r}-{w}w-{c}"
                cache = warm if c == "warm" else root / f"cache-round{r}-{w}w"
                seconds, summary = timed_compare(out, 1 if w == "here" else w, cache=cache, in_process=w == "here", **kw)
                times[(w, c)].append(seconds)
                result = _per_seed_without_times(summary)
                if w == "here":
                    here_equal.append(result == ref)
                elif ref is None:
                    ref = result
                elif result != ref:
                    raise SystemExit(f"round {r}, {w} worker(s), {c} cache: the grid's results differ from the first run")
                if args.out is None:
                    shutil.rmtree(out)
        load1 = os.getloadavg()[0]
        med = {v: float(np.median(t)) for v, t in times.items()}
        label = lambda w: "1, in the command's process (--in-process)" if w == "here" else str(w)  # noqa: E731
        rows = "".join(
            f"| {label(w)} | {c} | {med[(w, c)]:.1f} | {', '.join(f'{t:.1f}' for t in times[(w, c)])} | "
            f"{med[(1, c)] / med[(w, c)]:.2f}x | {med[('here', c)] / med[(w, c)]:.2f}x |\n" for w, c in variants)
        text = (
            f"## Comparison grid: {args.workers} workers against 1 ({stamp})\n\n"
            f"`benchmarks/bench_grid.py`: `nmrnn compare --task mwg --seeds {args.seeds} --steps {args.steps} --workers W` (4 models x "
            f"{args.seeds} seeds, trained from scratch in a fresh process each time), {args.rounds} rounds alternating the order; "
            "with a cold compiled-program cache (an empty folder per run: a first run) and a warm one (filled by an untimed "
            "run of the same grid: a second run, or a grid whose programs were compiled before); "
            f"every result with workers equal to the first (all metrics but the training time). {machine}; load average "
            f"{load0:.1f} at the start, {load1:.1f} at the end.\n\n"
            "| workers | cache | wall time (s, median) | each round (s) | speed-up over 1 worker | over --in-process |\n"
            "| --- | --- | ---: | --- | ---: | ---: |\n" + rows + "\n"
            f"Speed-up with {args.workers} workers: {med[(1, 'cold')] / med[(args.workers, 'cold')]:.2f}x cold, "
            f"{med[(1, 'warm')] / med[(args.workers, 'warm')]:.2f}x warm over 1 worker; "
            f"{med[('here', 'cold')] / med[(args.workers, 'cold')]:.2f}x cold, "
            f"{med[('here', 'warm')] / med[(args.workers, 'warm')]:.2f}x warm over the runs trained in the "
            f"command's process (target on 2 cores: >= 1.7x with 2 workers); a warm cache makes 1 worker "
            f"{med[(1, 'cold')] / med[(1, 'warm')]:.2f}x faster. The in-process grid's results "
            f"{'equal' if all(here_equal) else 'differ in the last bits from'} the workers' "
            f"({sum(here_equal)} of {len(here_equal)} runs equal).\n"
        )
    publish(text, write=not args.no_write)
    if args.out is None and not args.paper:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
