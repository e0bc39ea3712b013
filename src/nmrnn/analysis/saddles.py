"""Stable points, the saddles between them and the saddles' unstable manifolds, for any model.

A network that stores discrete memories has stable fixed points (the memories) and, between two
memories, saddles whose unstable manifolds run into them: the boundary an input has to push the
state across to switch memory (Sussillo & Barak 2013; see docs/references.md). This module finds
that structure for any recurrent model of the library at a constant input.

Method
------
:func:`find_saddles` searches the fixed points of the one-step map ``x -> F(x, u)`` with
:func:`nmrnn.analysis.find_fixed_points` and its default two-pass search (``search="between"``):

1. from states sampled along the network's own trajectories
   (:func:`nmrnn.analysis.sample_states`, plus Gaussian noise), which finds the memories;
2. from the points of pass 1 together with points on the straight lines between every pair of
   stable points (fractions ``interp_fractions``) and their centroid, which finds the saddles
   between them (a trained network visits the saddle region only during its brief transitions,
   so pass 1 alone rarely finds them).

Every saddle's leading unstable eigenvector ``v`` (unit norm) is then followed in both directions
(:func:`follow_unstable_manifolds`): the map is iterated from ``saddle +/- eps v`` for
``follow_steps`` steps and each end is assigned to the stable point it reached (max-abs distance
at most ``end_tol``; ``-1`` if none). State fields named in ``clamp`` are held fixed throughout
(see :mod:`nmrnn.analysis.fixed_points` for the semantics, and
:func:`nmrnn.analysis.clamp_preimage` for the value that makes a step *use* a given level).

Units: time in steps; eigenvalues are those of the one-step map (``|lambda| > 1`` is unstable).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validation import check_nonnegative, check_positive, check_positive_int
from .fixed_points import (
    STABILITY_LABELS,
    FixedPointReport,
    FixedPoints,
    find_fixed_points,
    make_system,
    sample_states,
    stability_margins,
)


class SaddleAnalysis(NamedTuple):
    """Stable points, saddles and unstable manifolds of a model at a constant input. ``S`` stable
    points, ``Q`` saddles, free-state size ``D``, ``O`` outputs, ``T`` = ``follow_steps``.

    Attributes:
        fixed_points: every unique point of the final search (:class:`~nmrnn.analysis.FixedPoints`).
        first_pass: the report of the search from the trajectory samples (it accounts for them).
        stable_index: ``(S,)`` indices of the stable points in ``fixed_points``.
        saddle_index: ``(Q,)`` indices of the saddles.
        stable_readouts: ``(S, O)`` the readout at each stable point.
        saddle_readouts: ``(Q, O)``.
        n_unstable: ``(Q,)`` number of unstable directions of each saddle.
        unstable_eigenvalues: ``(Q,)`` the leading (largest-modulus) eigenvalue of each saddle.
        saddle_ends: ``(Q, 2)`` position in the stable points (``-1``: none within ``end_tol``)
            reached from ``saddle - eps v`` and ``saddle + eps v``.
        end_distances: ``(Q, 2)`` max-abs distance of each end state from the nearest stable point.
        manifolds: ``(Q, 2, T + 1, D)`` the two followed branches of the unstable manifold.
        manifold_readouts: ``(Q, 2, T + 1, O)`` their readouts.
        inputs: ``(P,)`` the constant input.
        clamp: the clamped fields (``{}`` if none).
        settings: the search settings.
    """

    fixed_points: FixedPoints
    first_pass: FixedPointReport
    stable_index: np.ndarray
    saddle_index: np.ndarray
    stable_readouts: np.ndarray
    saddle_readouts: np.ndarray
    n_unstable: np.ndarray
    unstable_eigenvalues: np.ndarray
    saddle_ends: np.ndarray
    end_distances: np.ndarray
    manifolds: np.ndarray
    manifold_readouts: np.ndarray
    inputs: np.ndarray
    clamp: dict[str, np.ndarray]
    settings: dict[str, Any]

    def joined_pairs(self, n_unstable: int = 1) -> list[tuple[int, int]]:
        """Pairs ``(i, j)``, ``i < j``, of stable points (positions in ``stable_index``) joined by
        the unstable manifold of a saddle with exactly ``n_unstable`` unstable directions (both
        ends reached a stable point, two different ones)."""
        ends = np.asarray(self.saddle_ends, dtype=int).reshape(-1, 2)
        keep = (np.asarray(self.n_unstable) == n_unstable) & (ends.min(axis=1, initial=0) >= 0)
        keep &= ends[:, 0] != ends[:, 1]
        return sorted({(int(a), int(b)) for a, b in np.sort(ends[keep], axis=1)})


def _readouts(model, system, points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros((0, model.n_out))
    state = system.to_state(jnp.asarray(points))
    return np.asarray(model.readout(state))


def _constant_input(model, inputs, dtype) -> jax.Array:
    u = jnp.zeros(model.n_in, dtype) if inputs is None else jnp.asarray(inputs, dtype)
    if u.shape != (model.n_in,):
        raise ValueError(f"inputs must have shape ({model.n_in},), got {tuple(u.shape)}")
    return u


def follow_unstable_manifolds(
    model: Any,
    saddles: Any,
    directions: Any,
    *,
    inputs: Any = None,
    clamp: dict[str, Any] | None = None,
    eps: float = 1e-2,
    n_steps: int = 500,
) -> np.ndarray:
    """Iterate the one-step map from ``saddles -/+ eps * directions`` for ``n_steps`` steps.

    ``saddles``, ``directions``: ``(Q, D)`` free-state coordinates (as in
    :func:`nmrnn.analysis.find_fixed_points`); ``directions`` are normalised to unit length;
    ``inputs``: the constant input ``(n_in,)`` (default zeros); ``clamp`` as in the analysis.
    Returns ``(Q, 2, n_steps + 1, D)``: branch 0 starts at ``saddle - eps v``, branch 1 at
    ``saddle + eps v``; entry 0 is the starting point.
    """
    check_positive("eps", eps)
    n_steps = check_positive_int("n_steps", n_steps)
    system = make_system(model, kind="map", clamp=clamp)
    s = jnp.asarray(saddles, jnp.result_type(float))
    v = jnp.asarray(directions, s.dtype)
    if s.ndim != 2 or s.shape != v.shape or s.shape[1] != system.dim:
        raise ValueError(
            f"saddles and directions must both have shape (Q, {system.dim}); got "
            f"{tuple(s.shape)} and {tuple(v.shape)}"
        )
    if s.shape[0] == 0:
        return np.zeros((0, 2, n_steps + 1, system.dim))
    u = _constant_input(model, inputs, s.dtype)
    v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
    starts = jnp.stack([s - eps * v, s + eps * v], axis=1).reshape(-1, s.shape[1])
    fn = jax.vmap(system.fn, in_axes=(0, None))

    def body(x, _):
        new = fn(x, u)
        return new, new

    @jax.jit
    def run(x0):
        _, path = jax.lax.scan(body, x0, None, length=n_steps)
        return jnp.concatenate([x0[None], path], axis=0)

    path = np.asarray(run(starts))  # (T + 1, 2Q, D)
    return np.moveaxis(path, 0, 1).reshape(s.shape[0], 2, n_steps + 1, s.shape[1])


def find_saddles(
    model: Any,
    states: Any,
    *,
    key: PRNGKeyArray,
    inputs: Any = None,
    clamp: dict[str, Any] | None = None,
    n_samples: int = 256,
    noise_scale: float = 0.02,
    interp_fractions: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7),
    eps: float = 1e-2,
    follow_steps: int = 500,
    end_tol: float = 1e-2,
    **find_options: Any,
) -> SaddleAnalysis:
    """The stable points, the saddles between them and the saddles' unstable manifolds of
    ``model`` at the constant input ``inputs`` (see the module docstring for the method).

    Args:
        model: a recurrent model.
        states: its trajectories: the state NamedTuple with fields ``(B, T, size)`` (e.g.
            ``simulate(model, batch.inputs).states``).
        key: PRNG key (trajectory samples and the noise on the initial states).
        inputs: the constant input ``(n_in,)``; ``None``: zeros (the input-free map).
        clamp: state fields held fixed, ``{field: value}`` (see
            :func:`nmrnn.analysis.find_fixed_points`).
        n_samples: initial states drawn from ``states`` for the first pass.
        noise_scale: standard deviation of the Gaussian noise added to the sampled states.
        interp_fractions: positions on the segment between two stable points used as initial
            states of the second pass (0 and 1 are the end points).
        eps: distance from a saddle along its unstable eigenvector where the manifold is started.
        follow_steps: steps of the map iterated from each start.
        end_tol: max-abs distance within which an end state counts as having reached a stable
            point.
        **find_options: passed to :func:`nmrnn.analysis.find_fixed_points` (``tol_q``,
            ``max_iters``, ``method``, ``tol_unique``, ``stability_tol``, ...).
    """
    n_samples = check_positive_int("n_samples", n_samples)
    noise_scale = check_nonnegative("noise_scale", noise_scale)
    end_tol = check_positive("end_tol", end_tol)
    fractions = tuple(float(f) for f in interp_fractions)
    if not fractions or any(not 0.0 < f < 1.0 for f in fractions):
        raise ValueError(
            f"interp_fractions must be non-empty and inside (0, 1), got {interp_fractions}"
        )
    bad = {"kind", "clamp", "inputs"} & set(find_options)
    if bad:
        raise ValueError(
            f"{sorted(bad)} cannot be set: the search is on the one-step map (kind='map') at the "
            "constant input inputs=; pass clamped fields as clamp="
        )
    system = make_system(model, kind="map", clamp=clamp)
    u = _constant_input(model, inputs, jnp.result_type(float))
    k_sample, _ = jr.split(key)

    inits = sample_states(states, n_samples, key=k_sample, noise_scale=noise_scale)
    final = find_fixed_points(model, inits, u, clamp=clamp, between_fractions=fractions, **find_options)
    first = final.report.first_pass or final.report

    labels = np.asarray(final.stability, dtype=object)
    stable_idx = np.flatnonzero(labels == "stable")
    saddle_idx = np.flatnonzero(labels == "saddle")
    readouts = _readouts(model, system, final.points)

    tol = final.report.tolerances["stability_tol"]
    # eigenvalues (and their eigenvector columns) are sorted by decreasing modulus
    margins = stability_margins(final.eigenvalues[saddle_idx], "map").reshape(len(saddle_idx), -1)
    n_unstable = np.sum(margins > tol, axis=1).astype(int)
    vals = final.eigenvalues[saddle_idx, 0]
    vecs = np.real(final.eigenvectors[saddle_idx, :, 0])
    paths = follow_unstable_manifolds(
        model, final.points[saddle_idx], vecs, inputs=u, clamp=clamp, eps=eps, n_steps=follow_steps
    )
    stable_pts = final.points[stable_idx]
    ends = np.full((len(saddle_idx), 2), -1, dtype=int)
    end_dist = np.full((len(saddle_idx), 2), np.inf)
    if len(saddle_idx) and len(stable_idx):
        last = paths[:, :, -1]  # (Q, 2, D)
        dist = np.max(np.abs(last[:, :, None, :] - stable_pts[None, None]), axis=-1)  # (Q, 2, S)
        nearest = np.argmin(dist, axis=-1)
        end_dist = np.take_along_axis(dist, nearest[..., None], axis=-1)[..., 0]
        ends = np.where(end_dist <= end_tol, nearest, -1)
    flat = paths.reshape(-1, paths.shape[-1])
    path_ro = _readouts(model, system, flat).reshape(*paths.shape[:3], model.n_out)
    settings = dict(
        n_samples=n_samples, noise_scale=noise_scale, interp_fractions=fractions, eps=float(eps),
        follow_steps=int(follow_steps), end_tol=end_tol, **final.report.tolerances,
    )
    return SaddleAnalysis(
        fixed_points=final,
        first_pass=first,
        stable_index=stable_idx,
        saddle_index=saddle_idx,
        stable_readouts=readouts[stable_idx],
        saddle_readouts=readouts[saddle_idx],
        n_unstable=n_unstable,
        unstable_eigenvalues=vals,
        saddle_ends=ends,
        end_distances=end_dist,
        manifolds=paths,
        manifold_readouts=path_ro,
        inputs=np.asarray(u),
        clamp={k: np.asarray(v) for k, v in system.clamped.items()},
        settings=settings,
    )


def free_coordinates(model: Any, states: Any, clamp: dict[str, Any] | None = None) -> np.ndarray:
    """The free-state coordinates ``(B, T, D)`` of trajectories (state NamedTuple ``(B, T, .)``),
    as used by :func:`find_saddles` with the same ``clamp``."""
    return np.asarray(make_system(model, kind="map", clamp=clamp).from_state(states))


def saddles_by_unstable_dims(n_unstable: Any, up_to: int) -> dict[str, int]:
    """Counts of saddles by number of unstable directions: ``{"1": .., ..., str(up_to): ..}``,
    plus ``">up_to"`` when some saddle has more."""
    up_to = check_positive_int("up_to", up_to)
    n = np.asarray(n_unstable)
    out = {str(k): int(np.sum(n == k)) for k in range(1, up_to + 1)}
    if np.any(n > up_to):
        out[f">{up_to}"] = int(np.sum(n > up_to))
    return out


def search_report(fp: FixedPoints | FixedPointReport) -> dict[str, int]:
    """The counts of a search's :class:`~nmrnn.analysis.FixedPointReport` (or of the report of a
    :class:`~nmrnn.analysis.FixedPoints`)."""
    r = fp.report if isinstance(fp, FixedPoints) else fp
    return {
        "candidates": r.n_candidates,
        "converged": r.n_converged,
        "fixed": r.n_fixed,
        "slow": r.n_slow,
        "not_converged": len(r.not_converged),
        "outliers": len(r.distance_outliers),
        "unique": r.n_unique,
    }


def summarize_saddles(analysis: SaddleAnalysis, *, max_unstable_dims: int | None = None) -> dict[str, Any]:
    """The numbers of an analysis (JSON-able): counts by stability label, saddles by number of
    unstable directions (up to ``max_unstable_dims``; default the largest found), stable pairs
    joined by one-unstable-direction saddles, the edge saddles' eigenvalue moduli, the worst
    speed, the slow points and both searches' reports."""
    fp = analysis.fixed_points
    n_unstable = np.asarray(analysis.n_unstable)
    up_to = max_unstable_dims or max(1, int(n_unstable.max(initial=1)))
    one = n_unstable == 1
    return {
        "n_fixed_points": fp.n_points,
        "n_stable": len(analysis.stable_index),
        "n_saddles": len(analysis.saddle_index),
        "labels": {lab: int(sum(s == lab for s in fp.stability)) for lab in STABILITY_LABELS},
        "saddles_by_unstable_dims": saddles_by_unstable_dims(n_unstable, up_to),
        "stable_pairs_joined": len(analysis.joined_pairs(1)),
        "edge_saddle_eigenvalue_modulus": np.abs(analysis.unstable_eigenvalues[one]),
        "max_q": float(np.max(fp.q)) if fp.n_points else None,
        "n_slow_points": int(np.sum(fp.slow)),
        "search": {"first_pass": search_report(analysis.first_pass), "second_pass": search_report(fp)},
    }


__all__ = [
    "SaddleAnalysis",
    "find_saddles",
    "follow_unstable_manifolds",
    "free_coordinates",
    "saddles_by_unstable_dims",
    "search_report",
    "summarize_saddles",
]
