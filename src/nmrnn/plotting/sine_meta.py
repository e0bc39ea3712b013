"""Figures of the sine meta-learning reproduction (R7): learning curves with the held-out loss of
the kept models, output traces on both sides of the Hopf bifurcation, and the "epiphany" (the
held-out loss against the oscillation's emergence over training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import simulate
from ._common import plt, save


def _smooth(c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if k > 1 and c.size > k:
        return np.arange(k - 1, c.size), np.convolve(c, np.ones(k) / k, mode="valid")
    return np.arange(c.size), c


def plot_learning(per_seed: dict[str, list[dict]], curves: dict[str, list[np.ndarray]], smooth: int, path: str | Path) -> Path:
    """Left: training loss of fresh batches (a held-out estimate in the continual regime),
    smoothed, median and range over seeds. Right: held-out loss of the kept models, mean and
    s.e.m. over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, cs in curves.items():
        n = min(c.size for c in cs)
        xs, sm = zip(*(_smooth(c[:n], smooth) for c in cs), strict=True)
        stack = np.stack(sm)
        (line,) = axes[0].plot(xs[0], np.median(stack, 0), label=label)
        axes[0].fill_between(xs[0], stack.min(0), stack.max(0), color=line.get_color(), alpha=0.15)
        runs = per_seed[label]
        steps = np.asarray(runs[0]["kept_steps"])
        held = np.stack([np.asarray(m["heldout_loss"]) for m in runs])
        mean = held.mean(0)
        sem = held.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
        axes[1].plot(steps, mean, color=line.get_color(), label=label)
        axes[1].fill_between(steps, mean - sem, mean + sem, color=line.get_color(), alpha=0.2)
    for ax, title in zip(axes, ("fresh-batch loss (smoothed; median, range)", "held-out loss (mean ± s.e.m.)"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("gradient updates")
        ax.set_title(title)
    axes[0].set_ylabel("MSE")
    axes[1].legend(frameon=False, fontsize=8)
    return save(fig, path)


def plot_traces(models: dict, task, path: str | Path, amplitudes=(0.0, 0.3, 0.8), omega: float = 2.0) -> Path:
    """Outputs of each model for curves of amplitude 0 (below the Hopf bifurcation: rest) and
    larger (above it: oscillation), with their targets (dashed)."""
    amps = np.asarray(amplitudes, dtype=np.float32)
    batch = task.trials(amps, np.full_like(amps, omega), np.zeros_like(amps))
    t = np.asarray(task.times())
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.6), squeeze=False)
    for ax, (label, model) in zip(axes[0], models.items(), strict=True):
        y = np.asarray(simulate(model, batch.inputs).outputs)[..., 0]
        for i, a in enumerate(amps):
            (line,) = ax.plot(t, y[i], label=f"A = {a:g}")
            ax.plot(t, np.asarray(batch.targets)[i, :, 0], "--", color=line.get_color(), lw=1)
        ax.set_title(f"{label} (dashed: target), omega = {omega:g}")
        ax.set_xlabel("time (s)")
    axes[0][0].legend(frameon=False)
    return save(fig, path)


def plot_epiphany(runs: list[dict], path: str | Path) -> Path:
    """For each seed: the held-out loss (left axis) and the oscillation ratio (right axis) of the
    kept models over training, with the two onsets marked."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.6), squeeze=False)
    fig.subplots_adjust(wspace=0.55)
    for k, (ax, m) in enumerate(zip(axes[0], runs, strict=True)):
        steps = np.asarray(m["kept_steps"])
        ax.plot(steps, m["heldout_loss"], color="C0")
        ax.set_yscale("log")
        ax.set_ylabel("held-out loss", color="C0")
        right = ax.twinx()
        right.plot(steps, m["oscillation_ratio"], color="C3")
        right.set_ylabel("oscillation ratio (A >= 0.5)", color="C3")
        for key, color in (("loss_drop", "C0"), ("oscillation_onset", "C3")):
            if m[key] is not None:
                ax.axvline(m[key], color=color, ls=":")
        ax.set_title(f"e-nmRNN seed {k}")
        ax.set_xlabel("gradient updates")
    return save(fig, path)
