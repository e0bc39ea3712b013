import math

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import (
    DelayedDiscrimination,
    FlipFlop,
    PathIntegration,
    SineGeneration,
    make_task,
)


def flipflop_reference(inputs):
    """Plain loop: each output holds the sign of the last non-zero input (0 before any)."""
    out = np.zeros_like(inputs)
    for b in range(inputs.shape[0]):
        for c in range(inputs.shape[2]):
            state = 0.0
            for t in range(inputs.shape[1]):
                if inputs[b, t, c] != 0:
                    state = np.sign(inputs[b, t, c])
                out[b, t, c] = state
    return out


# ---------------------------------------------------------------------------------------------
# flip-flop
# ---------------------------------------------------------------------------------------------


def test_flipflop_hand_computed_trial():
    task = FlipFlop(n_steps=8)
    onsets = np.zeros((1, 8, 3))
    onsets[0, 0, 0], onsets[0, 4, 0] = 1, -1
    onsets[0, 2, 1] = -1
    b = task.trials(onsets)
    y, m = np.asarray(b.targets[0]), np.asarray(b.mask[0])
    assert np.array_equal(np.asarray(b.inputs[0]), onsets[0])
    assert y[:, 0].tolist() == [1, 1, 1, 1, -1, -1, -1, -1]
    assert y[:, 1].tolist() == [0, 0, -1, -1, -1, -1, -1, -1]
    assert m[:, 1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]  # nothing to remember before a pulse
    assert np.all(y[:, 2] == 0) and np.all(m[:, 2] == 0)
    assert np.asarray(b.info["n_pulses"][0]).tolist() == [2, 1, 0]


def test_flipflop_long_pulses():
    task = FlipFlop(n_bits=1, n_steps=9, pulse_steps=3, pulse_amplitude=2.0)
    onsets = np.zeros((1, 9, 1))
    onsets[0, 1, 0], onsets[0, 5, 0] = 1, -1
    b = task.trials(onsets)
    assert np.asarray(b.inputs[0, :, 0]).tolist() == [0, 2, 2, 2, 0, -2, -2, -2, 0]
    assert np.asarray(b.targets[0, :, 0]).tolist() == [0, 1, 1, 1, 1, -1, -1, -1, -1]
    onsets[0, 3, 0] = 1  # 2 steps after the first: overlaps
    with pytest.raises(ValueError, match="overlap"):
        task.trials(onsets)


def test_flipflop_sample_matches_reference_and_statistics():
    task = FlipFlop(n_steps=60, pulse_prob=0.1)
    b = task.sample(jr.PRNGKey(0), 128)
    x = np.asarray(b.inputs)
    assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    assert np.all(x[:, 0] != 0)  # initial pulse on every channel
    assert np.array_equal(np.asarray(b.targets), flipflop_reference(x))
    assert np.all(np.asarray(b.mask) == 1)
    rate = np.mean(x[:, 1:] != 0)
    assert abs(rate - 0.1) < 0.015  # 22k Bernoulli(0.1) draws
    assert abs(np.mean(x[x != 0] > 0) - 0.5) < 0.05
    # every one of the 8 memory states is visited
    states = {tuple(r) for r in np.asarray(b.targets).reshape(-1, 3)}
    assert len(states) == 8


def test_flipflop_sample_long_pulses_and_no_initial_pulse():
    task = FlipFlop(n_bits=2, n_steps=31, pulse_prob=0.3, pulse_steps=2, initial_pulse=False)
    b = task.sample(jr.PRNGKey(1), 64)
    x, y, m = np.asarray(b.inputs), np.asarray(b.targets), np.asarray(b.mask)
    assert np.array_equal(x[:, 1::2], x[:, 0:-1:2])  # pulses fill whole 2-step slots
    onsets = np.zeros_like(x)
    onsets[:, ::2] = x[:, ::2]
    ref = flipflop_reference(onsets)
    assert np.array_equal(y, ref)
    assert np.array_equal(m, (np.cumsum(onsets != 0, axis=1) > 0).astype(float))
    assert np.any(x[:, 0] == 0)


def test_flipflop_metric():
    task = FlipFlop(n_steps=8)
    onsets = np.zeros((1, 8, 3))
    onsets[0, 0] = [1, -1, 1]
    b = task.trials(onsets)
    out = 0.5 * np.asarray(b.targets)
    m = task.evaluate(out, b)
    assert float(m["accuracy"]) == 1.0 and float(m["loss"]) == pytest.approx(0.25)
    out[0, :2, 0] *= -1  # 2 wrong signs out of 24 scored entries
    assert float(task.evaluate(out, b)["accuracy"]) == pytest.approx(22 / 24)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"n_bits": 0}, "n_bits"),
        ({"pulse_prob": 1.5}, "pulse_prob"),
        ({"pulse_prob": -0.1}, "pulse_prob"),
        ({"pulse_steps": 0}, "pulse_steps"),
        ({"n_steps": 5, "pulse_steps": 6}, "longer than the trial"),
        ({"pulse_amplitude": 0}, "pulse_amplitude"),
    ],
)
def test_flipflop_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        FlipFlop(**kwargs)


