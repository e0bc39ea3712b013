"""Spatial embedding: neurons placed in space, distance-weighted connectivity, the seRNN wiring
cost and the network statistics of a connectivity matrix (seRNN: Achterberg, Akarca et al. 2023;
the e-nmRNN paper's spatially embedded variant, paper 000 Table 4; the review, paper 003).

* :func:`grid_coordinates`: neurons on a 3-D grid with unit spacing, in the order of the seRNN
  authors' code (``numpy.meshgrid(x, y, z)`` raveled; their demo: 5 x 5 x 4 = 100 units).
* :func:`distance_matrix`: Euclidean distances (optionally to a power, as their ``distance_power``).
* :func:`distance_weights`: ``exp(-d_ij / lambda)`` with ``lambda`` a fraction of the domain (the
  largest side of the grid's bounding box; the paper: 10%); the models take it as a fixed mask on
  the recurrent weights (``spatial_grid=...`` of :class:`~nmrnn.models.ENMRNN` and
  :class:`~nmrnn.models.LeakyRNN`).
* :func:`communicability` and :func:`sernn_cost`: ``sum_ij |W_ij| C_ij D_ij`` with the weighted
  communicability ``C = expm(S^-1/2 |W| S^-1/2)``, ``S`` the diagonal of strengths, ``diag(C) = 0``.
  The authors' code applies it to a Keras recurrent kernel, whose rows are the *presynaptic*
  neurons, and takes ``S`` from its row sums (out-strengths): ``orientation="pre_post"`` (default)
  does the same to this library's ``W`` (rows postsynaptic) by working on ``W^T``;
  ``orientation="post_pre"`` reads the formula literally on ``W`` (in-strengths). A neuron with
  zero strength gets ``S^-1/2 = 0`` instead of infinity (the guard).
* :class:`SeRNNCost`: the cost as an objective term on any model's recurrent matrix.
* :func:`network_statistics`: the thresholded graph's modularity Q (Louvain, NetworkX) and
  small-worldness ``(C / C_null) / (E_null / E)`` from the mean clustering coefficient and the
  global efficiency, as the authors' demo computes it, against random graphs of the same density
  and number of edges (``null="density"``, default) or the demo's own null (symmetrised uniform matrices thresholded
  at 0.7, ``null="authors"``).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from ._validation import check_choice, check_positive, check_positive_int

ORIENTATIONS = ("pre_post", "post_pre")
NULLS = ("density", "authors")


def check_grid(grid, n: int | None = None) -> tuple[int, int, int]:
    """``grid`` as three positive integers (whose product is ``n`` when given)."""
    try:
        g = tuple(int(v) for v in grid)
        ok = len(g) == 3 and all(float(v) == int(v) for v in grid)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(g) <= 0:
        raise ValueError(f"spatial_grid must be three positive integers (nx, ny, nz), got {grid!r}")
    if n is not None and math.prod(g) != n:
        raise ValueError(f"spatial_grid {g} holds {math.prod(g)} neurons, but the network has {n}")
    return g


def grid_coordinates(grid=(5, 5, 4), spacing: float = 1.0) -> np.ndarray:
    """``(N, 3)`` coordinates of ``nx * ny * nz`` neurons on a grid, in the seRNN code's order."""
    nx, ny, nz = check_grid(grid)
    spacing = check_positive("spacing", spacing)
    x, y, z = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz))
    return spacing * np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1).astype(float)


def distance_matrix(coords, power: float = 1.0) -> np.ndarray:
    """Euclidean distances between the rows of ``coords``, to the power ``power``."""
    c = np.asarray(coords, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"coords must be an (N, dim) array, got shape {c.shape}")
    d = np.sqrt(np.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=-1))
    return d ** check_positive("power", power)


def domain_size(coords) -> float:
    """The largest side of the coordinates' bounding box."""
    c = np.asarray(coords, dtype=float)
    return float(np.max(c.max(axis=0) - c.min(axis=0)))


def distance_weights(coords, length_fraction: float = 0.1) -> np.ndarray:
    """``exp(-d_ij / lambda)``, ``lambda = length_fraction * domain_size(coords)``."""
    frac = check_positive("spatial_length", length_fraction)
    size = domain_size(coords)
    if size <= 0:
        raise ValueError("distance weights need neurons at more than one position")
    return np.exp(-distance_matrix(coords) / (frac * size))


def spatial_mask(grid, n: int, length_fraction: float = 0.1) -> jax.Array:
    """The recurrent mask of a spatially embedded model of ``n`` neurons on ``grid``."""
    check_grid(grid, n)
    return jnp.asarray(distance_weights(grid_coordinates(grid), length_fraction), dtype=jnp.float32)


def _inv_sqrt_strength(strength):
    positive = strength > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, strength, 1.0)), 0.0)


def communicability(W, orientation: str = "pre_post") -> jax.Array:
    """Weighted communicability of ``|W|`` (diagonal zero), in ``W``'s orientation (see the
    module docstring for ``orientation``)."""
    check_choice("orientation", orientation, ORIENTATIONS)
    A = jnp.abs(jnp.asarray(W))
    if orientation == "pre_post":
        A = A.T
    s = _inv_sqrt_strength(jnp.sum(A, axis=1))
    C = jsl.expm(s[:, None] * A * s[None, :])
    C = C * (1.0 - jnp.eye(C.shape[0], dtype=C.dtype))
    return C.T if orientation == "pre_post" else C


