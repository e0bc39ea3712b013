"""Recurrent noise: ``sqrt(2 alpha) sigma_rec xi_t`` added to each leaky state variable per step.

Determinism by key, independence across keys, trials and steps, and the per-step variance
``2 alpha sigma^2`` (statistically, with loose bounds: thousands of samples, 10% tolerance,
which is about seven standard errors).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from models_cases import N_IN, N_OUT, jit_simulate

from nmrnn.models import make_model

SIGMA = 0.3
N_TRIALS = 2000

# (name, n_hidden, options, {state field: alpha of its noise}, state fields without noise)
NOISY = [
    ("vanilla", 6, dict(tau=4.0), {"x": 0.25}, ()),
    ("lowrank", 6, dict(tau=5.0, dt=2.0, rank=2), {"x": 0.4}, ()),
    ("nmrnn", 6, dict(n_nm=3, rank=2, tau_x=4.0, tau_z=10.0), {"x": 0.25, "z": 0.1}, ()),
    ("enmrnn", 6, dict(n_nm=3, tau_r=5.0, tau_n=4.0), {"r": 0.2}, ("n",)),
]
IDS = [c[0] for c in NOISY]


def _model(name, n, options, sigma):
    return make_model(name, n_in=N_IN, n_out=N_OUT, n_hidden=n, key=jr.PRNGKey(3), sigma_rec=sigma, **options)


@pytest.mark.parametrize("name,n,options,alphas,quiet", NOISY, ids=IDS)
def test_noise_is_a_pure_function_of_the_key(name, n, options, alphas, quiet):
    noisy, clean = _model(name, n, options, SIGMA), _model(name, n, options, 0.0)
    u = jnp.asarray(np.random.default_rng(0).normal(size=(4, 15, N_IN)))
    a = jit_simulate(noisy, u, key=jr.PRNGKey(1))
    b = jit_simulate(noisy, u, key=jr.PRNGKey(1))
    c = jit_simulate(noisy, u, key=jr.PRNGKey(2))
    np.testing.assert_array_equal(np.asarray(a.outputs), np.asarray(b.outputs))
    assert np.max(np.abs(np.asarray(a.outputs) - np.asarray(c.outputs))) > 1e-3
    # without a key the noisy model runs noise-free, and so does sigma_rec = 0 with a key
    d = jit_simulate(noisy, u)
    e = jit_simulate(clean, u, key=jr.PRNGKey(1))
    np.testing.assert_allclose(np.asarray(d.outputs), np.asarray(e.outputs), rtol=0, atol=1e-6)
    assert np.max(np.abs(np.asarray(a.outputs) - np.asarray(d.outputs))) > 1e-3


@pytest.mark.parametrize("name,n,options,alphas,quiet", NOISY, ids=IDS)
def test_noise_variance_per_step_is_2_alpha_sigma_squared(name, n, options, alphas, quiet):
    """At the first step both runs start from the same state, so noisy - clean is the noise."""
    model = _model(name, n, options, SIGMA)
    u = jnp.asarray(np.random.default_rng(1).normal(size=(N_TRIALS, 1, N_IN)))
    noisy = jit_simulate(model, u, key=jr.PRNGKey(5))
    clean = jit_simulate(model, u)
    for field, alpha in alphas.items():
        xi = np.asarray(getattr(noisy.states, field) - getattr(clean.states, field))[:, 0]
        expected = 2 * alpha * SIGMA**2
        assert np.mean(xi) == pytest.approx(0.0, abs=0.1 * np.sqrt(expected))
        assert np.var(xi) == pytest.approx(expected, rel=0.1), field
        # independent across neurons and trials: the empirical correlation matrix is ~identity
        corr = np.corrcoef(xi.T)
        assert np.max(np.abs(corr - np.eye(corr.shape[0]))) < 0.1
    if len(alphas) == 2:  # the two subnetworks draw independent noise
        x0, z0 = (np.asarray(getattr(noisy.states, f) - getattr(clean.states, f))[:, 0, 0] for f in alphas)
        assert abs(np.corrcoef(x0, z0)[0, 1]) < 0.1
    for field in quiet:  # neuromodulator concentrations carry no noise of their own
        np.testing.assert_allclose(np.asarray(getattr(noisy.states, field)), np.asarray(getattr(clean.states, field)), atol=1e-7)


def test_noise_accumulates_as_a_leaky_integrator():
    """A linear leaky RNN with W = 0 and no input is an AR(1) process:
    x_t = (1-a) x_{t-1} + sqrt(2a) sigma xi_t, so Var x_t = 2 a sigma^2 sum_{s<t} (1-a)^{2s},
    and the innovations x_t - (1-a) x_{t-1} are uncorrelated over time."""
    tau, steps = 4.0, 20
    a = 1.0 / tau
    model = make_model("vanilla", n_in=1, n_out=1, n_hidden=4, key=jr.PRNGKey(0), tau=tau,
                       activation="identity", sigma_rec=SIGMA)
    model = eqx.tree_at(lambda m: m.W, model, jnp.zeros((4, 4)))
    x = np.asarray(jit_simulate(model, jnp.zeros((N_TRIALS, steps, 1)), key=jr.PRNGKey(9)).states.x)
    t = np.arange(1, steps + 1)
    expected = 2 * a * SIGMA**2 * (1 - (1 - a) ** (2 * t)) / (1 - (1 - a) ** 2)
    var = x.var(axis=(0, 2))
    np.testing.assert_allclose(var, expected, rtol=0.1)
    innov = x[:, 1:] - (1 - a) * x[:, :-1]
    lag1 = np.mean(innov[:, 1:] * innov[:, :-1]) / np.mean(innov**2)
    assert abs(lag1) < 0.05
