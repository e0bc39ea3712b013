"""The rate reduction: the paper's parameter map, the rate model against a NumPy Euler loop of
eq. 17-19, and the comparison's error measures against their formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.spiking import DEFAULT_NEURON, LIFNetwork, compare_reduction, nrmse, reduce_network


def network(seed=0, N=5, M=2, dt=0.1):
    rng = np.random.default_rng(seed)
    return LIFNetwork(rng.normal(0, 0.5, (N, N)), rng.normal(0, 0.5, (M, N, N)), rng.uniform(0.05, 0.1, (N, 1)),
                      rng.uniform(0.22, 0.3, N), rng.uniform(0, 0.01, (M, N)), np.array([[-0.002, 0.003], [0.0, 0.001]]),
                      tau_n=np.array([50.0, 120.0]), V_th=rng.uniform(-52, -48, N), tau_syn=8.0, Q_syn=1.5, dt=dt)


def test_parameter_map_is_the_papers():
    net = network()
    rate = reduce_network(net)
    np.testing.assert_allclose(np.asarray(rate.W), 1.5 * np.asarray(net.W))  # W = Q_tot W_base
    np.testing.assert_allclose(np.asarray(rate.T), 1.5 * np.asarray(net.T))  # T = Q_tot T_LIF
    np.testing.assert_allclose(np.asarray(rate.R), np.asarray(net.tau_n)[:, None] * np.asarray(net.R))
    np.testing.assert_allclose(np.asarray(rate.Z), np.asarray(net.tau_n)[:, None] * np.asarray(net.Z))
    assert rate.tau_r == net.tau_syn and reduce_network(net, tau_r=3.0).tau_r == 3.0


def numpy_lif_rate(I, V_th):
    nd = DEFAULT_NEURON
    V_inf = nd["E_L"] + I / nd["g_L"]
    above = V_inf > V_th
    safe = np.where(above, V_inf, V_th + 1.0)
    isi = nd["tau_ref"] + nd["C_m"] / nd["g_L"] * np.log((safe - nd["V_reset"]) / (safe - V_th))
    return np.where(above, 1.0 / isi, 0.0)


def test_rate_model_equals_a_numpy_euler_loop_of_eq_17_to_19():
    """Forward Euler with a 10 x finer step; the model's own scheme (drive held over a step) is
    first order, so the two agree to O(dt)."""
    with jax.enable_x64(True):
        net = network(dt=0.02)
        rate = reduce_network(net)
        steps = 5000
        t = np.arange(steps) * net.dt
        inputs = np.sin(2 * np.pi * t / 40.0)[:, None]
        traj = rate.simulate(jnp.asarray(inputs))
        W, T, U, b = (np.asarray(x, float) for x in (rate.W, rate.T, rate.U, rate.b))
        R, Z, tau_n, V_th = (np.asarray(x, float) for x in (rate.R, rate.Z, rate.tau_n, rate.V_th))
        h = net.dt / 10
        r, n = np.zeros(5), np.zeros(2)
        rs, ns = [], []
        for i in range(steps):
            for _ in range(10):
                f = numpy_lif_rate((W + np.tensordot(n, T, 1)) @ r + U @ inputs[i] + b, V_th)
                r, n = r + h * (-r + f) / net.tau_syn, n + h * (-n + R @ r + Z @ n) / tau_n
            rs.append(r.copy())
            ns.append(n.copy())
    rs, ns = np.array(rs), np.array(ns)
    assert rs.max() > 0.02 and np.ptp(rs[steps // 2 :]) > 0.005  # firing, and modulated by the input
    np.testing.assert_allclose(np.asarray(traj.r), rs, atol=1e-4)  # rates up to ~0.05 per ms
    np.testing.assert_allclose(np.asarray(traj.n), ns, atol=1e-4)


def test_comparison_errors_are_their_formulas():
    net = network(N=20, M=2)
    t = np.arange(3000) * net.dt
    inputs = jnp.asarray(np.sin(2 * np.pi * t[None, :] / np.array([[50.0], [200.0]]))[..., None], jnp.float32)
    errs = compare_reduction(net, inputs, transient=50.0, key=jax.random.PRNGKey(0))
    assert errs.times[0] > 50.0 and errs.spiking_rate.shape == errs.model_rate.shape == (2, errs.times.size)
    d = errs.spiking_rate - errs.model_rate
    np.testing.assert_allclose(errs.rate_nrmse, np.sqrt((d**2).mean(-1)) / errs.model_rate.std(-1), rtol=1e-6)
    np.testing.assert_allclose(errs.rate_rel, np.sqrt((d**2).mean(-1)) / errs.model_rate.mean(-1), rtol=1e-6)
    dn = errs.spiking_n - errs.model_n
    np.testing.assert_allclose(errs.nm_rel, np.sqrt((dn**2).mean(-2)) / np.sqrt((errs.model_n**2).mean(-2)), rtol=1e-6)
    np.testing.assert_allclose(errs.nm_nrmse, nrmse(errs.spiking_n, errs.model_n, axis=-2))
