"""The HiPPO-LegT cell's memory (``nmrnn.models.hippo``): the continuous transition against the
closed forms of the HiPPO and LMU papers (and hand-computed values), its discretisation against
SciPy, and the memory against its meaning -- it holds the recent input, decodable by shifted
Legendre polynomials.

The whole cell is checked against a float64 NumPy loop (``models_reference.hippo_legt``) by the
parametrised tests of ``test_model_equations.py``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.linalg import expm
from scipy.signal import cont2discrete
from scipy.special import eval_legendre

from nmrnn.models import HiPPOLegT, make_model, simulate
from nmrnn.models.hippo import discretize, legendre_decoder, legt_transition


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def paper_legt(N):
    """HiPPO-LegT in the authors' normalisation (Gu et al. 2020, App. D.1, with the orthonormal
    basis sqrt(2n+1) P_n): A_nk = -sqrt((2n+1)(2k+1)) for n >= k, -(-1)^(n-k) sqrt((2n+1)(2k+1))
    for n < k; B_n = sqrt(2n+1)."""
    A = np.array([[-np.sqrt((2 * n + 1) * (2 * k + 1)) * (1 if n >= k else (-1) ** (n - k)) for k in range(N)]
                  for n in range(N)], dtype=float)
    return A, np.sqrt(2 * np.arange(N) + 1.0)


def paper_lmu(N):
    """LMU (Voelker et al. 2019, eq. 2, theta = 1): A_ij = (2i+1) * (-1 if i < j else (-1)^(i-j+1)),
    B_i = (2i+1) (-1)^i."""
    A = np.array([[(2 * i + 1) * (-1.0 if i < j else (-1.0) ** (i - j + 1)) for j in range(N)] for i in range(N)])
    return A, np.array([(2 * i + 1) * (-1.0) ** i for i in range(N)])


def test_order_three_transitions_by_hand():
    """N = 3, written out entry by entry."""
    s3, s5, s15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)
    A, B = legt_transition(3, "legt")
    np.testing.assert_allclose(A, [[-1, s3, -s5], [-s3, -3, s15], [-s5, -s15, -5]], rtol=1e-15)
    np.testing.assert_allclose(B, [1, s3, s5], rtol=1e-15)
    A, B = legt_transition(3, "lmu")
    np.testing.assert_array_equal(A, [[-1, -1, -1], [3, -3, -3], [-5, 5, -5]])
    np.testing.assert_array_equal(B, [1, -3, 5])


@pytest.mark.parametrize("N", [1, 2, 5, 8, 13])
def test_transitions_match_the_papers_closed_forms(N):
    for kind, paper in (("legt", paper_legt), ("lmu", paper_lmu)):
        A, B = legt_transition(N, kind)
        A_ref, B_ref = paper(N)
        assert A.shape == (N, N) and B.shape == (N,)
        np.testing.assert_allclose(A, A_ref, rtol=1e-14, atol=1e-14, err_msg=kind)
        np.testing.assert_allclose(B, B_ref, rtol=1e-14, atol=1e-14, err_msg=kind)
    # the two conventions are one system: c = S m with S = diag((-1)^n / sqrt(2n+1))
    S = np.diag((-1.0) ** np.arange(N) / np.sqrt(2 * np.arange(N) + 1))
    A_t, B_t = legt_transition(N, "legt")
    A_m, B_m = legt_transition(N, "lmu")
    np.testing.assert_allclose(S @ A_m @ np.linalg.inv(S), A_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S @ B_m, B_t, rtol=1e-12, atol=1e-12)
    # the memory is stable: every eigenvalue of A has a negative real part
    assert np.max(np.linalg.eigvals(A_t).real) < 0


@pytest.mark.parametrize("method", ["bilinear", "zoh"])
@pytest.mark.parametrize("N,step", [(4, 0.01), (9, 0.3), (6, 2.0)])
def test_discretisation_matches_scipy(method, N, step, x64):
    A, B = legt_transition(N, "legt")
    A_d, B_d = discretize(A, B, step, method)
    A_ref, B_ref, *_ = cont2discrete((A, B[:, None], np.eye(N), np.zeros((N, 1))), dt=step, method=method)
    np.testing.assert_allclose(np.asarray(A_d), A_ref, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(B_d), B_ref[:, 0], rtol=1e-11, atol=1e-13)
    if method == "zoh":  # and against the matrix exponential directly
        E = expm(step * A)
        np.testing.assert_allclose(np.asarray(A_d), E, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(np.asarray(B_d), np.linalg.solve(A, (E - np.eye(N)) @ B), rtol=1e-10, atol=1e-13)
    else:  # the trapezoidal rule, written out
        M = np.linalg.inv(np.eye(N) - step / 2 * A)
        np.testing.assert_allclose(np.asarray(A_d), M @ (np.eye(N) + step / 2 * A), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(np.asarray(B_d), M @ (step * B), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("options", [dict(), dict(theta=30.0, dt=2.0, discretization="zoh", transition="lmu")])
def test_model_memory_is_the_window_theta_system_discretised_with_step_dt(options, x64):
    """``materialize`` stores (A_d, B_d) of (A / theta, B / theta) over dt; they are constants
    (not trained, not counted), and changing theta changes them without recompiling."""
    from nmrnn.models import param_count, parameter_paths

    model = make_model("hippo_legt", n_in=2, n_out=1, n_hidden=3, memory_order=7, key=jr.PRNGKey(0), **options)
    model = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if eqx.is_inexact_array(a) else a, model)
    theta, dt = options.get("theta", 100.0), options.get("dt", 1.0)
    A, B = legt_transition(7, options.get("transition", "legt"))
    A_ref, B_ref, *_ = cont2discrete((A / theta, B[:, None] / theta, np.eye(7), np.zeros((7, 1))), dt=dt,
                                     method=options.get("discretization", "bilinear"))
    core = model.materialize()
    np.testing.assert_allclose(np.asarray(core.A_d), A_ref, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(core.B_d), B_ref[:, 0], rtol=1e-11, atol=1e-13)
    assert not any(p.split(".")[0] in ("theta", "A_d", "B_d") for p in parameter_paths(core))
    assert param_count(core) == param_count(model)
    other = eqx.tree_at(lambda m: m.theta, model, jnp.asarray(2.0 * theta))
    assert jax.tree.structure(other) == jax.tree.structure(model)
    assert not np.allclose(np.asarray(other.materialize().A_d), np.asarray(core.A_d))


def _memory_only(transition, discretization, N, theta):
    """A cell whose memory input is the first input channel, f_t = u_t[0] (W_fh = 0, b_f = 0)."""
    model = make_model("hippo_legt", n_in=1, n_out=1, n_hidden=2, memory_order=N, theta=theta,
                       transition=transition, discretization=discretization, key=jr.PRNGKey(0))
    model = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if eqx.is_inexact_array(a) else a, model)
    model = eqx.tree_at(lambda m: (m.W_fu, m.W_fh, m.b_f), model,
                        (jnp.ones((1, 1)), jnp.zeros((1, 2)), jnp.zeros(1)))
    return model


@pytest.mark.parametrize("transition", ["legt", "lmu"])
@pytest.mark.parametrize("discretization", ["bilinear", "zoh"])
def test_memory_reconstructs_the_delayed_input_over_the_window(transition, discretization, x64):
    """After a smooth input f, the memory c_T decodes f over the last theta steps: with the
    normalised shifted Legendre polynomials (LegT: f(t - s) ~ sum_n c_n sqrt(2n+1) P_n(1 - 2s/theta);
    LMU: sum_n m_n P_n(2s/theta - 1)). A sampled input counts as held over its step, so delay s is
    measured from half a step before the last sample. Inside the window (away from its two ends,
    where a truncated Legendre series rings) the error is small; decoding with the other
    convention's polynomials fails (the sign convention is checked, not assumed)."""
    N, theta, T = 24, 80.0, 300
    t = np.arange(T)
    f = np.sin(2 * np.pi * t / 60) + 0.5 * np.cos(2 * np.pi * t / 37 + 1)
    model = _memory_only(transition, discretization, N, theta)
    c = np.asarray(simulate(model, jnp.asarray(f[:, None])).states.c[-1])
    s = np.arange(8, 73)  # delays inside the window, in steps
    n = np.arange(N)[None, :]
    legt = np.sqrt(2 * n + 1) * eval_legendre(n, 1 - 2 * s[:, None] / theta)
    lmu = eval_legendre(n, 2 * s[:, None] / theta - 1)
    right, wrong = (legt, lmu) if transition == "legt" else (lmu, legt)
    target = np.interp(T - 1 - s + 0.5, t, f)
    err = np.abs(right @ c - target)
    assert err.max() < 0.03, err.max()
    assert np.abs(wrong @ c - target).max() > 1.0
    # the library's decoder is the same matrix
    np.testing.assert_allclose(legendre_decoder(N, s, theta, transition), right, rtol=1e-12, atol=1e-12)
    # and a shorter memory holds less detail: order 6 misses the 37-step component
    short = _memory_only(transition, discretization, 6, theta)
    c6 = np.asarray(simulate(short, jnp.asarray(f[:, None])).states.c[-1])
    assert np.abs(legendre_decoder(6, s, theta, transition) @ c6 - target).max() > 5 * err.max()


