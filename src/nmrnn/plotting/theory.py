"""Figures of the NM-RNN theory reproductions (R2 rank-1 signal, R5 Proposition 1; paper 001 in
docs/references.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import plt, save


def plot_rank1_signal(path, batch, learned, theory, outputs, intervals) -> Path:
    """R2 (paper 001, Fig. 3B; docs/references.md): per test interval, the learned gain ``s(t)``
    over the eq.-16 signal (top) and the output over the target (bottom), aligned to the go cue.

    ``batch``: the MWG test batch (``info["t_go"]``, ``targets (B, T, 1)``); ``learned``,
    ``theory``, ``outputs``: ``(B, T)``; ``intervals``: the ``B`` intervals (steps). Returns the
    path.
    """
    fig, axes = plt.subplots(2, len(intervals), figsize=(3.4 * len(intervals), 5), squeeze=False, sharex=True)
    for k, interval in enumerate(intervals):
        tg = int(batch.info["t_go"][k])
        t = np.arange(tg - 5, min(tg + 35, learned.shape[1]))
        ax = axes[0, k]
        ax.plot(t - tg, learned[k, t], label="learned s(t)")
        ax.plot(t - tg, theory[k, t], "--", label="theory (eq. 16)")
        ax.set_ylim(0, 1.05 * max(1.0, np.nanmax(learned[k, t])))
        ax.set_title(f"interval {interval}")
        ax = axes[1, k]
        ax.plot(t - tg, outputs[k, t], label="output")
        ax.plot(t - tg, np.asarray(batch.targets)[k, t, 0], "--", label="target")
        ax.set_xlabel("steps from go cue")
    axes[0, 0].set_ylabel("gain s(t)")
    axes[1, 0].set_ylabel("output")
    axes[0, 0].legend(frameon=False, fontsize=8)
    axes[1, 0].legend(frameon=False, fontsize=8)
    fig.suptitle("Rank-1 NM-RNN on MWG: learned vs theoretical neuromodulatory signal", y=1.02)
    return save(fig, path)


def plot_prop1_outputs(path, y_nm, y_lstm) -> Path:
    """R5 (Proposition 1 of paper 001): the NM-RNN's outputs ``y_nm (B, T, O)`` (thick) and its
    semilinear LSTM's ``y_lstm`` with the lag removed (dashed), first output, up to 3 trials.
    Returns the path."""

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for b in range(min(3, y_nm.shape[0])):
        (line,) = ax.plot(np.asarray(y_nm[b, :, 0]), lw=2.5, alpha=0.5)
        ax.plot(np.asarray(y_lstm[b, :, 0]), "--", color=line.get_color(), lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("output")
    ax.set_title("NM-RNN (thick) vs its semilinear LSTM (dashed, lag removed)")
    return save(fig, path)


__all__ = ["plot_prop1_outputs", "plot_rank1_signal"]
