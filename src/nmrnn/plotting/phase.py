"""Phase portraits: stream plots of 2-D systems and of trained networks in their top-2 PC plane.

Data and drawing are separate: :func:`field_on_grid` and :func:`pca_field` return arrays;
``draw_*`` functions draw on a given matplotlib axis; ``plot_*`` functions make a figure, save a
PNG and return its path.

Arrows show ``dx/dt`` for flows and the one-step displacement ``F(x) - x`` for maps (the same
direction field; for a model, ``kind="flow"`` divides by ``dt``). Fixed points are drawn by
stability: stable (filled blue circle), unstable (open red circle), saddle (orange cross),
marginal (grey diamond); slow points (local minima of the speed with ``q > 0``) are small grey
squares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_choice, check_positive_int
from ..analysis.fixed_points import FixedPoints, make_system
from ._common import plt, save

FP_STYLES: dict[str, dict[str, Any]] = {
    "stable": dict(marker="o", s=60, facecolor="tab:blue", edgecolor="k", linewidths=1.0, zorder=5),
    "unstable": dict(marker="o", s=60, facecolor="white", edgecolor="tab:red", linewidths=2.0, zorder=5),
    "saddle": dict(marker="X", s=80, facecolor="tab:orange", edgecolor="k", linewidths=0.8, zorder=5),
    "marginal": dict(marker="D", s=50, facecolor="0.6", edgecolor="k", linewidths=0.8, zorder=5),
    "slow": dict(marker="s", s=30, facecolor="0.75", edgecolor="0.3", linewidths=0.8, zorder=4),
}
COLOR_BY = ("speed", "direction", "none")


class FieldGrid(NamedTuple):
    """A direction field on a grid: coordinates ``X, Y (G, G)`` and components ``U, V (G, G)``."""

    X: np.ndarray
    Y: np.ndarray
    U: np.ndarray
    V: np.ndarray


def _field_fn(system: Any, kind: str, clamp, inputs):
    sys_ = make_system(system, kind=kind, clamp=clamp)
    if sys_.dim is not None and sys_.dim != 2:
        raise ValueError(
            f"a phase portrait needs a 2-D state; the free state ({', '.join(sys_.free_fields)}) "
            f"has {sys_.dim} dimensions (use plot_pca_phase_portrait, or clamp fields)"
        )
    if inputs is None:
        u = jnp.zeros(sys_.n_in or 0)
    else:
        u = jnp.asarray(inputs, dtype=jnp.result_type(float))
        if u.ndim != 1 or (sys_.n_in is not None and u.shape[0] != sys_.n_in):
            raise ValueError(
                f"inputs must be one constant input of shape ({sys_.n_in if sys_.n_in is not None else 'P'},), "
                f"got shape {tuple(u.shape)}"
            )
    dim = sys_.dim if sys_.dim is not None else 2
    _check_output(sys_, dim, u)
    return sys_, u


def _check_output(sys_, dim: int, u) -> None:
    try:
        out = jax.eval_shape(sys_.residual, jax.ShapeDtypeStruct((dim,), jnp.result_type(float)), u)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"calling the system with a state of shape ({dim},) failed: {err}") from err
    if tuple(out.shape) != (dim,):
        raise ValueError(f"the system must map a state of shape ({dim},) to shape ({dim},), got {tuple(out.shape)}")


def field_on_grid(
    system: Any,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    resolution: int = 30,
    inputs: Any = None,
    kind: str = "flow",
    clamp: dict[str, Any] | None = None,
) -> FieldGrid:
    """Evaluate a 2-D system's direction field on a ``resolution x resolution`` grid.

    ``system``: a function ``F(x, u)`` of ``x (2,)`` or a model whose free state (after
    ``clamp``) is 2-D; ``inputs``: one constant input ``(P,)``.
    """
    resolution = check_positive_int("resolution", resolution)
    sys_, u = _field_fn(system, kind, clamp, inputs)
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    X, Y = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([X.ravel(), Y.ravel()], axis=1), dtype=jnp.result_type(float))
    vel = np.asarray(jax.jit(jax.vmap(sys_.residual, in_axes=(0, None)))(pts, u))
    return FieldGrid(X, Y, vel[:, 0].reshape(X.shape), vel[:, 1].reshape(X.shape))


class PCAPlane(NamedTuple):
    """A 2-D plane through ``mean (D,)`` spanned by orthonormal ``components (2, D)``;
    ``explained (2,)``: fraction of the data's variance along each."""

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def project(self, x) -> np.ndarray:
        """Coordinates ``(..., 2)`` of states ``(..., D)`` in the plane."""
        return (np.asarray(x) - self.mean) @ self.components.T


