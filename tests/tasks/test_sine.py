import math

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import SineMetaLearning, make_task, updates_to_threshold


def test_sine_trials_match_hand_computed_values():
    task = SineMetaLearning(n_steps=20, dt=0.1)
    b = task.trials([0.5, 0.0], [2.0, 1.0], [math.pi / 6, 0.3])
    x, y = np.asarray(b.inputs), np.asarray(b.targets[..., 0])
    # input: (A, omega, phi) at every step
    assert np.allclose(x[0], [0.5, 2.0, math.pi / 6]) and np.allclose(x[1], [0.0, 1.0, 0.3])
    # step 0 is t = 0 s: 0.5 sin(pi/6) = 0.25; step 5 is t = 0.5 s: 0.5 sin(1 + pi/6)
    assert y[0, 0] == pytest.approx(0.25, abs=1e-6)
    assert y[0, 5] == pytest.approx(0.5 * math.sin(1.0 + math.pi / 6), abs=1e-6)
    ref = [0.5 * math.sin(2.0 * 0.1 * t + math.pi / 6) for t in range(20)]
    assert np.allclose(y[0], ref, atol=1e-6)
    assert np.all(y[1] == 0)  # zero amplitude: rest
    assert np.all(np.asarray(b.mask) == 1)


def test_sine_sample_distribution_and_targets():
    task = SineMetaLearning()
    b = task.sample(jr.PRNGKey(0), 512)
    amp, om, ph = (np.asarray(b.info[k]) for k in ("amplitude", "omega", "phase"))
    # A = max(U[-1, 1], 0): half the trials at zero, the rest uniform on (0, 1]
    assert amp.min() == 0.0 and amp.max() <= 1.0
    assert abs(np.mean(amp == 0) - 0.5) < 0.1
    assert abs(amp[amp > 0].mean() - 0.5) < 0.06
    assert om.min() >= 1.0 and om.max() <= 3.0
    assert ph.min() >= 0.0 and ph.max() <= 2 * math.pi
    # targets recomputed from the metadata with t in seconds
    t = np.arange(task.n_steps) * task.dt
    ref = amp[:, None] * np.sin(om[:, None] * t[None, :] + ph[:, None])
    assert np.allclose(np.asarray(b.targets[..., 0]), ref, atol=1e-5)
    assert np.allclose(np.asarray(b.inputs[:, 7]), np.stack([amp, om, ph], axis=1))


def test_sine_deterministic_varies_and_jits():
    task = SineMetaLearning(n_steps=30)
    a, b, c = (task.sample(jr.PRNGKey(k), 16) for k in (0, 0, 1))
    assert np.array_equal(a.targets, b.targets) and np.array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    j = eqx.filter_jit(lambda t, k: t.sample(k, 16))(task, jr.PRNGKey(0))
    assert np.array_equal(j.inputs, a.inputs)
    assert np.allclose(j.targets, a.targets, atol=1e-5)


def test_sine_fixed_parameters_and_heldout_batch():
    task = SineMetaLearning(n_steps=10, omega_range=(2.0, 2.0), phase_range=(0.0, 0.0))
    b = task.sample(jr.PRNGKey(3), 16)
    assert np.all(np.asarray(b.info["omega"]) == 2.0) and np.all(np.asarray(b.info["phase"]) == 0)
    h1, h2 = task.heldout_batch(), task.heldout_batch()
    assert h1.batch_size == task.heldout_size == 256
    assert np.array_equal(h1.targets, h2.targets)
    assert np.array_equal(task.evaluation_batches(jr.PRNGKey(9))["heldout"].inputs, h1.inputs)
    other = SineMetaLearning(n_steps=10, omega_range=(2.0, 2.0), phase_range=(0.0, 0.0), heldout_seed=7)
    assert not np.array_equal(other.heldout_batch().inputs, h1.inputs)


def test_sine_metric_is_mse():
    task = SineMetaLearning(n_steps=10)
    b = task.trials([1.0, 0.5], [1.0, 2.0], [0.0, 1.0])
    assert float(task.evaluate(b.targets + 0.1, b)["loss"]) == pytest.approx(0.01, rel=1e-4)


def test_updates_to_threshold_hand_examples():
    curve = [5.0, 4.0, 3.0, 2.0, 1.0]
    assert updates_to_threshold(curve, 2.5) == 3
    assert updates_to_threshold(curve, 5.0) == 0
    assert updates_to_threshold(curve, 0.5) is None
    assert updates_to_threshold(curve, 2.5, steps=[0, 10, 20, 30, 40]) == 30
    # running mean of width 2: [-, 4.5, 3.5, 2.5, 1.5]
    assert updates_to_threshold(curve, 2.5, window=2) == 3
    assert updates_to_threshold(curve, 3.0, window=2) == 3
    assert updates_to_threshold(curve, 4.5, window=2) == 1  # entry 0 has no full window
    # a single dip is ignored by smoothing but counted without it
    noisy = [5.0, 0.1, 5.0, 5.0, 1.0, 1.0]
    assert updates_to_threshold(noisy, 1.0) == 1
    assert updates_to_threshold(noisy, 1.01, window=2) == 5
    assert updates_to_threshold([np.nan, np.nan, 0.5], 1.0) == 2


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"losses": []}, "non-empty"),
        ({"losses": [1.0, 2.0], "threshold": float("nan")}, "threshold"),
        ({"losses": [1.0, 2.0], "window": 3}, "longer than the curve"),
        ({"losses": [1.0, 2.0], "window": 0}, "window"),
        ({"losses": [1.0, 2.0], "steps": [0]}, "same shape"),
        ({"losses": [1.0, 2.0], "steps": [5, 5]}, "increasing"),
    ],
)
def test_updates_to_threshold_bad_input(kwargs, msg):
    kwargs.setdefault("threshold", 1.0)
    with pytest.raises(ValueError, match=msg):
        updates_to_threshold(**kwargs)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"n_steps": 0}, "n_steps"),
        ({"dt": -0.1}, "dt"),
        ({"omega_range": (3.0, 1.0)}, "omega_range"),
        ({"omega_range": (-1.0, 1.0)}, "omega_range"),
        ({"phase_range": 1.0}, "phase_range"),
        ({"heldout_size": 0}, "heldout_size"),
    ],
)
def test_sine_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        SineMetaLearning(**kwargs)


def test_sine_bad_calls_and_registry():
    task = make_task("sine", n_steps=12, dt=0.05)
    assert (task.n_in, task.n_out, task.n_steps, task.dt) == (3, 1, 12, 0.05)
    assert task.default_batch_size == 16
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(jr.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="equal length"):
        task.trials([1.0, 1.0], [1.0], [0.0, 0.0])
