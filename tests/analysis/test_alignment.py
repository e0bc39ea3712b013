"""Gradient alignment (paper 000, supplement section 4): the statistic against a brute-force
float64 NumPy computation (the e-nmRNN by the models' NumPy reference loop, the surrogate's
gradient by central finite differences of a NumPy loop of the frozen network), planted cases
with a known cosine, the null's z-scores, the shuffle control and the refused inputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

from nmrnn.analysis import alignment as alignment_module
from nmrnn.analysis import (
    alignment_statistics,
    alignment_vectors,
    gradient_alignment,
    shuffle_entries,
)
from nmrnn.models import ENMRNN, make_model, trainable_filter
from nmrnn.tasks.base import Batch


def _reference_module():
    """The models' NumPy reference loops (tests/models/models_reference.py)."""
    if "models_reference" in sys.modules:
        return sys.modules["models_reference"]
    path = Path(__file__).parents[1] / "models" / "models_reference.py"
    spec = importlib.util.spec_from_file_location("models_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["models_reference"] = module
    spec.loader.exec_module(module)
    return module


ref = _reference_module()
N, M, P, O = 4, 2, 3, 2


def perturbed_enmrnn(seed: int, **options) -> ENMRNN:
    """A float64 e-nmRNN (inside ``jax.enable_x64``) with every trainable leaf moved off its
    initial value (biases, excitabilities, thresholds), so every term of the equations counts."""
    model = ENMRNN(P, N, O, n_nm=M, key=jr.PRNGKey(seed), **options)
    rng = np.random.default_rng(100 + seed)
    scale = {"T": 0.8, "T_left": 0.6, "T_right": 0.6, "R": 1.5, "e": 0.2}

    def move(path, leaf, trainable):
        if not trainable:
            return leaf
        name = jax.tree_util.keystr(path).strip(".")
        return jnp.asarray(np.asarray(leaf) + scale.get(name, 0.3) * rng.normal(size=leaf.shape), jnp.float64)

    spec = trainable_filter(model)
    return jax.tree_util.tree_map_with_path(move, model, spec)


def random_batch(seed: int, B: int, T: int) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        jnp.asarray(1.5 * rng.normal(size=(B, T, P))),
        jnp.asarray(rng.normal(size=(B, T, O))),
        jnp.asarray((rng.random((B, T, O)) > 0.25).astype(np.float64)),
    )


# ----------------------------------------------------------------------------------------------
# the brute-force NumPy reference
# ----------------------------------------------------------------------------------------------


def _parts(model, options):
    """Raw parameters as float64 NumPy, the effective W (Dale signs) and the full T."""
    o = {**ref.ENMRNN_DEFAULTS, **options}
    f = {k: None if getattr(model, k) is None else np.asarray(getattr(model, k), np.float64)
         for k in ("W", "T", "T_left", "T_right", "U", "b", "D", "d", "E", "e")}
    W = f["W"]
    if o["dale"]:
        W = np.abs(W) * ref.dale_signs(W.shape[0], o["exc_fraction"])[None, :]
    T = f["T"] if f["T"] is not None else np.stack([f["T_left"][k] @ f["T_right"][k].T for k in range(M)])
    if o["activation"] == "relutanh":
        def phi(x):
            return f["E"] * np.maximum(np.tanh(x) + f["e"], 0.0)
    else:
        phi = ref.ACT[o["activation"]]
    return o, f, W, T, phi


def surrogate_loss_np(f, phi, a_r, w_eff, r0, u, y, m):
    """The frozen network over one window: r0 (B, N), u (B, L, P), y/m (B, L, O)."""
    r = r0.copy()
    err = 0.0
    for t in range(u.shape[1]):
        r = r + a_r * (-r + phi(r @ w_eff.T + u[:, t] @ f["U"].T + f["b"]))
        err += np.sum(m[:, t] * (r @ f["D"].T + f["d"] - y[:, t]) ** 2)
    return err / max(np.sum(m), 1e-12)


