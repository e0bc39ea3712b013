"""Figures of the Yang multitask reproduction (R11; the panels of the e-nmRNN paper's Fig. 5):
percent correct over training and per rule, task-variance clusters, the release matrix R and its
one-hotness, the NM autocorrelation functions, and rule decoding from the NM state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import plt, save


def plot_performance(curves: dict[str, list], per_seed: dict[str, list[dict]], rules, path: str | Path) -> Path:
    """Left: percent correct of every rule over training (thin) and their mean (thick), one colour
    per model, first seed. Right: the final percent correct per rule, mean over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [1, 1.6]})
    width = 0.8 / max(len(per_seed), 1)
    for j, (label, runs) in enumerate(curves.items()):
        curve = runs[0]
        steps = np.array([st for st, _ in curve])
        color = f"C{j}"
        for r in rules:
            axes[0].plot(steps, [c[r] for _, c in curve], color=color, lw=0.5, alpha=0.35)
        axes[0].plot(steps, [c["perf"] for _, c in curve], color=color, lw=2.5, label=label)
        final = [np.mean([m["perf"][r] for m in per_seed[label]]) for r in rules]
        axes[1].bar(np.arange(len(rules)) + j * width, final, width, color=color, label=label)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("percent correct (fraction)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_title("over training: every rule (thin), mean (thick)")
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].set_xticks(np.arange(len(rules)) + 0.4 - width / 2)
    axes[1].set_xticklabels(rules, rotation=60, ha="right", fontsize=8)
    axes[1].axhline(0.9, color="0.5", lw=0.8, ls="--")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("final percent correct per rule")
    return save(fig, path)


def plot_task_variance(tv, clusters, path: str | Path) -> Path:
    """Normalised task variance of the active units (rows), sorted by cluster (Yang's Fig. 2)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    X = np.asarray(tv.normalized)
    if clusters is not None:
        X = X[clusters.order]
    im = ax.imshow(X, aspect="auto", cmap="hot", vmin=0, vmax=1, interpolation="nearest")
    if clusters is not None:
        edges = np.flatnonzero(np.diff(np.asarray(clusters.labels)[clusters.order])) + 0.5
        for e in edges:
            ax.axhline(e, color="c", lw=0.8)
        ax.set_title(f"task variance: {len(tv.active)} active units, {clusters.n_clusters} clusters")
    else:
        ax.set_title(f"task variance: {len(tv.active)} active units (too few to cluster)")
    ax.set_xticks(range(len(tv.tasks)))
    ax.set_xticklabels(tv.tasks, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("units (sorted by cluster)")
    fig.colorbar(im, ax=ax, label="normalised variance")
    return save(fig, path)


def plot_cell_types(R, cells, path: str | Path) -> Path:
    """Left: |R| (NMs x neurons), neurons sorted by their dominant NM. Right: the one-hotness of
    the trained R, the initial R and the row-shuffle null."""
    A = np.abs(np.asarray(R))
    order = np.lexsort((-A.max(axis=0), cells.dominant))
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
    im = axes[0].imshow(A[:, order] / np.maximum(A.sum(axis=0)[order], 1e-12), aspect="auto", cmap="viridis",
                        interpolation="nearest", vmin=0, vmax=1)
    axes[0].set_xlabel("neuron (sorted by dominant NM)")
    axes[0].set_ylabel("NM")
    axes[0].set_yticks(range(A.shape[0]))
    axes[0].set_title("release share |R_kj| / sum_k |R_kj|")
    fig.colorbar(im, ax=axes[0])
    lo, hi = cells.bounds
    bins = np.linspace(lo, hi, 25)
    h = cells.one_hotness[np.isfinite(cells.one_hotness)]
    axes[1].hist(np.asarray(cells.null_one_hotness).ravel(), bins=bins, density=True, color="0.7", label="row-shuffle null")
    if cells.init_one_hotness is not None:
        axes[1].hist(cells.init_one_hotness, bins=bins, density=True, histtype="step", lw=1.5, color="C1",
                     label=f"initial (mean {cells.init_mean:.3f})")
    axes[1].hist(h, bins=bins, density=True, histtype="step", lw=2, color="C0", label=f"trained (mean {cells.mean:.3f})")
    axes[1].set_xlabel("one-hotness max_k |R_kj| / sum_k |R_kj|")
    axes[1].legend(frameon=False, fontsize=8)
    axes[1].set_title(f"p (null) = {cells.p:.3g}, p (vs initial) = {cells.init_p:.3g}")
    return save(fig, path)


def plot_timescales(ts: dict, path: str | Path) -> Path:
    """Autocorrelation of every NM (dots) and its fit (lines: the estimator's expectation for an
    exponential autocorrelation ``exp(-lag / tau)`` on these trials, which removing each trial's
    mean bends below the exponential), trained and initial."""
    from ..analysis.interpret import _expected_acf

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, key, title in ((axes[0], "fit", "trained"), (axes[1], "init_fit", "initial")):
        fit = ts[key]
        for k in range(fit.acf.shape[1]):
            tau = fit.tau[k]
            lab = f"NM {k}: tau = {tau:.1f} steps" if np.isfinite(tau) else f"NM {k}: {fit.status[k]}"
            ax.plot(fit.lags, fit.acf[:, k], "o", ms=2.5, color=f"C{k}", label=lab)
            if fit.status[k] == "exp":
                model = fit.amplitude[k] * _expected_acf(fit.lags, tau, ts["lengths"], "trial")
                ax.plot(fit.lags, model, "-", lw=1, color=f"C{k}")
        sep = ts["separation"] if key == "fit" else ts["init_separation"]
        ax.set_title(f"{title}: slowest / fastest = {sep:.2f}")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel("lag (steps of 20 ms)")
        ax.legend(frameon=False, fontsize=7)
    axes[0].set_ylabel("autocorrelation")
    fig.suptitle(f"paired bootstrap p (trained separation above initial) = {ts['p']:.3g}", fontsize=10)
    return save(fig, path)


def plot_decoding(epochs: dict, dec: dict, path: str | Path) -> Path:
    """Accuracy of the rule decoded from the NM state in each epoch and after fixation, trained
    and initial, with chance and the shuffled-label null's 95th percentile (after fixation)."""
    names = list(epochs)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(x - 0.2, [epochs[n]["trained"] for n in names], 0.4, label="trained")
    ax.bar(x + 0.2, [epochs[n]["initial"] for n in names], 0.4, label="initial")
    ax.plot(x, [epochs[n]["chance"] for n in names], "k_", ms=20, label="chance")
    ax.plot([x[-1] - 0.4, x[-1] + 0.4], [dec["null_95"]] * 2, "r-", label="shuffled-label null, 95th pct.")
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"rule from n: after fixation {dec['accuracy']:.3f} (initial {dec['init_accuracy']:.3f}, "
                 f"McNemar p = {dec['p_vs_init']:.3g})")
    ax.legend(frameon=False, fontsize=8)
    return save(fig, path)


__all__ = ["plot_cell_types", "plot_decoding", "plot_performance", "plot_task_variance", "plot_timescales"]