def test_flipflop_bad_trials():
    task = FlipFlop(n_steps=8)
    with pytest.raises(ValueError, match=r"shape \(B, 8, 3\)"):
        task.trials(np.zeros((1, 8, 2)))
    with pytest.raises(ValueError, match="only -1, 0 and"):
        task.trials(np.full((1, 8, 3), 0.5))


# ---------------------------------------------------------------------------------------------
# sine generation
# ---------------------------------------------------------------------------------------------


def test_sinegen_levels_frequencies_and_targets():
    task = SineGeneration(n_steps=40)
    assert np.allclose(np.asarray(task.omegas())[[0, 25, 50]], [0.1, 0.35, 0.6])
    assert np.allclose(np.asarray(task.input_levels())[[0, 50]], [1 / 51 + 0.25, 1.25])
    b = task.trials([1, 26])
    assert np.allclose(np.asarray(b.inputs[:, :, 0]), [[1 / 51 + 0.25], [26 / 51 + 0.25]])
    assert float(b.targets[1, 10, 0]) == pytest.approx(math.sin(3.5), abs=1e-6)
    assert np.allclose(np.asarray(b.targets[0, :, 0]), np.sin(0.1 * np.arange(40)), atol=1e-6)
    assert float(b.targets[0, 0, 0]) == 0.0


def test_sinegen_sample_and_evaluation_set():
    task = SineGeneration(n_steps=50, dt=0.5)
    b1, b2, b3 = (task.sample(jr.PRNGKey(k), 64) for k in (0, 0, 1))
    j = np.asarray(b1.info["freq_index"])
    assert j.min() >= 1 and j.max() <= 51 and len(np.unique(j)) > 20
    ref = np.sin((0.1 + 0.5 * (j[:, None] - 1) / 50) * 0.5 * np.arange(50)[None, :])
    assert np.allclose(np.asarray(b1.targets[..., 0]), ref, atol=1e-5)
    assert np.allclose(np.asarray(b1.inputs[:, 0, 0]), j / 51 + 0.25)
    assert np.array_equal(b1.targets, b2.targets) and not np.array_equal(b1.inputs, b3.inputs)
    allb = task.evaluation_batches()["all"]
    assert np.asarray(allb.info["freq_index"]).tolist() == list(range(1, 52))


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"omega_range": (0.6, 0.1)}, "omega_range"),
        ({"omega_range": (0.0, 0.5)}, "omega_range"),
        ({"n_freqs": 0}, "n_freqs"),
        ({"dt": 0}, "dt"),
    ],
)
def test_sinegen_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        SineGeneration(**kwargs)
    with pytest.raises(ValueError, match="1..51"):
        SineGeneration().trials([0, 3])


def test_sinegen_cued_trials_match_trained_conditions_and_interpolate():
    task = SineGeneration(n_freqs=5, omega_range=(0.1, 0.5), n_steps=30)
    # at the trained frequencies the cue line gives exactly the conditions' trials
    trained = task.trials([1, 3, 5])
    cued = task.cued_trials([0.1, 0.3, 0.5])
    assert np.allclose(np.asarray(cued.inputs), np.asarray(trained.inputs), atol=1e-7)
    assert np.allclose(np.asarray(cued.targets), np.asarray(trained.targets), atol=1e-6)
    # between two trained frequencies: the midpoint of their levels, and the unseen sine
    mid = task.cued_trials([0.15])
    assert float(mid.inputs[0, 0, 0]) == pytest.approx((1 / 5 + 2 / 5) / 2 + 0.25, abs=1e-7)
    assert np.allclose(np.asarray(mid.targets[0, :, 0]), np.sin(0.15 * np.arange(30)), atol=1e-6)
    assert np.asarray(mid.info["freq_index"]).tolist() == [0]
    with pytest.raises(ValueError, match="n_freqs >= 2"):
        SineGeneration(n_freqs=1).cued_trials([0.2])
    with pytest.raises(ValueError, match="positive"):
        task.cued_trials([0.2, -0.1])


# ---------------------------------------------------------------------------------------------
# delayed discrimination (Romo)
# ---------------------------------------------------------------------------------------------

ROMO_SMALL = dict(dt=100, fixation=200, stimulus=200, delay=300, decision=200)


