"""Spatial embedding, the seRNN wiring cost and the network statistics, against SciPy and graphs
with a known answer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import networkx as nx
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance as ssd

from nmrnn.models import ENMRNN, LeakyRNN
from nmrnn.spatial import (
    SeRNNCost,
    communicability,
    distance_matrix,
    distance_weights,
    grid_coordinates,
    network_statistics,
    sernn_cost,
)


def test_grid_and_distances():
    c = grid_coordinates((5, 5, 4))
    assert c.shape == (100, 3)
    x, y, z = np.meshgrid(np.arange(5), np.arange(5), np.arange(4))
    np.testing.assert_array_equal(c, np.stack([x.ravel(), y.ravel(), z.ravel()], 1))
    np.testing.assert_allclose(distance_matrix(c), ssd.squareform(ssd.pdist(c)), atol=1e-12)
    np.testing.assert_allclose(distance_matrix(c, power=2), ssd.squareform(ssd.pdist(c) ** 2), atol=1e-9)
    w = distance_weights(c, 0.1)
    np.testing.assert_allclose(w, np.exp(-ssd.squareform(ssd.pdist(c)) / 0.4))  # largest side 4


def scipy_cost(W, D, orientation):
    """The seRNN cost as the authors' code computes it, on their (pre, post) kernel."""
    A = np.abs(W.T if orientation == "pre_post" else W)
    s = A.sum(axis=1)
    inv = np.where(s > 0, 1 / np.sqrt(np.where(s > 0, s, 1)), 0.0)
    C = scipy.linalg.expm(np.diag(inv) @ A @ np.diag(inv))
    np.fill_diagonal(C, 0)
    return float(np.sum(A * C * D)), (C.T if orientation == "pre_post" else C)


@pytest.mark.parametrize("orientation", ["pre_post", "post_pre"])
def test_sernn_cost_and_gradient_against_scipy(orientation):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 6))
    W[2, :] = 0.0  # a neuron with no input
    W[:, 4] = 0.0  # and one with no output: the guard keeps the cost finite
    D = distance_matrix(rng.uniform(0, 3, (6, 3)))
    with jax.enable_x64(True):
        value, C = scipy_cost(W, D, orientation)
        np.testing.assert_allclose(np.asarray(communicability(jnp.asarray(W), orientation)), C, rtol=1e-10)
        np.testing.assert_allclose(float(sernn_cost(jnp.asarray(W), D, orientation)), value, rtol=1e-10)
        grad = np.asarray(jax.grad(lambda w: sernn_cost(w, D, orientation))(jnp.asarray(W)))
    fd = np.zeros_like(W)
    h = 1e-6
    for i in range(6):
        for j in range(6):
            if W[i, j] == 0:  # |w| is not differentiable at 0
                continue
            E = np.zeros_like(W)
            E[i, j] = h
            fd[i, j] = (scipy_cost(W + E, D, orientation)[0] - scipy_cost(W - E, D, orientation)[0]) / (2 * h)
    nz = W != 0
    np.testing.assert_allclose(grad[nz], fd[nz], rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(grad))


def test_cost_term_uses_the_effective_matrix():
    m = ENMRNN(2, 8, 1, spatial_grid=(2, 2, 2), dale=True, key=jr.PRNGKey(0))
    D = distance_matrix(grid_coordinates((2, 2, 2)))
    term = SeRNNCost(D)
    np.testing.assert_allclose(float(term(m)), float(sernn_cost(m.effective_W(), D)), rtol=1e-6)
    with pytest.raises(ValueError, match="distances"):
        SeRNNCost(np.ones((3, 2)))


def test_spatial_models_mask_the_recurrent_weights():
    mask = distance_weights(grid_coordinates((4, 2, 2)), 0.2)
    for cls in (ENMRNN, LeakyRNN):
        m = cls(2, 16, 1, spatial_grid=(4, 2, 2), spatial_length=0.2, key=jr.PRNGKey(1))
        np.testing.assert_allclose(np.asarray(m.effective_W()), np.asarray(m.W) * mask, rtol=1e-6)
        # the materialised model (the one simulated and differentiated) carries the mask
        np.testing.assert_allclose(np.asarray(m.materialize().W), np.asarray(m.effective_W()), rtol=1e-6)
        with pytest.raises(ValueError, match="holds 8 neurons"):
            cls(2, 16, 1, spatial_grid=(2, 2, 2), key=jr.PRNGKey(1))
        with pytest.raises(ValueError, match="spatial_length"):
            cls(2, 8, 1, spatial_grid=(2, 2, 2), spatial_length=0.0, key=jr.PRNGKey(1))
        with pytest.raises(ValueError, match="spatial_grid"):
            cls(2, 8, 1, spatial_grid=(2, 4), key=jr.PRNGKey(1))


def test_network_statistics_on_graphs_with_known_structure():
    rng = np.random.default_rng(0)
    N = 60
    # four planted modules: strong weights inside, weak outside
    blocks = np.repeat(np.arange(4), N // 4)
    W = np.where(blocks[:, None] == blocks[None, :], rng.uniform(1, 2, (N, N)), rng.uniform(0, 0.5, (N, N)))
    modular = network_statistics(W, density=0.15, n_null=10)
    random = network_statistics(rng.random((N, N)), density=0.15, n_null=10)
    assert modular["modularity"] > 0.5 and random["modularity"] < 0.35
    # a ring lattice with a few shortcuts is small-world; a random graph of the same density is not
    G = nx.connected_watts_strogatz_graph(N, 8, 0.05, seed=1)
    A = nx.to_numpy_array(G) * rng.uniform(1, 2, (N, N))
    A = A + 1e-3 * rng.random((N, N))  # the strongest 8/59 of the entries are the lattice's edges
    ws = network_statistics(A, density=8 / (N - 1), n_null=10)
    assert ws["edges"] == G.number_of_edges()
    assert ws["small_worldness"] > 2.0
    assert abs(random["small_worldness"] - 1.0) < 0.2
    authors = network_statistics(W, density=0.15, n_null=5, null="authors")
    assert authors["null"] == "authors" and np.isfinite(authors["small_worldness"])
    with pytest.raises(ValueError, match="density"):
        network_statistics(W, density=1.5)
    with pytest.raises(ValueError, match="null"):
        network_statistics(W, null="other")