def fd_grad(fun, w, h=1e-6):
    g = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        e = np.zeros_like(w)
        e[idx] = h
        g[idx] = (fun(w + e) - fun(w - e)) / (2 * h)
    return g


def reference_alignment(model, options, batch, window, average, nm_rate, acting_shift=0):
    """Everything computed in float64 NumPy from the raw parameters. ``acting_shift=1`` averages
    the states after each step instead of those acting on it (a wrong convention, for the
    negative control)."""
    o, f, W, T, phi = _parts(model, options)
    u, y, m = (np.asarray(a, np.float64) for a in (batch.inputs, batch.targets, batch.mask))
    B, n_steps = u.shape[:2]
    _, states = ref.reference_simulate("enmrnn", model, options, u)
    r_all = np.concatenate([np.zeros((B, 1, N)), states["r"]], axis=1)  # index t: r_{t-1}
    n_all = np.concatenate([np.zeros((B, 1, M)), states["n"]], axis=1)
    a_r, dt = o["dt"] / o["tau_r"], o["dt"]
    K = n_steps // window
    out = {"descent": [], "direction": [], "nbar": [], "rate": []}
    for w in range(K):
        s = w * window
        acting = n_all[:, s + acting_shift : s + acting_shift + window]  # (B, L, M)
        span = n_all[:, s : s + window + 1]  # (B, L+1, M)
        if nm_rate == "net":
            rate = (span[:, -1] - span[:, 0]) / (window * dt)
        else:
            times = dt * np.arange(window + 1)
            rate = np.array([[np.polyfit(times, span[b, :, k], 1)[0] for k in range(M)] for b in range(B)])
        groups = [list(range(B))] if average == "batch" else [[b] for b in range(B)]
        for g in groups:
            nbar = acting[g].mean(axis=(0, 1))
            rt = rate[g].mean(axis=0)
            w_eff = W + np.einsum("k,kij->ij", nbar, T)
            sl = slice(s, s + window)

            def loss(wm, g=g, sl=sl, s=s):
                return surrogate_loss_np(f, phi, a_r, wm, r_all[g, s], u[g, sl], y[g, sl], m[g, sl])

            out["descent"].append(-fd_grad(loss, w_eff))
            out["direction"].append(np.einsum("k,kij->ij", rt, T))
            out["nbar"].append(nbar)
            out["rate"].append(rt)
    shape = (K,) if average == "batch" else (K, B)
    res = {k: np.stack(v).reshape(*shape, *np.shape(v[0])) for k, v in out.items()}
    if average == "trial":  # the reference loops windows outside trials: (K, B) -> (B, K)
        res = {k: np.swapaxes(v, 0, 1) for k, v in res.items()}
    a, b = res["descent"], res["direction"]
    na, nb = np.linalg.norm(a, axis=(-2, -1)), np.linalg.norm(b, axis=(-2, -1))
    res["cosine"] = np.sum(a * b, axis=(-2, -1)) / (na * nb)
    res["descent_norm"], res["nm_norm"] = na, nb
    return res


CASES = [
    pytest.param(dict(tau_r=2.0, tau_n=3.0), "batch", "net", id="relutanh-batch-net"),
    pytest.param(dict(tau_r=2.0, tau_n=3.0), "trial", "slope", id="relutanh-trial-slope"),
    pytest.param(dict(tau_r=3.0, tau_n=2.0, dt=0.5, t_rank=2, dale=True), "batch", "slope", id="factorised-dale-dt-batch-slope"),
    pytest.param(dict(tau_r=2.0, tau_n=4.0, activation="tanh", nm_activation="tanh"), "trial", "net", id="tanh-trial-net"),
]