def test_romo_hand_computed_trial():
    task = DelayedDiscrimination(**ROMO_SMALL)
    assert task.n_steps == 2 + 2 + 3 + 2 + 2
    b = task.trials([34.0, 10.0], [26.0, 18.0])
    x, y = np.asarray(b.inputs), np.asarray(b.targets[..., 0])
    # encoding (1 + (f - 10) / (34 - 10)) / 2: 34 -> 1, 26 -> 5/6, 10 -> 0.5, 18 -> 2/3
    assert np.allclose(x[0, :, 1], [0, 0, 1, 1, 0, 0, 0, 5 / 6, 5 / 6, 0, 0])
    assert np.allclose(x[1, :, 1], [0, 0, 0.5, 0.5, 0, 0, 0, 2 / 3, 2 / 3, 0, 0])
    assert x[0, :, 0].tolist() == [1] * 9 + [0, 0]  # fixation off = go cue at step 9
    assert y[0].tolist() == [0] * 9 + [1, 1]  # f1 > f2
    assert y[1].tolist() == [0] * 9 + [-1, -1]  # f1 < f2
    assert np.asarray(b.info["label"]).tolist() == [1, -1]
    assert np.asarray(b.info["t_go"]).tolist() == [9, 9]


def test_romo_variable_delay_sampling_and_noise():
    task = DelayedDiscrimination(**{**ROMO_SMALL, "delay": (100, 500)}, input_noise=0.1)
    assert task.n_steps == 2 + 2 + 5 + 2 + 2
    b = task.sample(jr.PRNGKey(0), 256)
    d = np.asarray(b.info["delay_steps"])
    assert d.min() == 1 and d.max() == 5
    f1, f2, lab = (np.asarray(b.info[k]) for k in ("f1", "f2", "label"))
    assert np.all(lab == np.where(f1 > f2, 1, -1)) and abs(np.mean(lab > 0) - 0.5) < 0.1
    pairs = {tuple(sorted(p)) for p in zip(f1.tolist(), f2.tolist(), strict=True)}
    assert pairs <= {(10, 18), (14, 22), (18, 26), (22, 30), (26, 34)}
    # noise-free trials with the same conditions differ only inside the stimulus epochs
    clean = task.trials(f1, f2, d * 100)
    diff = np.asarray(b.inputs) - np.asarray(clean.inputs)
    t = np.arange(task.n_steps)[None, :]
    s2 = np.asarray(clean.info["t_stim2"])[:, None]
    stim = ((t >= 2) & (t < 4)) | ((t >= s2) & (t < s2 + 2))
    assert np.all(diff[..., 0] == 0) and np.all(diff[..., 1][~stim] == 0)
    assert 0.07 < diff[..., 1][stim].std() < 0.13
    assert np.array_equal(np.asarray(b.targets), np.asarray(clean.targets))


def test_romo_metric():
    task = DelayedDiscrimination(**ROMO_SMALL)
    b = task.trials([34.0, 10.0, 22.0], [26.0, 18.0, 14.0])
    assert float(task.evaluate(b.targets, b)["accuracy"]) == 1.0
    out = np.asarray(b.targets).copy()
    out[2] *= -1
    m = task.evaluate(out, b)
    assert float(m["accuracy"]) == pytest.approx(2 / 3)
    assert float(m["loss"]) == pytest.approx(4 * 2 / (3 * 11))  # two steps of error 2 in one trial


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"fixation": -100}, "fixation"),
        ({"stimulus": 0}, "stimulus"),
        ({"decision": 0}, "decision"),
        ({"delay": -100}, "delay"),
        ({"delay": (500, 100)}, "low <= high"),
        ({"delay": (100, 200, 300)}, "range"),
        ({"stimulus": 150}, "whole number of steps"),
        ({"dt": 0}, "dt"),
        ({"pairs": ()}, "at least one"),
        ({"pairs": ((10, 10),)}, "equal frequencies"),
        ({"pairs": ((10, -5),)}, "positive"),
        ({"input_noise": -1}, "input_noise"),
    ],
)
def test_romo_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        DelayedDiscrimination(**{**ROMO_SMALL, **kwargs})


def test_romo_bad_trials():
    task = DelayedDiscrimination(**{**ROMO_SMALL, "delay": (100, 300)})
    with pytest.raises(ValueError, match="must differ"):
        task.trials([10.0], [10.0])
    with pytest.raises(ValueError, match="delays must lie"):
        task.trials([10.0], [18.0], [500])


# ---------------------------------------------------------------------------------------------
# path integration
# ---------------------------------------------------------------------------------------------


