"""Figures of the solution-degeneracy study (:mod:`nmrnn.experiments.degeneracy`): degeneracy
against each knob at each level, and by model at the base condition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import plt, save


def plot_knobs(
    table: Mapping[str, Mapping[str, Any]],
    measures: Mapping[str, str],
    path: str | Path,
    *,
    title: str = "",
    dpi: int = 120,
) -> Path:
    """One column per knob, one row per measure: the mean pairwise distance at each level of the
    knob with error bars of one standard deviation of the pairwise distances.

    ``table[knob]`` holds ``"levels"`` (labels, in order) and, per measure name, ``"mean"``,
    ``"std"`` and ``"n"`` (networks) lists aligned with the levels (``None`` where a level has
    fewer than two networks). ``measures``: ``{measure name: axis label}``.
    """
    knobs = list(table)
    if not knobs or not measures:
        raise ValueError("plot_knobs needs at least one knob and one measure")
    fig, axes = plt.subplots(len(measures), len(knobs), figsize=(3.2 * len(knobs), 2.4 * len(measures)),
                             squeeze=False)
    for c, knob in enumerate(knobs):
        levels = [str(v) for v in table[knob]["levels"]]
        x = np.arange(len(levels))
        for r, (measure, label) in enumerate(measures.items()):
            ax = axes[r, c]
            entry = table[knob].get(measure, {})
            mean = np.array([np.nan if v is None else v for v in entry.get("mean", [None] * len(levels))], float)
            std = np.array([np.nan if v is None else v for v in entry.get("std", [None] * len(levels))], float)
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3)
            for xi, n, m in zip(x, entry.get("n", [None] * len(levels)), mean, strict=True):
                if n is not None and np.isfinite(m):
                    ax.annotate(f"n={n}", (xi, m), textcoords="offset points", xytext=(4, 4), fontsize=6)
            ax.set_xticks(x, levels, fontsize=7)
            if r == len(measures) - 1:
                ax.set_xlabel(knob)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(knob)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
    return save(fig, path, dpi=dpi)


def plot_models(
    table: Mapping[str, Mapping[str, Any]],
    measures: Mapping[str, str],
    path: str | Path,
    *,
    title: str = "",
    dpi: int = 120,
) -> Path:
    """Bars of the mean pairwise distance (error bars: one standard deviation) per model, one
    panel per measure (four per row). ``table[model][measure]`` holds ``"mean"`` and ``"std"`` (or ``None``)."""
    models: Sequence[str] = list(table)
    if not models or not measures:
        raise ValueError("plot_models needs at least one model and one measure")
    cols = min(4, len(measures))
    rows = -(-len(measures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(measures):]:
        ax.set_visible(False)
    x = np.arange(len(models))
    for ax, (measure, label) in zip(axes.flat, measures.items(), strict=False):
        mean = [np.nan if table[m].get(measure) is None else table[m][measure]["mean"] for m in models]
        std = [np.nan if table[m].get(measure) is None else table[m][measure]["std"] for m in models]
        ax.bar(x, mean, yerr=std, capsize=3, color="0.6")
        ax.set_xticks(x, models, rotation=30, fontsize=7)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95) if title else None)
    return save(fig, path, dpi=dpi)


__all__ = ["plot_knobs", "plot_models"]
