"""Figures of the compositional-generalisation reproduction (R8): the best validation variance
explained against K, the decoding of the coefficients against K, the spread of each model's
search objective over its trials, and example outputs on unseen compositions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..models import simulate
from ._common import plt, save


def _band(ax, ks, per_k: Sequence[Sequence[float]], label: str):
    """Mean over seeds with a ± s.d. band and the seeds as dots; returns the line."""
    vals = [np.asarray([v for v in seeds if v is not None], dtype=float) for seeds in per_k]
    mean = np.array([v.mean() if v.size else np.nan for v in vals])
    sd = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in vals])
    (line,) = ax.plot(ks, mean, "o-", label=label, ms=3)
    ax.fill_between(ks, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
    for k, v in zip(ks, vals, strict=True):
        ax.plot(np.full(v.size, k), v, ".", color=line.get_color(), ms=2, alpha=0.6)
    return line


def plot_ve_against_k(best: Mapping[str, Mapping[int, Sequence[float]]], path: str | Path) -> Path:
    """Best validation variance explained on unseen compositions against K: mean ± s.d. over
    seeds (dots: seeds), one line per model (``best``: ``{label: {K: [per seed]}}``)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, per_k in best.items():
        ks = sorted(per_k)
        _band(ax, ks, [per_k[k] for k in ks], label)
    ax.set_xlabel("K (basis functions)")
    ax.set_ylabel("best validation variance explained")
    ax.set_title("unseen compositions (mean ± s.d. over seeds)")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.legend(frameon=False, fontsize=8)
    return save(fig, path)


def plot_decoding(dec: Mapping[str, Mapping[int, Mapping[str, Sequence[float | None]]]], path: str | Path) -> Path:
    """Test R^2 of the linear decoding of the coefficients against K, from the hidden state (left,
    every model) and the NM state (right, models that have one); mean ± s.d. over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for label, per_k in dec.items():
        ks = sorted(per_k)
        _band(axes[0], ks, [per_k[k]["hidden"] for k in ks], label)
        if any(v is not None for k in ks for v in per_k[k]["nm"]):
            _band(axes[1], ks, [per_k[k]["nm"] for k in ks], label)
    for ax, title in zip(axes, ("from the hidden state", "from the NM state"), strict=True):
        ax.set_xlabel("K (basis functions)")
        ax.set_title(f"decoding the coefficients {title} (test R^2)")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("R^2 on unseen compositions")
    return save(fig, path)


def plot_robustness(values: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """The search objective of every completed trial of each model (box: quartiles, whiskers:
    1.5 IQR; dots: trials)."""
    labels = [k for k, v in values.items() if len(v)]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4.2))
    data = [np.asarray(values[k], dtype=float) for k in labels]
    if data:
        ax.boxplot(data, showfliers=False)
        rng = np.random.default_rng(0)
        for i, v in enumerate(data, 1):
            ax.plot(i + rng.uniform(-0.15, 0.15, v.size), v, ".", color="C0", alpha=0.6, ms=4)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right")
    ax.set_ylabel("validation variance explained (search objective)")
    ax.set_title("spread over the TPE search trials")
    return save(fig, path)


def plot_traces(models: Mapping[str, object], task, path: str | Path, n: int = 3) -> Path:
    """Outputs of each model (solid) and targets (dashed) on the first ``n`` unseen compositions."""
    batch = task.test_batch()
    inputs, targets, mask = (np.asarray(a)[:n] for a in (batch.inputs, batch.targets, batch.mask))
    t = np.arange(inputs.shape[1])
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, (label, model) in zip(axes[0], models.items(), strict=True):
        y = np.asarray(simulate(model, inputs).outputs)
        for i in range(inputs.shape[0]):
            (line,) = ax.plot(t, np.where(mask[i, :, 0] > 0, y[i, :, 0], np.nan))
            ax.plot(t, np.where(mask[i, :, 0] > 0, targets[i, :, 0], np.nan), "--", color=line.get_color(), lw=1)
            ax.plot(t, inputs[i, :, 0], color=line.get_color(), lw=0.6, alpha=0.4)
        ax.set_title(f"{label} (dashed: target; faint: input)")
        ax.set_xlabel("step")
    return save(fig, path)
