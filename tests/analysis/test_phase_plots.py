"""Phase portraits: the field and PCA data against NumPy, and the figures are written."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.analysis import TWO_NEURON_W, find_fixed_points
from nmrnn.analysis.systems import pendulum_field
from nmrnn.models import make_model, simulate
from nmrnn.plotting.phase import (
    field_on_grid,
    pca_field,
    pca_plane,
    plot_pca_phase_portrait,
    plot_phase_portrait,
    point_labels,
)


def two_neuron_u(x, u):
    return -x + jnp.tanh(u[0] * (jnp.asarray(TWO_NEURON_W, x.dtype) @ x) + u[1])


def test_field_on_grid_matches_numpy():
    g = field_on_grid(two_neuron_u, (-1, 1), (-0.5, 0.5), resolution=7, inputs=np.array([0.8, 0.1]))
    X, Y = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-0.5, 0.5, 7))
    U = -X + np.tanh(0.8 * (2 * X - Y) + 0.1)
    V = -Y + np.tanh(0.8 * (X + 2 * Y) + 0.1)
    np.testing.assert_allclose(g.X, X)
    np.testing.assert_allclose(g.U, U, atol=1e-6)
    np.testing.assert_allclose(g.V, V, atol=1e-6)


def test_pca_plane_and_projected_field_on_a_planar_linear_system():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0].T  # an orthonormal plane in R^5
    coords = rng.normal(size=(200, 2)) * [3.0, 1.0]
    data = 0.5 + coords @ basis
    plane = pca_plane(data)
    # the top-2 PCs span the same plane, with all the variance
    np.testing.assert_allclose(plane.components @ plane.components.T, np.eye(2), atol=1e-10)
    np.testing.assert_allclose(np.abs(plane.components @ basis.T @ basis), np.abs(plane.components), atol=1e-10)
    assert plane.explained.sum() == pytest.approx(1.0)
    assert plane.explained[0] > plane.explained[1]
    # a linear field that keeps the plane invariant: A = basis^T M basis - I (off-plane decay)
    M = np.array([[-0.2, 1.0], [-1.0, -0.2]])
    A = basis.T @ M @ basis - 0.3 * (np.eye(5) - basis.T @ basis)

    def lin(x, u):
        return jnp.asarray(A, x.dtype) @ x

    g = pca_field(lin, plane, (-2, 2), (-1, 1), resolution=5, kind="flow")
    pts = plane.mean + np.stack([g.X.ravel(), g.Y.ravel()], 1) @ plane.components
    expected = (pts @ A.T) @ plane.components.T
    np.testing.assert_allclose(g.U.ravel(), expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(g.V.ravel(), expected[:, 1], atol=1e-5)


def test_plot_phase_portrait_writes_png(tmp_path):
    fps = find_fixed_points(pendulum_field, np.array([[0.1, 0.0], [3.0, 0.1], [-3.0, 0.0]]), kind="flow")
    assert set(point_labels(fps)) == {"stable", "saddle"}
    path = plot_phase_portrait(pendulum_field, tmp_path / "p.png", xlim=(-4, 4), ylim=(-2, 2),
                               fixed_points=fps, resolution=12, color_by="direction", title="pendulum")
    assert path.exists() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_phase_portrait_of_a_model_with_a_2d_free_state(tmp_path):
    m = make_model("nmrnn", n_in=1, n_out=1, n_hidden=2, n_nm=2, rank=1, key=jr.PRNGKey(0))
    clamp = {"z": np.zeros(2)}
    g = field_on_grid(m, (-1, 1), (-1, 1), resolution=4, inputs=np.array([0.5]), clamp=clamp, kind="map")
    assert g.U.shape == (4, 4) and np.all(np.isfinite(g.U))
    path = plot_phase_portrait(m, tmp_path / "m.png", inputs=np.array([0.5]), clamp=clamp, kind="map", resolution=8)
    assert path.exists()
    with pytest.raises(ValueError, match="needs a 2-D state"):
        field_on_grid(m, (-1, 1), (-1, 1), resolution=4)  # x and z together are 4-D


def test_plot_pca_phase_portrait_of_a_network(tmp_path):
    m = make_model("vanilla", n_in=1, n_out=1, n_hidden=6, key=jr.PRNGKey(1))
    tr = simulate(m, jr.normal(jr.PRNGKey(2), (3, 25, 1)))
    fps = find_fixed_points(m, 0.3 * jr.normal(jr.PRNGKey(3), (8, 6)), np.zeros(1))
    path = plot_pca_phase_portrait(m, tr.states, tmp_path / "pca.png", inputs=np.zeros(1), fixed_points=fps, resolution=10)
    assert path.exists() and path.stat().st_size > 5000


def test_phase_plot_refusals():
    with pytest.raises(ValueError, match=r"must map a state of shape \(2,\) to shape \(2,\)"):
        field_on_grid(lambda x, u: jnp.concatenate([x, x]), (-1, 1), (-1, 1))
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        field_on_grid(two_neuron_u, (-1, 1), (-1, 1), resolution=0, inputs=np.array([0.5, 0.0]))
    with pytest.raises(ValueError, match="D >= 2"):
        pca_plane(np.zeros((10, 1)))
