"""Figures of the flip-flop reproduction (T8): the memories, the saddles between them and their
unstable manifolds (Sussillo & Barak 2013; see docs/references.md), in state and readout space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.saddles import SaddleAnalysis
from ._common import plt, save
from .phase import draw_field, draw_fixed_points, draw_trajectories, pca_field, pca_plane


def plot_flipflop(
    model: Any,
    analysis: SaddleAnalysis,
    trajectories: Any,
    outputs: Any,
    path: str | Path,
    *,
    title: str = "",
    max_trajectories: int = 12,
    resolution: int = 20,
    dpi: int = 120,
) -> Path:
    """Three panels: (a) the top-2 PC plane of the fixed points (stable points and saddles;
    of the trajectories if there are fewer than 4 points) over the field at the analysis's
    constant input (projected; ``resolution`` points per axis), with trajectories ``(B, T, D)``
    (free coordinates); (b) the top-3 PCs; (c) readout space (``outputs`` ``(B, T, O)``, first
    three outputs). Each shows the stable points, the saddles and
    the saddles' followed unstable manifolds (one-unstable-direction saddles in colour, the others
    dotted red). The view is framed on the fixed points and manifolds; trajectory excursions
    beyond it (the pulses' transients) are cut. Saved as a PNG; returns the path."""
    x = np.asarray(trajectories)
    y = np.asarray(outputs)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"trajectories (B, T, D) and outputs (B, T, O) must agree on (B, T); got {x.shape} and "
            f"{y.shape}"
        )
    if x.shape[-1] < 3 or y.shape[-1] < 3:
        raise ValueError(
            f"the 3-D panels need at least 3 state coordinates and 3 outputs; got {x.shape[-1]} "
            f"and {y.shape[-1]}"
        )
    fp = analysis.fixed_points
    one = analysis.n_unstable == 1
    colors = plt.cm.tab20(np.linspace(0, 1, max(int(one.sum()), 1)))
    rank = np.cumsum(one) - 1
    styles = [
        dict(color=colors[rank[q]], lw=1.8) if one[q] else dict(color="tab:red", lw=0.8, ls=":")
        for q in range(len(analysis.saddle_index))
    ]
    keep = np.concatenate([analysis.stable_index, analysis.saddle_index]).astype(int)
    basis = fp.points[keep] if len(keep) >= 4 else x.reshape(-1, x.shape[-1])
    frame = np.concatenate([basis, analysis.manifolds.reshape(-1, x.shape[-1])])
    fig = plt.figure(figsize=(15.5, 4.8))

    def limits(points, margin=0.25):
        if points.shape[0] == 0:  # nothing to frame on (no fixed point found): a unit box
            return -np.ones(points.shape[1]), np.ones(points.shape[1])
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = margin * np.maximum(hi - lo, 1e-6)
        return lo - pad, hi + pad

    def inside(paths, lo, hi):
        """Paths with the points outside the box [lo, hi] replaced by NaN (not drawn)."""
        ok = np.all((paths >= lo) & (paths <= hi), axis=-1, keepdims=True)
        return np.where(ok, paths, np.nan)

    # (a) top-2 PC plane with the field
    plane = pca_plane(basis)
    lo, hi = limits(plane.project(frame))
    xlim, ylim = (lo[0], hi[0]), (lo[1], hi[1])
    ax = fig.add_subplot(1, 3, 1)
    clamp = analysis.clamp or None
    grid = pca_field(
        model, plane, xlim, ylim, resolution=resolution, inputs=analysis.inputs, kind="map", clamp=clamp
    )
    draw_field(ax, grid, color_by="speed", density=0.9)
    draw_trajectories(ax, plane.project(x[:max_trajectories]), color="0.35", lw=0.6, alpha=0.5)
    for q, style in enumerate(styles):
        for branch in plane.project(analysis.manifolds[q]):
            ax.plot(branch[:, 0], branch[:, 1], **style)
    draw_fixed_points(ax, plane.project(fp.points[keep]), [fp.stability[i] for i in keep])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(f"PC1 of the fixed points ({100 * plane.explained[0]:.0f}% var.)")
    ax.set_ylabel(f"PC2 ({100 * plane.explained[1]:.0f}% var.)")
    ax.set_title(f"{title}: PC plane, field at the analysed input", fontsize=9)

    # (b) top-3 PCs of the same points
    mean = basis.mean(axis=0)
    pcs = np.linalg.svd(np.asarray(basis, np.float64) - mean, full_matrices=False)[2][:3]

    def p3(a):
        return (np.asarray(a) - mean) @ pcs.T

    lo3, hi3 = limits(p3(frame))
    ylo, yhi = limits(np.concatenate(
        [analysis.stable_readouts[:, :3], analysis.manifold_readouts[..., :3].reshape(-1, 3)]
    ))
    panels = [
        (fig.add_subplot(1, 3, 2, projection="3d"), inside(p3(x[:max_trajectories]), lo3, hi3),
         p3(analysis.manifolds), p3(fp.points[analysis.stable_index]),
         p3(fp.points[analysis.saddle_index]), "top-3 PCs of the fixed points", (lo3, hi3)),
        (fig.add_subplot(1, 3, 3, projection="3d"),
         inside(y[:max_trajectories, :, :3], ylo, yhi), analysis.manifold_readouts[..., :3],
         analysis.stable_readouts[:, :3], analysis.saddle_readouts[:, :3], "readout space",
         (ylo, yhi)),
    ]
    for ax3, trs, mans, stab, sad, name, (blo, bhi) in panels:
        ax3.set_xlim(blo[0], bhi[0])
        ax3.set_ylim(blo[1], bhi[1])
        ax3.set_zlim(blo[2], bhi[2])
        ax3.set_box_aspect(None, zoom=0.85)
        for tr in trs:
            ax3.plot(*tr.T, color="0.6", lw=0.5, alpha=0.5)
        for q, style in enumerate(styles):
            for branch in mans[q]:
                ax3.plot(*branch.T, **style)
        if len(stab):
            ax3.scatter(*stab.T, s=50, c="tab:blue", edgecolors="k", depthshade=False,
                        label="stable")
        if len(sad):
            ax3.scatter(*sad.T, s=50, c="tab:orange", marker="X", edgecolors="k", depthshade=False,
                        label="saddle")
        labels = ("out 1", "out 2", "out 3") if name == "readout space" else ("PC1", "PC2", "PC3")
        ax3.set_xlabel(labels[0])
        ax3.set_ylabel(labels[1])
        ax3.set_zlabel(labels[2])
        ax3.legend(loc="upper left", fontsize=7)
        ax3.set_title(f"{title}: {name}", fontsize=9)
    return save(fig, path, dpi=dpi)


__all__ = ["plot_flipflop"]