def test_pathint_hand_computed_paths():
    v = np.array([[[1.0], [2.0], [-1.0], [0.0]]])
    free = PathIntegration(n_dims=1, n_steps=4, dt=0.5, boundary="none")
    assert np.allclose(np.asarray(free.trials(v).targets[0, :, 0]), [0.5, 1.5, 1.0, 1.0])
    wrap = PathIntegration(n_dims=1, n_steps=4, dt=0.5, boundary="wrap", box_size=2.0)
    assert np.allclose(np.asarray(wrap.trials(v).targets[0, :, 0]), [0.5, -0.5, -1.0, -1.0])
    refl = PathIntegration(n_dims=1, n_steps=4, dt=0.5, boundary="reflect", box_size=4.0)
    assert np.allclose(np.asarray(refl.trials(v).targets[0, :, 0]), [0.5, 1.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="leaves the box"):
        PathIntegration(n_dims=1, n_steps=4, dt=0.5, boundary="reflect", box_size=2.0).trials(v)


@pytest.mark.parametrize("boundary", ["reflect", "wrap", "none"])
def test_pathint_sample_targets_are_cumulative_sums(boundary):
    task = PathIntegration(n_steps=80, dt=0.1, speed=1.0, boundary=boundary, box_size=1.0)
    b = task.sample(jr.PRNGKey(0), 32)
    v, x = np.asarray(b.inputs, dtype=np.float64), np.asarray(b.targets)
    ref = np.cumsum(v * 0.1, axis=1)
    if boundary == "wrap":
        ref = np.mod(ref + 0.5, 1.0) - 0.5
        assert np.all(x >= -0.5) and np.all(x < 0.5 + 1e-6)
        circ = np.abs(np.mod(x - ref + 0.5, 1.0) - 0.5)  # compare on the circle
        assert circ.max() < 1e-4
    else:
        assert np.allclose(x, ref, atol=1e-4)
    if boundary == "reflect":
        assert np.abs(x).max() <= 0.5 + 1e-5
        assert np.abs(ref).max() > 0.4  # the walls were reached
    if boundary == "none":
        assert np.abs(x).max() > 0.5  # nothing held it in


def test_pathint_velocity_statistics():
    task = PathIntegration(n_dims=1, n_steps=200, dt=0.1, speed=0.5, velocity_timescale=1.0, boundary="none")
    v = np.asarray(task.sample(jr.PRNGKey(3), 256).inputs[..., 0], dtype=np.float64)
    assert abs(v.std() - 0.5) < 0.05
    rho = np.sum(v[:, 1:] * v[:, :-1]) / np.sum(v[:, :-1] ** 2)
    assert rho == pytest.approx(math.exp(-0.1), abs=0.02)
    # same key, same velocities; another key, others
    again = np.asarray(task.sample(jr.PRNGKey(3), 256).inputs[..., 0])
    assert np.array_equal(again, v.astype(np.float32))


def test_pathint_metric():
    task = PathIntegration(n_steps=5)
    b = task.trials(np.full((2, 5, 2), 0.5))
    out = np.asarray(b.targets).copy()
    out[:, -1] += [0.3, 0.4]
    m = task.evaluate(out, b)
    assert float(m["final_error"]) == pytest.approx(0.5)
    assert float(m["loss"]) == pytest.approx(0.25 / (5 * 2), rel=1e-5)
    wrap = PathIntegration(n_steps=5, boundary="wrap", box_size=2.0)
    bw = wrap.trials(np.zeros((1, 5, 2)))
    out = np.asarray(bw.targets).copy()
    out[:, -1] = [1.9, 0.0]  # 1.9 is 0.1 away from 0 on a circle of length 2
    assert float(wrap.evaluate(out, bw)["final_error"]) == pytest.approx(0.1, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"n_dims": 3}, "n_dims must be 1 or 2"),
        ({"boundary": "bounce"}, "valid choices"),
        ({"speed": -1}, "speed"),
        ({"velocity_timescale": 0}, "velocity_timescale"),
        ({"box_size": 0}, "box_size"),
        ({"n_steps": 0}, "n_steps"),
    ],
)
def test_pathint_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        PathIntegration(**kwargs)
    with pytest.raises(ValueError, match="shape"):
        PathIntegration().trials(np.zeros((1, 100, 1)))


# ---------------------------------------------------------------------------------------------
# all four: registry, determinism, jit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options, n_in, n_out",
    [
        ("flipflop", {"n_steps": 20}, 3, 3),
        ("sinegen", {"n_steps": 20}, 1, 1),
        ("romo", ROMO_SMALL, 2, 1),
        ("pathint", {"n_steps": 20}, 2, 2),
    ],
)
def test_registry_determinism_and_jit(name, options, n_in, n_out):
    task = make_task(name, **options)
    assert (task.n_in, task.n_out) == (n_in, n_out)
    a, b, c = (task.sample(jr.PRNGKey(k), 8) for k in (0, 0, 1))
    assert a.inputs.shape == (8, task.n_steps, n_in) and a.targets.shape == (8, task.n_steps, n_out)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.targets, c.targets)
    j = eqx.filter_jit(lambda t, k: t.sample(k, 8))(task, jr.PRNGKey(0))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(j), strict=True):
        assert np.allclose(x, y, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(jr.PRNGKey(0), 0)
