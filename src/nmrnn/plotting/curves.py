"""Learning curves read from run directories (``curve.csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..train.run import read_curve
from ._common import plt, save


def plot_learning_curves(run_dirs: dict[str, list[Path]], path: str | Path, smooth: int = 50) -> Path:
    """Loss vs step per model: median over seeds (line) and the min-max band over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, dirs in run_dirs.items():
        curves = [read_curve(d) for d in dirs]
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])
        if smooth > 1 and n > smooth:
            kernel = np.ones(smooth) / smooth
            stack = np.stack([np.convolve(c, kernel, mode="valid") for c in stack])
        x = np.arange(stack.shape[1]) + (smooth - 1 if smooth > 1 and n > smooth else 0)
        (line,) = ax.plot(x, np.median(stack, axis=0), label=label)
        ax.fill_between(x, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False)
    ax.set_title("Learning curves (median and range over seeds)")
    return save(fig, path)