def sernn_cost(W, distances, orientation: str = "pre_post", comms_power: float = 1.0) -> jax.Array:
    """``sum_ij |W_ij| C_ij^comms_power D_ij`` (unweighted: multiply by the regularisation
    strength, as a term weight)."""
    W = jnp.asarray(W)
    D = jnp.asarray(distances, dtype=W.dtype)
    if D.shape != W.shape:
        raise ValueError(f"distances must have the shape of W {W.shape}, got {D.shape}")
    C = communicability(W, orientation)
    return jnp.sum(jnp.abs(W) * C**comms_power * D)


class SeRNNCost(eqx.Module):
    """The seRNN wiring cost of a model's recurrent matrix as an objective term (the term's
    weight is the regularisation strength; the seRNN demo uses 0.5 at 100 units).

    ``distances`` ``(N, N)`` (e.g. ``distance_matrix(grid_coordinates(grid))``); the matrix is
    the model's ``recurrent_weights()`` (Dale signs and spatial mask applied) when it has one, else its
    field ``field``."""

    distances: jax.Array
    field: str = eqx.field(static=True)
    orientation: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, distances, field: str = "W", orientation: str = "pre_post", name: str = "wiring_cost"):
        D = np.asarray(distances, dtype=float)
        if D.ndim != 2 or D.shape[0] != D.shape[1] or not np.all(np.isfinite(D)) or np.any(D < 0):
            raise ValueError(f"distances must be a square matrix of non-negative numbers, got shape {D.shape}")
        self.distances = jnp.asarray(D, dtype=jnp.float32)
        self.field, self.name = str(field), str(name)
        self.orientation = check_choice("orientation", orientation, ORIENTATIONS)

    def matrix(self, model) -> jax.Array:
        if self.field == "W" and model.recurrent_weights() is not None:
            return model.recurrent_weights()
        W = getattr(model, self.field, None)
        if W is None:
            raise ValueError(f"{type(model).__name__} has no recurrent matrix {self.field!r}")
        return W

    def __call__(self, model, traj=None, data=None) -> jax.Array:
        return sernn_cost(self.matrix(model), self.distances, self.orientation)


def _binarise(W, density: float) -> np.ndarray:
    A = np.abs(np.asarray(W, dtype=float))
    np.fill_diagonal(A, 0.0)
    off = A[~np.eye(A.shape[0], dtype=bool)]
    thresh = np.quantile(off, 1.0 - density)
    return (A > thresh).astype(float)


def _graph_measures(A: np.ndarray, seed: int) -> tuple[float, float, float]:
    import networkx as nx

    G = nx.from_numpy_array(np.maximum(A, A.T))
    G.remove_edges_from(nx.selfloop_edges(G))
    clustering = float(np.mean(list(nx.clustering(G).values())))
    efficiency = float(nx.global_efficiency(G))
    if G.number_of_edges() == 0:
        return clustering, efficiency, 0.0
    communities = nx.community.louvain_communities(G, seed=seed)
    return clustering, efficiency, float(nx.community.modularity(G, communities))


def network_statistics(W, *, density: float = 0.1, n_null: int = 100, null: str = "density",
                       seed: int = 0) -> dict[str, Any]:
    """Statistics of the graph of the strongest ``density`` fraction of ``|W|``'s off-diagonal
    entries, undirected (see the module docstring): ``modularity``, ``clustering``,
    ``efficiency``, their null means and ``small_worldness``."""
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 3:
        raise ValueError(f"W must be a square matrix of at least 3 neurons, got shape {W.shape}")
    density = check_positive("density", density)
    if density >= 1:
        raise ValueError(f"density must lie in (0, 1), got {density}")
    n_null = check_positive_int("n_null", n_null)
    check_choice("null", null, NULLS)
    A = _binarise(W, density)
    clustering, efficiency, modularity = _graph_measures(A, seed)
    edges = int(np.maximum(A, A.T).sum() // 2)
    rng = np.random.default_rng(seed)
    N = W.shape[0]
    c_null, e_null = [], []
    for i in range(n_null):
        if null == "density":  # random undirected graphs with the same number of edges
            import networkx as nx

            R = nx.to_numpy_array(nx.gnm_random_graph(N, edges, seed=int(rng.integers(2**31))))
        else:  # the seRNN demo's null: symmetrised uniform matrices above 0.7
            U = rng.random((N, N))
            R = ((U + U.T) / 2 > 0.7).astype(float)
            np.fill_diagonal(R, 0.0)
        c, e, _ = _graph_measures(R, seed + 1 + i)
        c_null.append(c)
        e_null.append(e)
    cn, en = float(np.mean(c_null)), float(np.mean(e_null))
    sw = (clustering / cn) / (en / efficiency) if cn > 0 and efficiency > 0 else float("nan")
    return {"modularity": modularity, "clustering": clustering, "efficiency": efficiency,
            "null_clustering": cn, "null_efficiency": en, "small_worldness": sw,
            "density": density, "null": null, "edges": edges}


__all__ = [
    "NULLS",
    "ORIENTATIONS",
    "SeRNNCost",
    "communicability",
    "distance_matrix",
    "distance_weights",
    "domain_size",
    "grid_coordinates",
    "network_statistics",
    "sernn_cost",
    "spatial_mask",
]
