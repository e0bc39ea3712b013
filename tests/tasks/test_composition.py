import math
from itertools import combinations
from typing import NamedTuple

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import Composition, decode_coefficients, make_task, variance_explained
from nmrnn.tasks.composition import state_features

SMALL = dict(n_basis=3, n_in=2, n_out=1, input_steps=10, output_steps=8, n_harmonics=4, n_train=20, n_test=6)


def reference_basis(seed, stream, k, n_steps, n_channels, n_harmonics):
    """The documented formula, written as a plain loop."""
    rng = np.random.Generator(np.random.PCG64([seed, stream]))
    c = rng.standard_normal((k, n_channels, n_harmonics, 2))
    f = np.zeros((k, n_steps, n_channels))
    for i in range(k):
        for p in range(n_channels):
            for t in range(n_steps):
                for j in range(1, n_harmonics + 1):
                    w = 2 * math.pi * j * t / n_steps
                    f[i, t, p] += (c[i, p, j - 1, 0] * math.cos(w) + c[i, p, j - 1, 1] * math.sin(w)) / j
        f[i] /= math.sqrt(np.mean(f[i] ** 2))
    return f


def test_basis_follows_the_documented_formula():
    task = Composition(basis_seed=5, **SMALL)
    mu = reference_basis(5, 0, 3, 10, 2, 4)
    eta = reference_basis(5, 1, 3, 8, 1, 4)
    assert np.allclose(np.asarray(task.input_basis), mu, atol=1e-5)
    assert np.allclose(np.asarray(task.output_basis), eta, atol=1e-5)
    # unit RMS per function; same seed -> same basis, other seed -> other basis
    assert np.allclose(np.sqrt(np.mean(np.asarray(task.input_basis) ** 2, axis=(1, 2))), 1.0, atol=1e-5)
    assert np.array_equal(Composition(basis_seed=5, **SMALL).input_basis, task.input_basis)
    assert not np.allclose(Composition(basis_seed=6, **SMALL).input_basis, task.input_basis)


def test_trial_is_the_documented_basis_sum():
    task = Composition(**SMALL)
    a = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 3.0]])
    b = task.trials(a)
    mu, eta = np.asarray(task.input_basis), np.asarray(task.output_basis)
    assert task.n_steps == 18 and task.output_start == 10
    x, y, m = np.asarray(b.inputs), np.asarray(b.targets), np.asarray(b.mask)
    for i in range(2):
        u_ref = sum(a[i, k] * mu[k] for k in range(3))
        y_ref = sum(a[i, k] * eta[k] for k in range(3))
        assert np.allclose(x[i, :10], u_ref, atol=1e-5) and np.all(x[i, 10:] == 0)
        assert np.allclose(y[i, 10:], y_ref, atol=1e-5) and np.all(y[i, :10] == 0)
    assert np.all(m[:, :10] == 0) and np.all(m[:, 10:] == 1)
    assert np.allclose(np.asarray(b.info["coefficients"]), a)


def test_simultaneous_layout_as_written_in_the_paper():
    task = Composition(**{**SMALL, "output_steps": 10}, output_start=0)
    b = task.trials([[1.0, 0.0, 0.0]])
    assert task.n_steps == 10
    assert np.allclose(np.asarray(b.targets[0]), np.asarray(task.output_basis[0]), atol=1e-6)
    assert np.all(np.asarray(b.mask) == 1)


def test_variance_explained_closed_forms():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 6, 2)) + np.array([1.0, -3.0])
    m = np.ones_like(t)
    m[:, :2] = 0  # scored from step 2 on
    assert float(variance_explained(t, t, m)) == pytest.approx(1.0)
    sel = m > 0
    # SST with per-channel means over the scored entries, written out
    sst = sum(np.sum((t[..., c][sel[..., c]] - t[..., c][sel[..., c]].mean()) ** 2) for c in range(2))
    # constant offset c: SSE = c^2 * (number of scored entries)
    ve = float(variance_explained(t + 0.3, t, m))
    assert ve == pytest.approx(1 - 0.09 * sel.sum() / sst, rel=1e-5)
    # predicting each channel's mean explains nothing
    means = np.array([t[..., c][sel[..., c]].mean() for c in range(2)])
    assert float(variance_explained(np.broadcast_to(means, t.shape), t, m)) == pytest.approx(0.0, abs=1e-6)
    # unscored entries do not matter
    junk = t.copy()
    junk[:, :2] = 100.0
    assert float(variance_explained(junk, t, m)) == pytest.approx(1.0)


