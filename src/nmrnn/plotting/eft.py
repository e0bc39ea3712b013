"""Element Finder figures: the NM-RNN's internal states s(t), x(t) and y(t) across element values
and query indices (supplement Figs 5-6 of the NM-RNN paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import plt, save


def plot_states(rows: dict, path: str | Path, title: str, marker: dict | None = None) -> Path:
    """One row per condition, columns s(t), x(t), y(t): the mean over trials of every component
    with its s.e.m. shaded. ``rows``: ``{label: {"s": (B, T, K), "x": (B, T, N), "y": (B, T, O)}}``;
    ``marker``: ``{label: step}`` of a dashed red line (the query's onset)."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 2.1 * len(rows)), squeeze=False, sharex=True)
    for r, (label, arrays) in enumerate(rows.items()):
        for c, name in enumerate(("s", "x", "y")):
            a = np.asarray(arrays[name], dtype=float)
            mean = a.mean(0)
            sem = a.std(0, ddof=1) / np.sqrt(a.shape[0]) if a.shape[0] > 1 else np.zeros_like(mean)
            t = np.arange(mean.shape[0])
            ax = axes[r, c]
            for k in range(mean.shape[1]):
                ax.plot(t, mean[:, k], lw=1.0)
                ax.fill_between(t, mean[:, k] - sem[:, k], mean[:, k] + sem[:, k], color="c", alpha=0.25, lw=0)
            if marker and label in marker:
                ax.axvline(marker[label], color="r", ls="--", lw=0.8)
            if r == 0:
                ax.set_title({"s": "gains s(t)", "x": "state x(t)", "y": "output y(t)"}[name])
            if c == 0:
                ax.set_ylabel(label)
        axes[-1, 1].set_xlabel("step")
    fig.suptitle(title, y=1.0)
    return save(fig, path)