def test_memory_channels_are_independent_copies_of_the_same_system(x64):
    """With memory_size = 2 each channel runs (A_d, B_d) on its own input f_t[m]; the state is
    channel-major: c[m K + k]."""
    model = make_model("hippo_legt", n_in=2, n_out=1, n_hidden=3, memory_order=4, memory_size=2, theta=5.0,
                       key=jr.PRNGKey(1))
    model = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if eqx.is_inexact_array(a) else a, model)
    model = eqx.tree_at(lambda m: (m.W_fu, m.W_fh, m.b_f), model, (jnp.eye(2), jnp.zeros((2, 3)), jnp.zeros(2)))
    u = np.random.default_rng(0).normal(size=(15, 2))
    c = np.asarray(simulate(model, jnp.asarray(u)).states.c)
    A_d, B_d = (np.asarray(a) for a in model.materialize().transition_matrices())
    for m in range(2):
        mem = np.zeros(4)
        for t in range(15):
            mem = A_d @ mem + B_d * u[t, m]
            np.testing.assert_allclose(c[t, 4 * m : 4 * m + 4], mem, rtol=1e-12, atol=1e-14)


def test_class_is_registered_and_lists_its_options():
    from nmrnn.models import MODELS, model_options

    assert MODELS["hippo_legt"] is HiPPOLegT
    opts = model_options("hippo_legt")
    assert opts["transition"] == "legt" and opts["discretization"] == "bilinear"
    assert opts["theta"] == 100.0 and opts["memory_order"] is None and opts["memory_size"] == 1
