"""The LIF simulator against exact single-neuron solutions, a NumPy loop of the same scheme and a
fine-step NumPy event loop; the rate curve against simulation and against the paper's eq. 9."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from nmrnn.activations import lif_rate as paper_lif_rate
from nmrnn.spiking import DEFAULT_NEURON, LIFNetwork, lif_rate, measured_rates, rheobase

ND = DEFAULT_NEURON
TAU_M = ND["C_m"] / ND["g_L"]


def single(V_th=ND["V_th"], dt=0.1, **kw):
    return LIFNetwork(np.zeros((1, 1)), V_th=V_th, dt=dt, **kw)


def test_subthreshold_voltage_is_the_exact_exponential():
    I = 0.15  # below the rheobase of 0.2 nA
    net = single()
    steps = 3000
    t = (np.arange(steps) + 1) * net.dt
    V_inf = ND["E_L"] + I / ND["g_L"]
    exact = V_inf + (ND["E_L"] - V_inf) * np.exp(-t / TAU_M)
    traj, _ = net.simulate(jnp.full((steps, 1), I))
    np.testing.assert_allclose(np.asarray(traj.V[:, 0]), exact, atol=1e-3)  # float32 rounding
    assert float(traj.spikes.sum()) == 0
    with jax.enable_x64(True):
        net = single()
        traj, _ = net.simulate(jnp.full((steps, 1), I, dtype=jnp.float64))
        np.testing.assert_allclose(np.asarray(traj.V[:, 0]), exact, atol=1e-9)


@pytest.mark.parametrize("current", [0.21, 0.3, 0.8, 3.0])
@pytest.mark.parametrize("dt", [0.1, 0.05])
def test_interspike_interval_is_exact_for_a_constant_current(current, dt):
    net = single(dt=dt)
    steps = int(round(400 / dt))
    traj, _ = net.simulate(jnp.full((steps, 1), current))
    times = np.asarray(traj.spike_time[:, 0])
    times = times[np.isfinite(times)]
    V_inf = ND["E_L"] + current / ND["g_L"]
    first = TAU_M * np.log((ND["E_L"] - V_inf) / (ND["V_th"] - V_inf))
    isi = ND["tau_ref"] + TAU_M * np.log((ND["V_reset"] - V_inf) / (ND["V_th"] - V_inf))
    assert times.size >= 2
    np.testing.assert_allclose(times[0], first, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.diff(times), isi, rtol=1e-4, atol=2e-4)


def test_no_spike_at_or_below_rheobase_and_rates_match_the_closed_form():
    th = np.array([-55.0, -50.0, -45.0])
    net = LIFNetwork(np.zeros((3, 3)), U=np.ones((3, 1)), V_th=th)
    currents = np.array([0.1, 0.15, 0.2, 0.25, 0.4, 1.0, 2.5])
    inputs = jnp.broadcast_to(jnp.asarray(currents, jnp.float32)[:, None, None], (len(currents), 10000, 1))
    traj, _ = net.simulate(inputs)
    sim = measured_rates(traj.spike_time)  # (currents, neurons)
    closed = np.asarray(lif_rate(currents[:, None], V_th=th[None, :]))
    rheo = np.asarray(rheobase(V_th=th))
    assert np.all(sim[currents[:, None] <= rheo[None, :]] == 0)
    ok = closed * 1000 >= 3  # at least two intervals in one second
    np.testing.assert_allclose(sim[ok], closed[ok], rtol=1e-4)


def test_closed_form_with_zero_refractory_period_is_the_papers_eq_9():
    I = np.linspace(0.201, 10.0, 50)
    k = ND["g_L"] / ND["C_m"]
    with jax.enable_x64(True):
        paper = np.asarray(paper_lif_rate(jnp.asarray(I / ND["C_m"]), k=k, threshold=ND["V_th"] - ND["E_L"],
                                          v_reset=ND["V_reset"] - ND["E_L"]))
        np.testing.assert_allclose(np.asarray(lif_rate(jnp.asarray(I), tau_ref=0.0)), paper, rtol=1e-12)
    # below rheobase both are zero, and the refractory period caps the rate at 1 / tau_ref
    assert float(lif_rate(0.19)) == 0.0 and float(paper_lif_rate(0.19 / ND["C_m"], k=k, threshold=20.0, v_reset=10.0)) == 0.0
    assert float(lif_rate(1e4)) < 1 / ND["tau_ref"] and float(lif_rate(1e4)) > 0.98 / ND["tau_ref"]


def numpy_same_scheme(net, inputs, V0):
    """The documented scheme, written again as a plain NumPy loop (float64)."""
    W, T, U, b, R, Z = (np.asarray(x, dtype=float) for x in (net.W, net.T, net.U, net.b, net.R, net.Z))
    tau_n, V_th = np.asarray(net.tau_n, float), np.asarray(net.V_th, float)
    N, M = W.shape[0], R.shape[0]
    P = scipy.linalg.expm((Z - np.diag(1 / tau_n)) * net.dt)
    V, ref, s, n = np.array(V0, float), np.zeros(N), np.zeros(N), np.zeros(M)
    Vs, spikes, ns = [], [], []
    for step in range(inputs.shape[0]):
        I = (W + np.tensordot(n, T, 1)) @ s + U @ inputs[step] + b
        V_inf = net.E_L + I / net.g_L
        sp = np.zeros(N)
        offset = np.zeros(N)
        for i in range(N):
            free = min(max(net.dt - ref[i], 0.0), net.dt)
            v0 = net.V_reset if ref[i] > 0 else V[i]
            t_cross = np.inf
            if v0 >= V_th[i]:
                t_cross = 0.0
            elif V_inf[i] > V_th[i]:
                t_cross = net.tau_m * np.log((v0 - V_inf[i]) / (V_th[i] - V_inf[i]))
            if free > 0 and t_cross <= free:
                sp[i] = 1
                offset[i] = net.dt - free + t_cross
                V[i] = net.V_reset
                ref[i] = net.tau_ref - (net.dt - offset[i])
            else:
                V[i] = V_inf[i] + (v0 - V_inf[i]) * np.exp(-free / net.tau_m)
                ref[i] = max(ref[i] - net.dt, 0.0)
        s = s * np.exp(-net.dt / net.tau_syn) + sp * net.Q_syn / net.tau_syn * np.exp(-(net.dt - offset) / net.tau_syn)
        n = P @ n + R @ sp
        Vs.append(V.copy())
        spikes.append(sp)
        ns.append(n.copy())
    return np.array(Vs), np.array(spikes), np.array(ns)


def small_network(seed=0, dt=0.1, N=4, M=2):
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.3, (N, N))
    T = rng.normal(0, 0.5, (M, N, N))
    R = rng.uniform(0, 0.05, (M, N))
    Z = np.array([[-0.01, 0.02], [0.0, 0.005]])[:M, :M]
    b = rng.uniform(0.22, 0.35, N)
    U = rng.uniform(0.05, 0.1, (N, 1))
    return LIFNetwork(W, T, U, b, R, Z, tau_n=np.array([50.0, 80.0])[:M], dt=dt)


def test_network_equals_a_numpy_loop_of_the_same_scheme():
    with jax.enable_x64(True):
        net = small_network()
        steps = 3000
        t = np.arange(steps) * net.dt
        inputs = np.sin(2 * np.pi * t / 60.0)[:, None]
        V0 = np.array([-65.0, -55.0, -60.0, -51.0])
        traj, _ = net.simulate(jnp.asarray(inputs), net.initial_state(V0=V0))
        V, sp, n = numpy_same_scheme(net, inputs, V0)
        assert sp.sum() > 20  # the network fires, so resets, refractoriness and release are exercised
        np.testing.assert_array_equal(np.asarray(traj.spikes), sp)
        np.testing.assert_allclose(np.asarray(traj.V), V, atol=1e-8)
        np.testing.assert_allclose(np.asarray(traj.n), n, atol=1e-10)


def numpy_event_loop(net, drive, t_end, h):
    """An independent reference: forward Euler with a tiny step ``h`` and threshold crossings
    interpolated linearly; each spike adds its kernel and its release at its own time."""
    W, T, U, b, R, Z = (np.asarray(x, dtype=float) for x in (net.W, net.T, net.U, net.b, net.R, net.Z))
    tau_n, V_th = np.asarray(net.tau_n, float), np.asarray(net.V_th, float)
    N, M = W.shape[0], R.shape[0]
    V, ref, s, n = np.full(N, net.E_L), np.zeros(N), np.zeros(N), np.zeros(M)
    spikes = [[] for _ in range(N)]
    t = 0.0
    while t < t_end - 1e-12:
        I = (W + np.tensordot(n, T, 1)) @ s + U @ drive(t) + b
        dV = (-net.g_L * (V - net.E_L) + I) / net.C_m
        V_new = np.where(ref > 0, net.V_reset, V + h * dV)
        s = s - h * s / net.tau_syn
        n = n + h * ((Z - np.diag(1 / tau_n)) @ n)
        ref = np.maximum(ref - h, 0.0)
        for i in np.nonzero((V_new >= V_th) & (ref <= 0))[0]:
            frac = (V_th[i] - V[i]) / (V_new[i] - V[i])
            ts = t + frac * h
            spikes[i].append(ts)
            V_new[i] = net.V_reset
            ref[i] = net.tau_ref - (1 - frac) * h
            s[i] += net.Q_syn / net.tau_syn * np.exp(-(1 - frac) * h / net.tau_syn)
            n += R[:, i]
        V = V_new
        t += h
    return spikes


def test_network_agrees_with_a_fine_step_event_loop():
    net = small_network(seed=1, dt=0.05)
    t_end = 150.0
    steps = int(round(t_end / net.dt))
    drive = lambda t: np.array([np.sin(2 * np.pi * t / 60.0)])  # noqa: E731
    inputs = np.array([drive(i * net.dt) for i in range(steps)])
    traj, _ = net.simulate(jnp.asarray(inputs, jnp.float32), net.initial_state(V0=np.full(4, ND["E_L"])))
    ref = numpy_event_loop(net, drive, t_end, h=0.001)
    times = np.asarray(traj.spike_time)
    for i in range(4):
        ours = times[:, i][np.isfinite(times[:, i])]
        theirs = np.array(ref[i])
        assert ours.size == theirs.size and ours.size >= 2
        # O(dt) scheme: spike times within a few steps' worth of the fine reference
        np.testing.assert_allclose(ours, theirs, atol=0.5)
    # and halving dt brings the first spikes closer (first-order convergence)
    errs = []
    for dt in (0.1, 0.05, 0.025):
        n2 = small_network(seed=1, dt=dt)
        steps = int(round(t_end / dt))
        inp = np.array([drive(i * dt) for i in range(steps)])
        tr, _ = n2.simulate(jnp.asarray(inp, jnp.float32), n2.initial_state(V0=np.full(4, ND["E_L"])))
        st = np.asarray(tr.spike_time)
        errs.append(max(np.max(np.abs(st[:, i][np.isfinite(st[:, i])][:3] - np.array(ref[i][:3]))) for i in range(4)))
    assert errs[2] < errs[0]


def test_batched_simulation_equals_one_at_a_time():
    net = small_network(seed=2)
    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 1, (3, 500, 1)).astype(np.float32)
    V0 = rng.uniform(-70, -51, (3, 4))
    both, _ = net.simulate(jnp.asarray(inputs), net.initial_state((3,), V0=V0))
    for i in range(3):
        one, _ = net.simulate(jnp.asarray(inputs[i]), net.initial_state(V0=V0[i]))
        np.testing.assert_allclose(np.asarray(both.V[i]), np.asarray(one.V), atol=1e-4)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="tau_ref"):
        single(dt=3.0)
    with pytest.raises(ValueError, match="V_reset"):
        single(V_th=-65.0)
    with pytest.raises(ValueError, match="square"):
        LIFNetwork(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="T must"):
        LIFNetwork(np.zeros((2, 2)), T=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="tau_n"):
        LIFNetwork(np.zeros((2, 2)), R=np.zeros((1, 2)), tau_n=-1.0)
    with pytest.raises(ValueError, match="inputs"):
        single().simulate(jnp.zeros((10, 3)))
