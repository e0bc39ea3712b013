"""Shared helpers of the NM-RNN theory tests (Proposition 1 and the rank-1 signal): random
models from a seeded NumPy generator and supplement eq. 1-3 written out in NumPy."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from nmrnn.models import NMRNN, trainable_filter


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np(a):
    return np.asarray(a, dtype=np.float64)


def _random_model(cls, *args, seed, scale=0.5, **kwargs):
    """``cls(*args, **kwargs)`` with every trainable array drawn N(0, scale^2) from a seeded NumPy
    generator (buffers such as time constants keep their values)."""
    model = cls(*args, key=jr.PRNGKey(0), **kwargs)
    spec = trainable_filter(model)
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(model)
    chosen = jax.tree.leaves(spec)
    new = [
        jnp.asarray(scale * rng.standard_normal(leaf.shape), dtype=leaf.dtype) if pick else leaf
        for leaf, pick in zip(leaves, chosen, strict=True)
    ]
    return jax.tree.unflatten(treedef, new)


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=jnp.float32)


def _prop1_nmrnn(n, m, k, p, o, *, feedback=True, seed=0, **options):
    """A linearized symmetric NM-RNN with random parameters (z linear, tau_x = dt)."""
    model = _random_model(
        NMRNN, p, n, o, n_nm=m, rank=k, linearized=True, activation="identity", symmetric=True,
        feedback=feedback, tau_z=4.0, seed=seed, **options,
    )  # fmt: skip
    # Keep the linear z dynamics contracting so states stay O(1) over the test horizon.
    return eqx.tree_at(lambda mdl: mdl.W_z, model, 0.3 * model.W_z / np.sqrt(m))


def _paper_linearized_loop(model, inputs):
    """Supplement eq. 1-3 written out in NumPy (paper's notation, dt = 1)."""
    m = model.materialize()
    L, R = (_np(a) for a in m.factors())
    N, M = m.n_hidden, m.n_nm
    tau_z = m.tau_z / m.dt
    W_z, B_z, B_x = _np(m.W_z), _np(m.B_z), _np(m.B_x)
    B_zx = np.zeros((M, N)) if m.B_zx is None else _np(m.B_zx)
    A_z, b_z, C, d = _np(m.A_z), _np(m.b_z), _np(m.C), _np(m.d)
    x, z = np.zeros(N), np.zeros(M)
    ys, xs, zs = [], [], []
    for u in _np(inputs):
        z_new = ((1 - 1 / tau_z) * np.eye(M) + W_z / tau_z) @ z + (B_zx @ x + B_z @ u) / tau_z
        s = _sigmoid(A_z @ z_new + b_z)
        x = L @ np.diag(s) @ R.T @ x / N + B_x @ u
        z = z_new
        ys.append(C @ x + d)
        xs.append(x)
        zs.append(z)
    return np.array(ys), np.array(xs), np.array(zs)