def pca_plane(states) -> PCAPlane:
    """The top-2 principal plane of states ``(..., D)`` (all leading axes pooled)."""
    x = np.asarray(states, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 2:
        raise ValueError(f"states must have shape (..., D) with D >= 2, got {x.shape}")
    x = x.reshape(-1, x.shape[-1])
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    total = var.sum() if var.sum() > 0 else 1.0
    return PCAPlane(mean, vt[:2], var[:2] / total)


def pca_field(
    system: Any,
    plane: PCAPlane,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    resolution: int = 25,
    inputs: Any = None,
    kind: str = "flow",
    clamp: dict[str, Any] | None = None,
) -> FieldGrid:
    """The field of a D-dimensional system on the PC plane, projected onto the plane.

    At grid point ``(a, b)`` the state is ``mean + a pc1 + b pc2`` and the arrow is the field
    there projected onto ``(pc1, pc2)``. Off-plane dynamics are ignored: the picture is exact
    only where the dynamics stay near the plane (check ``plane.explained``).
    """
    resolution = check_positive_int("resolution", resolution)
    sys_ = make_system(system, kind=kind, clamp=clamp)
    d = plane.mean.shape[0]
    if sys_.dim is not None and sys_.dim != d:
        raise ValueError(f"the plane lives in {d} dimensions but the free state has {sys_.dim}")
    u = jnp.zeros(sys_.n_in or 0) if inputs is None else jnp.asarray(inputs, dtype=jnp.result_type(float))
    if sys_.n_in is not None and u.shape != (sys_.n_in,):
        raise ValueError(f"inputs must have shape ({sys_.n_in},), got {tuple(u.shape)}")
    _check_output(sys_, d, u)
    A, B = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    coords = np.stack([A.ravel(), B.ravel()], axis=1)
    pts = plane.mean + coords @ plane.components
    vel = np.asarray(
        jax.jit(jax.vmap(sys_.residual, in_axes=(0, None)))(jnp.asarray(pts, dtype=jnp.result_type(float)), u)
    )
    proj = vel @ plane.components.T
    return FieldGrid(A, B, proj[:, 0].reshape(A.shape), proj[:, 1].reshape(A.shape))


# ----------------------------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------------------------


def draw_field(ax, grid: FieldGrid, *, color_by: str = "speed", density: float = 1.2, cmap=None):
    """Stream plot of a :class:`FieldGrid`; ``color_by`` the log speed, the flow direction
    (a cyclic colour per angle, as in paper 000's Fig. 3B), or ``"none"``."""
    check_choice("color_by", color_by, COLOR_BY)
    X, Y, U, V = grid
    speed = np.hypot(U, V)
    kwargs: dict[str, Any] = dict(density=density, linewidth=0.8, arrowsize=0.9)
    if color_by == "speed":
        kwargs.update(color=np.log10(speed + 1e-12), cmap=cmap or "viridis")
    elif color_by == "direction":
        kwargs.update(color=np.arctan2(V, U), cmap=cmap or "twilight", norm=plt.Normalize(-np.pi, np.pi))
    else:
        kwargs.update(color="0.45")
    return ax.streamplot(X, Y, U, V, **kwargs)


def point_labels(fixed_points: FixedPoints) -> list[str]:
    """Drawing labels: the stability label, or ``"slow"`` for slow points."""
    return ["slow" if slow else lab for slow, lab in zip(fixed_points.slow, fixed_points.stability, strict=True)]


def draw_fixed_points(ax, points2d, stability, *, legend: bool = True) -> None:
    """Scatter fixed points ``(K, 2)`` styled by their labels (see :data:`FP_STYLES`)."""
    pts = np.asarray(points2d).reshape(-1, 2)
    labels = list(stability)
    if len(labels) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(labels)} stability labels")
    for label in FP_STYLES:
        sel = [i for i, s in enumerate(labels) if s == label]
        if sel:
            ax.scatter(pts[sel, 0], pts[sel, 1], label=label, **FP_STYLES[label])
    if legend and labels:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)


