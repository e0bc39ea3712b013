"""Measure-Wait-Go figures: output ramps on trained and extrapolated intervals, and the NM-RNN's
gains s(t) aligned to the go cue (as in figure 3 of the NM-RNN paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import simulate
from ..tasks.mwg import EXTRAPOLATION_INTERVALS, MeasureWaitGo
from ._common import plt, save


def _interval_colours(intervals, trained):
    lo = plt.get_cmap("Reds")
    hi = plt.get_cmap("Blues")
    tr = plt.get_cmap("Greys")
    out = {}
    short = [i for i in intervals if i < min(trained)]
    long = [i for i in intervals if i > max(trained)]
    mid = [i for i in intervals if min(trained) <= i <= max(trained)]
    for group, cmap in ((short, lo), (long, hi), (mid, tr)):
        for j, i in enumerate(sorted(group)):
            out[i] = cmap(0.45 + 0.5 * (j + 1) / (len(group) + 1))
    return out


def plot_ramps(models: dict, task: MeasureWaitGo, path: str | Path, before: int = 5, after: int = 35) -> Path:
    """One column per model; rows: trained intervals, extrapolated intervals. Each panel shows
    the output (solid) and target (dashed) aligned to the go cue."""
    trained = sorted(task.intervals)
    extra = sorted(EXTRAPOLATION_INTERVALS)
    colours = _interval_colours(trained + extra, trained)
    fig, axes = plt.subplots(2, len(models), figsize=(3.2 * len(models), 5.5), sharex=True, sharey=True, squeeze=False)
    for col, (label, model) in enumerate(models.items()):
        for row, intervals in enumerate((trained, extra)):
            batch = task.test_batch(intervals)
            ys = np.asarray(simulate(model, batch.inputs).outputs[..., 0])
            tg = np.asarray(batch.info["t_go"])
            ax = axes[row, col]
            for k, interval in enumerate(intervals):
                t0, t1 = tg[k] - before, min(tg[k] + after, task.n_steps)
                rel = np.arange(t0, t1) - tg[k]
                ax.plot(rel, ys[k, t0:t1], color=colours[interval], lw=1.6, label=str(interval))
                ax.plot(rel, np.asarray(batch.targets)[k, t0:t1, 0], "--", color=colours[interval], lw=0.9)
            if row == 0:
                ax.set_title(label)
            if col == 0:
                ax.set_ylabel(("trained" if row == 0 else "extrapolated") + " intervals\noutput")
            if row == 1:
                ax.set_xlabel("steps from go cue")
    for row in range(2):
        axes[row, -1].legend(title="interval", fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle("MWG output ramps (solid) vs targets (dashed)", y=1.01)
    return save(fig, path)


def plot_gains(model, task: MeasureWaitGo, path: str | Path, title: str = "NM-RNN", before: int = 20, after: int = 35) -> Path:
    """The model's neuromodulatory signal (``model.modulation``: the NM-RNN's K gains s_k(t), the
    e-nmRNN's concentrations) for every interval (trained and extrapolated), aligned to the go
    cue."""
    intervals = sorted(set(task.intervals) | set(EXTRAPOLATION_INTERVALS))
    batch = task.test_batch(intervals)
    states = simulate(model, batch.inputs).states
    signal = model.modulation(states)
    if signal is None:
        raise ValueError(f"{type(model).__name__} has no neuromodulatory signal to plot")
    s = np.asarray(signal)  # (B, T, K)
    tg = np.asarray(batch.info["t_go"])
    colours = _interval_colours(intervals, sorted(task.intervals))
    K = s.shape[-1]
    fig, axes = plt.subplots(1, K, figsize=(3.2 * K, 3), squeeze=False, sharey=True)
    for k in range(K):
        ax = axes[0, k]
        for b, interval in enumerate(intervals):
            t0, t1 = max(tg[b] - before, 0), min(tg[b] + after, task.n_steps)
            ax.plot(np.arange(t0, t1) - tg[b], s[b, t0:t1, k], color=colours[interval], lw=1.3, label=str(interval))
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(f"s_{k + 1}(t)")
        ax.set_xlabel("steps from go cue")
    axes[0, 0].set_ylabel("gain")
    axes[0, -1].legend(title="interval", fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(f"{title}: neuromodulatory gains aligned to the go cue", y=1.04)
    return save(fig, path)


def plot_loss_distributions(arms: dict, path: str | Path) -> Path:
    """Per-seed L2 losses of every model on trained and extrapolated intervals (Fig. 3C), one
    panel per protocol. ``arms``: ``{arm: {model label: {"trained": [...], "extrapolated": [...]}}}``."""
    fig, axes = plt.subplots(1, len(arms), figsize=(4.6 * len(arms), 3.6), squeeze=False, sharey=True)
    for col, (arm, models) in enumerate(arms.items()):
        ax = axes[0, col]
        for x, sets in enumerate(models.values()):
            for dx, (name, colour) in zip((-0.15, 0.15), (("trained", "0.35"), ("extrapolated", "tab:red")), strict=True):
                vals = np.asarray(sets[name], dtype=float)
                ax.scatter(np.full(vals.shape, x + dx), vals, s=14, color=colour, alpha=0.8,
                           label=name if x == 0 else None)
                ax.hlines(vals.mean(), x + dx - 0.1, x + dx + 0.1, color=colour, lw=2)
        ax.set_xticks(range(len(models)), list(models), rotation=20)
        ax.set_yscale("log")
        ax.set_title(f"{arm} protocol")
    axes[0, 0].set_ylabel("L2 loss per seed (bar: mean)")
    axes[0, -1].legend(fontsize=8, frameon=False)
    fig.suptitle("MWG: loss on trained and extrapolated intervals", y=1.02)
    return save(fig, path)


def plot_gain_ablation(variants: dict, task: MeasureWaitGo, path: str | Path, before: int = 5, after: int = 35) -> Path:
    """Output traces of the NM-RNN with each gain component held at a constant (Fig. 3F): one
    column per variant (``{"intact": model, "s_1 held": model, ...}``), trained and extrapolated
    intervals overlaid, aligned to the go cue; targets dashed."""
    intervals = sorted(set(task.intervals) | set(EXTRAPOLATION_INTERVALS))
    colours = _interval_colours(intervals, sorted(task.intervals))
    batch = task.test_batch(intervals)
    tg = np.asarray(batch.info["t_go"])
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.2), squeeze=False, sharey=True)
    for col, (label, model) in enumerate(variants.items()):
        ys = np.asarray(simulate(model, batch.inputs).outputs[..., 0])
        ax = axes[0, col]
        for k, interval in enumerate(intervals):
            t0, t1 = tg[k] - before, min(tg[k] + after, task.n_steps)
            rel = np.arange(t0, t1) - tg[k]
            ax.plot(rel, ys[k, t0:t1], color=colours[interval], lw=1.4, label=str(interval))
            ax.plot(rel, np.asarray(batch.targets)[k, t0:t1, 0], "--", color=colours[interval], lw=0.8)
        ax.set_title(label)
        ax.set_xlabel("steps from go cue")
    axes[0, 0].set_ylabel("output")
    axes[0, -1].legend(title="interval", fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle("NM-RNN with one gain component held at its mean", y=1.04)
    return save(fig, path)