@pytest.mark.parametrize(("options", "average", "nm_rate"), CASES)
def test_statistic_matches_brute_force_numpy(options, average, nm_rate):
    """N = 4, M = 2, two windows of 3 steps in trials of 7 (the last step in no window)."""
    with jax.enable_x64(True):
        model = perturbed_enmrnn(0, **options)
        batch = random_batch(1, B=2, T=7)
        vec = alignment_vectors(model, batch, window=3, average=average, nm_rate=nm_rate)
        stat = alignment_statistics(vec.descent, vec.nm_direction)
        want = reference_alignment(model, options, batch, 3, average, nm_rate)
    shape = (2,) if average == "batch" else (2, 2)
    assert stat.cosine.shape == shape
    np.testing.assert_allclose(np.asarray(vec.nbar), want["nbar"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(vec.nm_rate), want["rate"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(vec.nm_direction), want["direction"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(vec.descent), want["descent"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(stat.cosine), want["cosine"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(stat.descent_norm), want["descent_norm"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(stat.nm_norm), want["nm_norm"], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(stat.null_sd), np.full(shape, 1 / N), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(stat.z), want["cosine"] * N, rtol=1e-6, atol=1e-8)
    # the reference is not flat: real gradients and NM moves, different in every window
    assert np.all(want["descent_norm"] > 1e-4) and np.all(want["nm_norm"] > 1e-4)
    assert np.all(np.abs(np.diff(want["cosine"].reshape(-1))) > 1e-4)


def test_brute_force_check_can_fail():
    """Negative control: averaging the states after each step (n_s .. n_{s+L-1}) instead of the
    ones acting on it (n_{s-1} .. n_{s+L-2}) gives other numbers, which the tolerances above
    would refuse."""
    options = dict(tau_r=2.0, tau_n=3.0)
    with jax.enable_x64(True):
        model = perturbed_enmrnn(0, **options)
        batch = random_batch(1, B=2, T=7)
        vec = alignment_vectors(model, batch, window=3)
        wrong = reference_alignment(model, options, batch, 3, "batch", "net", acting_shift=1)
    assert np.max(np.abs(np.asarray(vec.nbar) - wrong["nbar"])) > 1e-3
    assert np.max(np.abs(np.asarray(vec.descent) - wrong["descent"])) > 1e-4


def test_trial_average_is_the_batch_average_of_one_trial():
    with jax.enable_x64(True):
        model = perturbed_enmrnn(2)
        batch = random_batch(3, B=3, T=8)
        per_trial = gradient_alignment(model, batch, window=4, average="trial")
        for b in range(3):
            one = gradient_alignment(model, batch.take(slice(b, b + 1)), window=4, average="batch")
            np.testing.assert_allclose(np.asarray(per_trial.cosine[b]), np.asarray(one.cosine), rtol=1e-10)
        batched = gradient_alignment(model, batch, window=4, average="batch")
    assert not np.allclose(np.asarray(batched.cosine), np.asarray(per_trial.cosine).mean(0))


def test_window_equal_to_the_trial_and_tuple_batches():
    with jax.enable_x64(True):
        model = perturbed_enmrnn(4)
        batch = random_batch(5, B=2, T=5)
        a = gradient_alignment(model, batch, window=5)
        b = gradient_alignment(model, (batch.inputs, batch.targets, batch.mask), window=5)
    assert a.cosine.shape == (1,)
    np.testing.assert_array_equal(np.asarray(a.cosine), np.asarray(b.cosine))


# ----------------------------------------------------------------------------------------------
# planted cases: T built so that the NM direction is a chosen matrix, W_eff unchanged
# ----------------------------------------------------------------------------------------------


def _planted_base():
    """An e-nmRNN whose concentrations run on their own (R = 0: no release), from distinct
    initial values (learned initial state), so that nbar and dn/dt are fixed whatever T is;
    with T = 0 its surrogate is the plain network W."""
    model = perturbed_enmrnn(6, tau_r=2.0, tau_n=3.0, learn_init=True)
    state0 = model.state0._replace(r=jnp.asarray([0.2, -0.1, 0.4, 0.3]), n=jnp.asarray([0.9, 0.1]))
    return eqx.tree_at(lambda m: (m.R, m.T, m.state0), model,
                       (jnp.zeros_like(model.R), jnp.zeros_like(model.T), state0))


def _plant(model, batch, target):
    """T with sum_k nbar_k T_k = 0 (W_eff = W) and sum_k (dn_k/dt) T_k = target."""
    vec = alignment_vectors(model, batch, window=batch.inputs.shape[1])
    A = np.stack([np.asarray(vec.nbar[0]), np.asarray(vec.nm_rate[0])])  # (2, M)
    assert abs(np.linalg.det(A)) > 1e-3  # nbar and dn/dt are not parallel
    rhs = np.stack([np.zeros((N, N)), np.asarray(target)])
    T = np.linalg.solve(A, rhs.reshape(2, -1)).reshape(M, N, N)
    return eqx.tree_at(lambda m: m.T, model, jnp.asarray(T)), vec


def test_planted_aligned_antialigned_and_orthogonal_directions():
    with jax.enable_x64(True):
        base = _planted_base()
        batch = random_batch(7, B=3, T=6)
        g = alignment_vectors(base, batch, window=6).descent[0]  # -grad with W_eff = W
        rng = np.random.default_rng(8)
        x = rng.normal(size=(N, N))
        ortho = x - np.sum(x * np.asarray(g)) / np.sum(np.asarray(g) ** 2) * np.asarray(g)
        for target, want in ((2.5 * g, 1.0), (-0.7 * g, -1.0), (jnp.asarray(ortho), 0.0)):
            model, _ = _plant(base, batch, target)
            vec = alignment_vectors(model, batch, window=6)
            stat = alignment_statistics(vec.descent, vec.nm_direction)
            np.testing.assert_allclose(np.asarray(vec.descent[0]), np.asarray(g), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(np.asarray(vec.nm_direction[0]), np.asarray(target), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(float(stat.cosine[0]), want, atol=1e-9)
            np.testing.assert_allclose(float(stat.z[0]), want * N, atol=1e-8)
        # a random T (same nbar, dn/dt) is not aligned: the planted cosines come from T
        model = eqx.tree_at(lambda m: m.T, base, jnp.asarray(rng.normal(size=(M, N, N))))
        assert abs(float(gradient_alignment(model, batch, window=6).cosine[0])) < 0.9


# ----------------------------------------------------------------------------------------------
# the null and the shuffle control
# ----------------------------------------------------------------------------------------------


def test_null_z_scores_of_random_directions_are_standard_normal():
    rng = np.random.default_rng(9)
    n, size = 4000, 24  # D = 576
    a = jnp.asarray(rng.normal(size=(n, size, size)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(n, size, size)), jnp.float32)
    z = np.asarray(alignment_statistics(a, b).z, np.float64)
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.std() - 1.0) < 0.05
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # and a directed pair is far from it (the statistic can tell)
    z_dir = np.asarray(alignment_statistics(a, a + 3.0 * b).z)
    assert np.all(z_dir > 3)


def test_shuffle_control_is_a_permutation_and_follows_the_null():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(16, 16))
    x = jnp.asarray(x - x.mean(), jnp.float32)  # centred: the permutation null has mean 0 exactly
    stack = jnp.broadcast_to(x, (3000, 16, 16))
    shuffled = shuffle_entries(stack, jr.PRNGKey(0))
    np.testing.assert_array_equal(np.sort(np.asarray(shuffled[7]).ravel()), np.sort(np.asarray(x).ravel()))
    assert not np.array_equal(np.asarray(shuffled[0]), np.asarray(shuffled[1]))  # one permutation each
    z = np.asarray(alignment_statistics(stack, shuffled).z, np.float64)  # x against its own shuffles
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1.0) < 0.06
    # entries sharing a mean survive any shuffle: the control then departs from the null
    y = stack + 1.0
    z_mean = np.asarray(alignment_statistics(y, shuffle_entries(y, jr.PRNGKey(1))).z)
    assert np.median(z_mean) > 3


def test_shuffle_control_of_an_enmrnn_stays_near_the_null():
    model = ENMRNN(P, 32, O, n_nm=M, tau_r=2.0, tau_n=3.0, key=jr.PRNGKey(11))
    batch = Batch(jr.normal(jr.PRNGKey(12), (4, 40, P)), jr.normal(jr.PRNGKey(13), (4, 40, O)), jnp.ones((4, 40, O)))
    vec = alignment_vectors(model, batch, window=10)
    many = lambda a: jnp.broadcast_to(a, (200, *a.shape))  # noqa: E731
    z = np.asarray(alignment_statistics(many(vec.descent), shuffle_entries(many(vec.nm_direction), jr.PRNGKey(14))).z)
    assert z.shape == (200, 4)
    assert abs(z.mean()) < 0.5 and 0.7 < z.std() < 1.3
    control = gradient_alignment(model, batch, window=10, shuffle_key=jr.PRNGKey(15))
    np.testing.assert_allclose(
        np.asarray(control.cosine),
        np.asarray(alignment_statistics(vec.descent, shuffle_entries(vec.nm_direction, jr.PRNGKey(15))).cosine),
        rtol=1e-6,
    )


def test_zero_direction_gives_nan_not_a_number():
    a = jnp.ones((2, 3, 3))
    b = jnp.zeros((2, 3, 3)).at[1].set(1.0)
    cos = np.asarray(alignment_statistics(a, b).cosine)
    assert np.isnan(cos[0]) and cos[1] == pytest.approx(1.0)


def test_second_call_with_other_weights_does_not_retrace(monkeypatch):
    traces = []
    original = alignment_module._surrogate_loss

    def counting(*args):
        traces.append(1)
        return original(*args)

    monkeypatch.setattr(alignment_module, "_surrogate_loss", counting)
    batch = Batch(jnp.ones((2, 9, P)), jnp.zeros((2, 9, O)), jnp.ones((2, 9, O)))
    gradient_alignment(ENMRNN(P, 5, O, n_nm=M, key=jr.PRNGKey(0)), batch, window=3)
    first = len(traces)
    gradient_alignment(ENMRNN(P, 5, O, n_nm=M, key=jr.PRNGKey(1)), batch, window=3)
    assert first > 0 and len(traces) == first


# ----------------------------------------------------------------------------------------------
# refused inputs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=0), "window must be a whole number of steps >= 1"),
        (dict(window=-3), "window must be a whole number of steps >= 1"),
        (dict(window=2.5), "window must be a whole number of steps >= 1"),
        (dict(window=True), "window must be a whole number of steps >= 1"),
        (dict(window=9), "longer than the trials (8 steps)"),
        (dict(window=4, average="window"), "average"),
        (dict(window=4, nm_rate="instant"), "nm_rate"),
    ],
)
def test_bad_options_are_refused_in_one_line(kwargs, message):
    model = ENMRNN(P, 5, O, n_nm=M, key=jr.PRNGKey(0))
    batch = Batch(jnp.ones((2, 8, P)), jnp.zeros((2, 8, O)), jnp.ones((2, 8, O)))
    with pytest.raises(ValueError) as err:
        gradient_alignment(model, batch, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_models_without_neuromodulators_and_bad_batches_are_refused():
    batch = Batch(jnp.ones((2, 8, P)), jnp.zeros((2, 8, O)), jnp.ones((2, 8, O)))
    for name, opts in (("vanilla", {}), ("nmrnn", dict(n_nm=2, rank=1))):
        other = make_model(name, n_in=P, n_out=O, n_hidden=5, key=jr.PRNGKey(0), **opts)
        with pytest.raises(ValueError, match="needs an e-nmRNN") as err:
            gradient_alignment(other, batch, window=4)
        assert "\n" not in str(err.value)
    model = ENMRNN(P, 5, O, n_nm=M, key=jr.PRNGKey(0))
    bad = [
        (jnp.ones((8, P)), batch.targets, batch.mask),
        (jnp.ones((2, 8, P + 1)), batch.targets, batch.mask),
        (batch.inputs, jnp.zeros((2, 8, O + 1)), batch.mask),
        (batch.inputs, batch.targets, jnp.ones((2, 7, O))),
    ]
    for b in bad:
        with pytest.raises(ValueError, match="must have shape") as err:
            gradient_alignment(model, b, window=4)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="batch must be a Batch"):
        gradient_alignment(model, jnp.ones((2, 8, P)), window=4)