def draw_trajectories(ax, trajectories, **kwargs) -> None:
    """Lines for trajectories ``(T, 2)`` or ``(B, T, 2)``."""
    tr = np.asarray(trajectories)
    if tr.ndim == 2:
        tr = tr[None]
    style = dict(color="k", lw=1.5, alpha=0.9)
    style.update(kwargs)
    for one in tr:
        ax.plot(one[:, 0], one[:, 1], **style)


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def plot_phase_portrait(
    system: Any,
    path: str | Path,
    *,
    xlim: tuple[float, float] = (-1.2, 1.2),
    ylim: tuple[float, float] = (-1.2, 1.2),
    inputs: Any = None,
    kind: str = "flow",
    clamp: dict[str, Any] | None = None,
    fixed_points: FixedPoints | None = None,
    trajectories: Any = None,
    color_by: str = "speed",
    resolution: int = 30,
    title: str | None = None,
    labels: tuple[str, str] = ("$x_1$", "$x_2$"),
) -> Path:
    """Stream plot of a 2-D system with its fixed points (from :func:`find_fixed_points`) and
    optional trajectories ``(T, 2)``/``(B, T, 2)``; saved as a PNG at ``path``."""
    grid = field_on_grid(system, xlim, ylim, resolution=resolution, inputs=inputs, kind=kind, clamp=clamp)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    draw_field(ax, grid, color_by=color_by)
    if trajectories is not None:
        draw_trajectories(ax, trajectories)
    if fixed_points is not None:
        draw_fixed_points(ax, fixed_points.points[:, :2], point_labels(fixed_points))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return save(fig, path)


def plot_pca_phase_portrait(
    model: Any,
    states: Any,
    path: str | Path,
    *,
    inputs: Any = None,
    kind: str = "flow",
    clamp: dict[str, Any] | None = None,
    fixed_points: FixedPoints | None = None,
    margin: float = 0.2,
    resolution: int = 25,
    color_by: str = "speed",
    max_trajectories: int = 20,
    title: str | None = None,
) -> Path:
    """A trained network's trajectories in their top-2 PC plane, over its projected field.

    ``states``: the free state's trajectories ``(B, T, D)`` or the model's state NamedTuple
    (fields ``(B, T, size)``, e.g. ``simulate(model, inputs).states``; clamped fields ignored);
    ``inputs``: the constant input ``(n_in,)`` at which the field is drawn; the grid covers the
    data's range in the plane plus ``margin`` of it on each side.
    """
    sys_ = make_system(model, kind=kind, clamp=clamp)
    if hasattr(states, "_fields"):
        if sys_.from_state is None:
            raise ValueError("a state NamedTuple needs a model; for a function pass an array (B, T, D)")
        x = np.asarray(sys_.from_state(states))
    else:
        x = np.asarray(states)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"states must be (B, T, D) trajectories, got shape {x.shape}")
    plane = pca_plane(x)
    proj = plane.project(x)
    lo, hi = proj.reshape(-1, 2).min(0), proj.reshape(-1, 2).max(0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    xlim, ylim = (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])
    grid = pca_field(model, plane, xlim, ylim, resolution=resolution, inputs=inputs, kind=kind, clamp=clamp)
    fig, ax = plt.subplots(figsize=(5.0, 4.4))
    draw_field(ax, grid, color_by=color_by)
    draw_trajectories(ax, proj[:max_trajectories], color="k", lw=0.8, alpha=0.6)
    if fixed_points is not None and fixed_points.n_points:
        draw_fixed_points(ax, plane.project(fixed_points.points), point_labels(fixed_points))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(f"PC1 ({100 * plane.explained[0]:.0f}% var.)")
    ax.set_ylabel(f"PC2 ({100 * plane.explained[1]:.0f}% var.)")
    if title:
        ax.set_title(title)
    return save(fig, path)


__all__ = [
    "COLOR_BY",
    "FP_STYLES",
    "FieldGrid",
    "PCAPlane",
    "draw_field",
    "draw_fixed_points",
    "draw_trajectories",
    "field_on_grid",
    "pca_field",
    "pca_plane",
    "point_labels",
    "plot_pca_phase_portrait",
    "plot_phase_portrait",
]