def test_task_metric_uses_the_output_window():
    task = Composition(**SMALL)
    b = task.test_batch()
    out = np.asarray(b.targets).copy()
    out[:, 10:] += 0.2
    sel = np.asarray(b.mask) > 0
    tw = np.asarray(b.targets)[sel]
    ref = 1 - 0.04 * tw.size / np.sum((tw - tw.mean()) ** 2)
    metrics = task.evaluate(out, b)
    assert float(metrics["variance_explained"]) == pytest.approx(ref, rel=1e-4)
    assert float(metrics["loss"]) == pytest.approx(0.04, rel=1e-4)
    assert float(task.evaluate(b.targets, b)["variance_explained"]) == pytest.approx(1.0)


def test_dense_sets_are_disjoint_and_sampling_uses_train_only():
    task = Composition(**SMALL)
    tr, te = np.asarray(task.train_coefficients), np.asarray(task.test_coefficients)
    assert tr.shape == (20, 3) and te.shape == (6, 3)
    assert tr.min() >= -1 and tr.max() <= 1
    assert not {tuple(r) for r in tr} & {tuple(r) for r in te}
    b1, b2, b3 = (task.sample(jr.PRNGKey(k), 16) for k in (0, 0, 1))
    rows = {tuple(r) for r in tr}
    assert all(tuple(r) in rows for r in np.asarray(b1.info["coefficients"]))
    assert np.array_equal(b1.inputs, b2.inputs) and not np.array_equal(b1.inputs, b3.inputs)
    assert np.allclose(b1.inputs, task.trials(np.asarray(b1.info["coefficients"])).inputs, atol=1e-6)
    sets = task.evaluation_batches()
    assert np.array_equal(sets["test"].info["coefficients"], task.test_coefficients)
    assert sets["train"].batch_size == 20 and task.fixed_batch().batch_size == 20
    # another split seed gives other sets over the same basis
    other = Composition(**SMALL, split_seed=9)
    assert np.array_equal(other.input_basis, task.input_basis)
    assert not np.allclose(other.train_coefficients, task.train_coefficients)


def test_sparse_sets_hold_out_whole_supports():
    task = Composition(n_basis=5, scheme="sparse", n_active=2, n_train=200, n_test=50, input_steps=20, n_harmonics=5)
    tr, te = np.asarray(task.train_coefficients), np.asarray(task.test_coefficients)
    sup = lambda a: {tuple(np.flatnonzero(r)) for r in a}  # noqa: E731
    assert np.all((tr != 0).sum(axis=1) == 2) and np.all((te != 0).sum(axis=1) == 2)
    assert not sup(tr) & sup(te)
    assert len(sup(te)) <= round(0.25 * 10) and sup(tr) | sup(te) <= set(combinations(range(5), 2))
    nz = np.abs(np.concatenate([tr[tr != 0], te[te != 0]]))
    assert nz.min() >= 0.5 and nz.max() <= 1.0


