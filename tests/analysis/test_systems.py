"""The 2-neuron system, the RK4 integrator and the limit-cycle measurements."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn.analysis import (
    TWO_NEURON_W,
    TwoNeuronFamily,
    cycle_stats,
    integrate,
    two_neuron_cycle_frequency,
    two_neuron_cycle_radius,
    two_neuron_field,
    two_neuron_hopf_n,
    two_neuron_jacobian,
    two_neuron_origin_eigenvalues,
)


def test_two_neuron_field_against_a_plain_loop():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 2))
    n, r3 = 0.7, -0.2
    out = np.asarray(two_neuron_field(jnp.asarray(r), n, r3))
    for k in range(5):
        for i in range(2):
            a = n * (TWO_NEURON_W[i, 0] * r[k, 0] + TWO_NEURON_W[i, 1] * r[k, 1]) + r3
            assert out[k, i] == pytest.approx(-r[k, i] + np.tanh(a), abs=1e-6)
    fam_n = TwoNeuronFamily("n", r3)
    fam_r3 = TwoNeuronFamily("r3", n)
    np.testing.assert_allclose(fam_n(jnp.asarray(r[0]), n), out[0], atol=1e-6)
    np.testing.assert_allclose(fam_r3(jnp.asarray(r[0]), r3), out[0], atol=1e-6)


def test_two_neuron_jacobian_against_finite_differences():
    r, n, r3 = np.array([0.3, -0.5]), 0.8, 0.1

    def f(x):
        return -x + np.tanh(n * TWO_NEURON_W @ x + r3)

    h = 1e-6
    fd = np.stack([(f(r + h * e) - f(r - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(two_neuron_jacobian(r, n, r3), fd, atol=1e-8)


@pytest.mark.parametrize("n", [0.1, 0.5, 0.77, 1.3])
def test_origin_eigenvalues_closed_form(n):
    expected = np.array([(2 * n - 1) + 1j * n, (2 * n - 1) - 1j * n])
    np.testing.assert_allclose(two_neuron_origin_eigenvalues(n), expected, atol=1e-12)
    lam = np.linalg.eigvals(n * TWO_NEURON_W - np.eye(2))
    np.testing.assert_allclose(np.sort_complex(lam), np.sort_complex(expected), atol=1e-12)
    assert two_neuron_hopf_n() == pytest.approx(0.5)


def test_hopf_n_and_cycle_radius_refuse_unsuitable_W():
    with pytest.raises(ValueError, match="no complex eigenvalues"):
        two_neuron_hopf_n(np.eye(2))
    with pytest.raises(ValueError, match=r"form \[\[a, -b\], \[b, a\]\]"):
        two_neuron_cycle_radius(0.6, np.array([[2.0, 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="vary"):
        TwoNeuronFamily("gain", 0.0)


def test_cycle_radius_formula():
    # rho^2 = (2n - 1) / (2.5 n^3) for the paper's W; NaN below the Hopf point
    n = np.array([0.4, 0.5, 0.52, 0.6])
    expected = np.sqrt(np.maximum(2 * n - 1, 0) / (2.5 * n**3))
    expected[:2] = np.nan
    np.testing.assert_allclose(two_neuron_cycle_radius(n), expected, equal_nan=True)


def _decay(x, k):
    return -k * x


def test_rk4_against_the_exact_solution_and_its_order():
    x0 = jnp.array([1.0, -2.0])
    out = np.asarray(integrate(_decay, x0, dt=0.1, n_steps=20, save_every=5, args=(0.5,)))
    t = 0.1 * 5 * np.arange(1, 5)
    np.testing.assert_allclose(out, np.exp(-0.5 * t)[:, None] * np.asarray(x0), rtol=1e-6)
    # exactly the RK4 amplification factor R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24 per step
    z = -2.0 * 0.25
    R = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    y = np.asarray(integrate(_decay, jnp.array([1.0]), dt=0.25, n_steps=16, args=(2.0,)))
    np.testing.assert_allclose(y[:, 0], R ** np.arange(1, 17), rtol=2e-6)
    # fourth order: halving dt divides the global error by ~16 (18-19 at these step sizes)
    err = []
    for dt in (0.25, 0.125):
        y = np.asarray(integrate(_decay, jnp.array([1.0]), dt=dt, n_steps=int(4 / dt), args=(1.0,)))
        err.append(abs(y[-1, 0] - np.exp(-4.0)))
    assert 14 < err[0] / err[1] < 22
    with pytest.raises(ValueError, match="multiple of save_every"):
        integrate(_decay, x0, dt=0.1, n_steps=10, save_every=3, args=(1.0,))
    with pytest.raises(ValueError, match="dt must be a positive number"):
        integrate(_decay, x0, dt=0.0, n_steps=10, args=(1.0,))


def test_cycle_stats_on_a_known_oscillation():
    dt = 0.01
    t = np.arange(0, 40, dt)
    traj = np.stack([0.3 + 0.8 * np.sin(2 * np.pi * t / 2.5), -0.1 + 0.5 * np.cos(2 * np.pi * t / 2.5)], 1)
    st = cycle_stats(traj, dt)
    assert st.oscillating
    assert st.period == pytest.approx(2.5, rel=1e-4)
    np.testing.assert_allclose(st.amplitude, [0.8, 0.5], rtol=1e-3)
    np.testing.assert_allclose(st.mean, [0.3, -0.1], atol=2e-3)
    rest = cycle_stats(np.tile([[0.2, 0.4]], (50, 1)), dt)
    assert not rest.oscillating and np.isnan(rest.period)
    np.testing.assert_allclose(rest.mean, [0.2, 0.4])
    with pytest.raises(ValueError, match="shape"):
        cycle_stats(np.zeros(5), dt)


def test_simulated_cycle_matches_the_weakly_nonlinear_radius():
    n = 0.51
    tr = np.asarray(integrate(lambda x, a: two_neuron_field(x, a, 0.0), jnp.array([0.25, 0.0]),
                              dt=0.05, n_steps=16000, save_every=10, args=(n,)))
    st = cycle_stats(tr[800:], 0.5)
    assert st.oscillating
    assert st.amplitude.max() == pytest.approx(float(two_neuron_cycle_radius(n)), rel=0.03)
    # on the cycle the angular speed is b / a = 1/2 (not the linear n = 0.51): period 4 pi
    assert two_neuron_cycle_frequency() == 0.5
    assert st.period == pytest.approx(2 * np.pi / two_neuron_cycle_frequency(), rel=0.01)
    assert np.linalg.norm(st.mean) < 5e-3