def test_task_jits_with_its_basis_as_an_argument():
    task = make_task("composition", n_basis=4, n_train=8, n_test=4)
    eager = task.sample(jr.PRNGKey(2), 16)
    jitted = eqx.filter_jit(lambda t, k: t.sample(k, 16))(task, jr.PRNGKey(2))
    assert np.allclose(eager.targets, jitted.targets, atol=1e-5)
    assert task.default_batch_size == 16 and (task.n_in, task.n_out) == (1, 1)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"n_basis": 0}, r"n_basis \(K\) must be an integer in 1..20"),
        ({"n_basis": 21}, r"n_basis \(K\) must be an integer in 1..20"),
        ({"n_basis": 2.5}, "n_basis"),
        ({"n_basis": True}, "n_basis"),
        ({"n_basis": 20, "n_harmonics": 9}, "not .*linearly independent"),
        ({"n_basis": 6, "input_steps": 4}, "not .*linearly independent"),
        ({"n_basis": 3, "scheme": "sparse", "n_active": 4}, "exceeds the number of basis"),
        ({"n_basis": 1, "scheme": "sparse", "n_active": 1}, "only 1 possible support"),
        ({"scheme": "grid"}, "valid choices"),
        ({"n_train": 0}, "n_train"),
        ({"n_test": -1}, "n_test"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"output_start": -1}, "output_start"),
        ({"input_steps": 0}, "input_steps"),
        ({"scheme": "explicit"}, "needs both"),
        ({"train_coefficients": [[1.0] * 8]}, "only used with scheme='explicit'"),
    ],
)
def test_bad_configuration_is_refused(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Composition(**kwargs)


def test_explicit_sets_checked():
    ok = Composition(n_basis=2, scheme="explicit", train_coefficients=[[1, 0], [0, 1]], test_coefficients=[[1, 1]])
    assert ok.train_coefficients.shape == (2, 2)
    with pytest.raises(ValueError, match="overlap"):
        Composition(n_basis=2, scheme="explicit", train_coefficients=[[1, 0], [0, 1]], test_coefficients=[[0, 1]])
    with pytest.raises(ValueError, match="overlap"):  # -0.0 and 0.0 are the same composition
        Composition(n_basis=2, scheme="explicit", train_coefficients=[[1, 0.0]], test_coefficients=[[1, -0.0]])
    with pytest.raises(ValueError, match="empty"):
        Composition(n_basis=2, scheme="explicit", train_coefficients=np.zeros((0, 2)), test_coefficients=[[1, 1]])
    with pytest.raises(ValueError, match=r"shape \(n, K=2\)"):
        Composition(n_basis=2, scheme="explicit", train_coefficients=[[1, 0, 0]], test_coefficients=[[1, 1]])
    with pytest.raises(ValueError, match=r"shape \(n, K=2\)"):
        ok.trials([1.0, 2.0])


class FakeStates(NamedTuple):
    r: np.ndarray
    n: np.ndarray


class FakeTrajectory(NamedTuple):
    outputs: np.ndarray
    states: FakeStates


def test_linear_decoder_recovers_linearly_encoded_coefficients():
    rng = np.random.default_rng(1)
    a_tr, a_te = rng.uniform(-1, 1, (80, 3)), rng.uniform(-1, 1, (40, 3))
    mix = rng.normal(size=(3, 12))

    def states(a):
        s = rng.normal(size=(len(a), 5, 12))  # noise at early steps
        s[:, -1] = a @ mix + 0.5 + 0.01 * rng.normal(size=(len(a), 12))
        return s

    s_tr, s_te = states(a_tr), states(a_te)
    res = decode_coefficients(s_tr, a_tr, s_te, a_te, alpha=1e-3)
    assert res.r2_train > 0.99 and res.r2_test > 0.99
    # the same numbers as the closed-form ridge solution (centred, unpenalised intercept)
    x = s_tr[:, -1]
    xm, am = x.mean(0), a_tr.mean(0)
    w = np.linalg.solve((x - xm).T @ (x - xm) + 1e-3 * np.eye(12), (x - xm).T @ (a_tr - am))
    assert np.allclose(res.predictions, (s_te[:, -1] - xm) @ w + am, atol=1e-6)
    # features unrelated to the coefficients decode nothing out of sample
    bad = decode_coefficients(s_tr, a_tr, s_te, a_te, time_index=0)
    assert bad.r2_test < 0.2
    # a trajectory and a state field work like the array
    traj = FakeTrajectory(None, FakeStates(r=s_tr, n=s_tr[..., :4]))
    assert decode_coefficients(traj, a_tr, field="r").r2_train == pytest.approx(res.r2_train)
    assert decode_coefficients(traj, a_tr, field="n").r2_test is None


def test_state_features_and_decoder_bad_input():
    s = np.arange(24, dtype=float).reshape(2, 3, 4)
    assert np.array_equal(state_features(s, time_index=1), s[:, 1])
    assert np.allclose(state_features(s, time_index="mean"), s.mean(1))
    assert np.allclose(state_features(s, time_index=slice(1, 3)), s[:, 1:].mean(1))
    with pytest.raises(ValueError, match="out of range"):
        state_features(s, time_index=3)
    with pytest.raises(ValueError, match="selects no step"):
        state_features(s, time_index=slice(3, 5))
    with pytest.raises(ValueError, match="no field 'z'"):
        state_features(FakeStates(s, s), field="z")
    with pytest.raises(ValueError, match="name the state variable"):
        state_features(FakeStates(s, s))
    with pytest.raises(ValueError, match="coefficients must have shape"):
        decode_coefficients(s, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="both test_features and test_coefficients"):
        decode_coefficients(s, np.zeros((2, 2)), s)
    with pytest.raises(ValueError, match="alpha"):
        decode_coefficients(s, np.zeros((2, 2)), alpha=-1)
