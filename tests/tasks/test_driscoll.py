"""Driscoll-convention multitask (T3): trials against hand-built arrays, sampling statistics,
the percent-correct metric, determinism and bad input."""

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model
from nmrnn.tasks import DRISCOLL_TASKS, DRISCOLL_TO_YANG, NMRNN_RULES, DriscollTask, make_task
from nmrnn.tasks.driscoll import YANG_TO_DRISCOLL, trial_correct

PI = np.pi


def expected_trial(T, n_in, n_mod, rule_ch, fix_off, go, events, respond, target):
    """Plain per-step construction of one trial from the convention's description.

    ``events``: list of (on, off, theta, strengths per modality)."""
    x = np.zeros((T, n_in))
    y = np.zeros((T, 3))
    for t in range(T):
        x[t, 0] = 1.0 if t < fix_off else 0.0
        for on, off, theta, strengths in events:
            if on <= t < off:
                for m in range(n_mod):
                    x[t, 1 + 2 * m] += strengths[m] * np.sin(theta)
                    x[t, 2 + 2 * m] += strengths[m] * np.cos(theta)
        x[t, rule_ch] = 1.0
        if respond and t >= go:
            y[t] = [0.0, np.sin(target), np.cos(target)]
        else:
            y[t] = [0.8, 0.0, 0.0]
    return x, y


def fixed(**periods):
    """Duration ranges (ms): a number means a fixed duration."""
    return {k: (v, v) if np.ndim(v) == 0 else v for k, v in periods.items()}


def test_delaypro_absolute_timing_matches_hand_built_trial():
    # dt = 1 ms so durations are steps; the fixation period absorbs the slack (40 - 30 = 10)
    task = DriscollTask(
        "DelayPro", timing="absolute", dt=1.0, n_steps=40,
        durations={"fixation": (5, 10), "stimulus": (5, 20), "response": (5, 10)},
    )
    theta = PI / 3
    b = task.trials([[10, 15, 5]], [theta])
    x, y = expected_trial(40, 20, 2, 5 + 0, fix_off=35, go=35,
                          events=[(20, 40, theta, (1.0, 0.0))], respond=True, target=theta)
    np.testing.assert_allclose(np.asarray(b.inputs[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.targets[0]), y, atol=1e-6)
    assert np.all(np.asarray(b.mask) == 1)
    assert int(b.info["go"][0]) == 35 and int(b.info["fix_off"][0]) == 35
    assert task.sensory_channels == (0, 1, 2, 3, 4)
    assert task.context_channels == tuple(range(5, 20))


def test_memoryanti_scaled_timing_matches_reference_rounding():
    # periods 300, 500, 400, 300 ms (total 1500) scaled to 100 steps: a boundary at c ms falls on
    # the first step t >= c / 1500 * 100: 20, ceil(53.33) = 54, 80
    task = DriscollTask("MemoryAnti", rules=NMRNN_RULES, n_modalities=1)
    theta = 0.3
    b = task.trials([[300, 500, 400, 300]], [theta])
    target = theta + PI
    x, y = expected_trial(100, 7, 1, 3 + 3, fix_off=80, go=80,
                          events=[(20, 54, theta, (1.0,))], respond=True, target=target)
    np.testing.assert_allclose(np.asarray(b.inputs[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.targets[0]), y, atol=1e-6)
    assert float(b.info["target_angle"][0]) == pytest.approx(target)
    assert task.n_in == 7 and task.sensory_channels == (0, 1, 2)
    assert task.context_channels == (3, 4, 5, 6)


@pytest.mark.parametrize(
    "name, chosen",
    [("ContextIntModality1", 0), ("ContextIntModality2", 1), ("IntegrationMultimodal", 0)],
)
def test_context_integration_trials(name, chosen):
    # stimulus 1: 1.5 in modality 1, 0.7 in modality 2; stimulus 2: 0.5 and 1.3.
    # Attend 1 -> stimulus 1; attend 2 -> stimulus 2; sum (2.2 vs 1.8) -> stimulus 1.
    task = DriscollTask(name, timing="absolute", dt=10.0, n_steps=60, durations=fixed(
        fixation=(50, 150), stimulus1=100, delay1=100, stimulus2=100, delay2=50, response=100))
    th = (1.0, 4.0)
    strength = [[[1.5, 0.7], [0.5, 1.3]]]
    # periods (ms): fixation 50, stim1 100, delay1 100, stim2 100, delay2 50, response 100
    b = task.trials([[50, 100, 100, 100, 50, 100]], [th], strength=strength)
    # steps: 5 | 10 | 10 | 10 | 5 | 10, plus 10 steps of slack in the first fixation period
    rule_ch = 5 + DRISCOLL_TASKS.index(name)
    x, y = expected_trial(
        60, 20, 2, rule_ch, fix_off=50, go=50,
        events=[(15, 25, th[0], (1.5, 0.7)), (35, 45, th[1], (0.5, 1.3))],
        respond=True, target=th[chosen],
    )
    np.testing.assert_allclose(np.asarray(b.inputs[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.targets[0]), y, atol=1e-6)


@pytest.mark.parametrize(
    "name, theta, respond",
    [
        ("ReactMatch2Sample", (1.0, 1.0), True),
        ("ReactMatch2Sample", (1.0, 2.0), False),
        ("ReactNonMatch2Sample", (1.0, 1.0), False),
        ("ReactNonMatch2Sample", (1.0, 2.0), True),
        ("ReactCategoryPro", (0.5, 2.5), True),  # both below pi: same category
        ("ReactCategoryPro", (0.5, 4.0), False),
        ("ReactCategoryAnti", (0.5, 2.5), False),
        ("ReactCategoryAnti", (0.5, 4.0), True),
    ],
)
def test_match_tasks_respond_or_keep_fixating(name, theta, respond):
    task = DriscollTask(name, timing="absolute", dt=10.0, n_steps=30, durations=fixed(
        fixation=(50, 150), stimulus1=50, delay1=50, response=50))
    # fixation 50 ms, sample 50, delay 50, test/response 50 -> steps 5 (+10 slack), 5, 5, 5
    b = task.trials([[50, 50, 50, 50]], [theta])
    x, y = expected_trial(
        30, 20, 2, 5 + DRISCOLL_TASKS.index(name), fix_off=30, go=25,
        events=[(15, 20, theta[0], (1.0, 0.0)), (25, 30, theta[1], (1.0, 0.0))],
        respond=respond, target=theta[1],
    )
    np.testing.assert_allclose(np.asarray(b.inputs[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.targets[0]), y, atol=1e-6)
    assert bool(b.info["respond"][0]) == respond


def test_react_task_fixation_input_stays_on_and_go_is_stimulus_onset():
    task = DriscollTask("ReactAnti", timing="absolute", dt=10.0, n_steps=20,
                        durations=fixed(fixation=100, response=100))
    b = task.trials([[100, 100]], [2.0])  # 10 steps fixation, 10 steps stimulus/response
    x, y = expected_trial(20, 20, 2, 5 + DRISCOLL_TASKS.index("ReactAnti"), fix_off=20, go=10,
                          events=[(10, 20, 2.0, (1.0, 0.0))], respond=True, target=2.0 + PI)
    np.testing.assert_allclose(np.asarray(b.inputs[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b.targets[0]), y, atol=1e-6)


def test_driscoll_cost_mask():
    task = DriscollTask("DelayPro", timing="absolute", dt=20.0, n_steps=60, mask="driscoll",
                        durations=fixed(fixation=400, stimulus=400, response=400))
    b = task.trials([[400, 400, 400]], [0.0])  # 20 steps each, go at 40; grace 100 ms = 5 steps
    m = np.asarray(b.mask[0])
    w = np.array([0.0] * 5 + [1.0] * 35 + [0.0] * 5 + [5.0] * 15)
    np.testing.assert_array_equal(m[:, 1], w)
    np.testing.assert_array_equal(m[:, 2], w)
    np.testing.assert_array_equal(m[:, 0], 2 * w)


def test_input_noise_is_drawn_from_the_key():
    task = DriscollTask("DelayPro", input_noise=0.1)
    clean = DriscollTask("DelayPro")
    a, b = task.sample(jr.PRNGKey(0), 256), clean.sample(jr.PRNGKey(0), 256)
    diff = np.asarray(a.inputs - b.inputs)
    assert diff.std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(np.asarray(a.targets), np.asarray(b.targets))


# ------------------------------------------------------------------------------------------------
# sampling statistics


def _circ(a, b):
    d = np.mod(a - b, 2 * PI)
    return np.minimum(d, 2 * PI - d)


def test_sample_inside_jit_equals_eager():
    task = DriscollTask("IntegrationMultimodal", mask="driscoll", input_noise=0.05)
    a = task.sample(jr.PRNGKey(0), 16)
    j = jax.jit(lambda k: task.sample(k, 16))(jr.PRNGKey(0))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(j), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


def test_sampled_timing_within_driscoll_ranges():
    task = DriscollTask("MemoryPro", timing="absolute")  # dt 20 ms
    b = task.sample(jr.PRNGKey(0), 2048)
    on, off = np.asarray(b.info["stim_on"][:, 0]), np.asarray(b.info["stim_off"][:, 0])
    go = np.asarray(b.info["go"])
    stim, delay, resp = off - on, go - off, task.n_steps - go
    assert stim.min() >= 10 and stim.max() <= 80  # 200..1600 ms
    assert delay.min() >= 10 and delay.max() <= 80
    assert resp.min() >= 15 and resp.max() <= 35  # 300..700 ms
    assert on.min() >= 15  # fixation at least 300 ms
    assert task.n_steps == 35 + 80 + 80 + 35
    # uniform: the mean stimulus length is about (10 + 80) / 2 steps
    assert stim.mean() == pytest.approx(44.5, abs=1.5)


def test_sampled_scaled_trials_fill_n_steps_in_order():
    task = DriscollTask("IntegrationModality1")
    b = task.sample(jr.PRNGKey(1), 256)
    on, off = np.asarray(b.info["stim_on"]), np.asarray(b.info["stim_off"])
    go = np.asarray(b.info["go"])
    assert np.all((0 < on[:, 0]) & (on[:, 0] < off[:, 0]) & (off[:, 0] < on[:, 1]))
    assert np.all((on[:, 1] < off[:, 1]) & (off[:, 1] < go) & (go < 100))


def test_anti_and_pro_response_angles():
    for name, shift in [("DelayPro", 0.0), ("DelayAnti", PI), ("MemoryAnti", PI),
                        ("ReactPro", 0.0)]:
        b = DriscollTask(name).sample(jr.PRNGKey(2), 256)
        th = np.asarray(b.info["theta"][:, 0])
        assert np.all(_circ(np.asarray(b.info["target_angle"]), th + shift) < 1e-5), name
        assert np.all(np.asarray(b.info["respond"]))
        # the stimulus appears in exactly one modality
        s = np.asarray(b.info["strength"][:, 0])
        assert np.all(np.sort(s, axis=1) == np.array([0.0, 1.0]))
        assert 0.3 < s[:, 1].mean() < 0.7


def test_integration_statistics_and_answer():
    b = DriscollTask("IntegrationModality1").sample(jr.PRNGKey(3), 4096)
    th = np.asarray(b.info["theta"])
    s = np.asarray(b.info["strength"])
    assert np.all(s[:, :, 1] == 0)  # modality 1 only
    s1, s2 = s[:, 0, 0], s[:, 1, 0]
    mean, coh = (s1 + s2) / 2, np.abs(s1 - s2) / 2
    assert mean.min() >= 0.8 - 1e-6 and mean.max() <= 1.2 + 1e-6
    assert coh.min() >= 0.005 - 1e-6 and coh.max() <= 0.8 + 1e-6
    d = _circ(th[:, 0], th[:, 1])
    assert d.min() >= 0.5 * PI - 1e-4 and d.max() <= PI + 1e-4
    stronger = np.where(s1 > s2, th[:, 0], th[:, 1])
    assert np.all(_circ(np.asarray(b.info["target_angle"]), stronger) < 1e-5)
    assert 0.45 < np.mean(s1 > s2) < 0.55


def test_multimodal_split_keeps_each_stimulus_mean():
    b = DriscollTask("IntegrationMultimodal").sample(jr.PRNGKey(4), 2048)
    s = np.asarray(b.info["strength"])  # (B, 2, 2)
    total = s.sum(axis=2) / 2  # per stimulus: the mean over modalities is its strength
    rel = np.abs(s[:, :, 0] - s[:, :, 1]) / total
    assert rel.min() >= 0.005 - 1e-5 and rel.max() <= 0.8 + 1e-5
    th = np.asarray(b.info["theta"])
    stronger = np.where(total[:, 0] > total[:, 1], th[:, 0], th[:, 1])
    assert np.all(_circ(np.asarray(b.info["target_angle"]), stronger) < 1e-5)


def test_match_sampling():
    b = DriscollTask("ReactMatch2Sample").sample(jr.PRNGKey(5), 4096)
    th = np.asarray(b.info["theta"])
    d = _circ(th[:, 0], th[:, 1])
    respond = np.asarray(b.info["respond"])
    assert 0.45 < respond.mean() < 0.55
    assert np.all(d[respond] < 1e-5)
    assert d[~respond].min() >= PI / 9 - 1e-4
    c = DriscollTask("ReactCategoryAnti").sample(jr.PRNGKey(6), 4096)
    th = np.asarray(c.info["theta"])
    same = (th[:, 0] < PI) == (th[:, 1] < PI)
    np.testing.assert_array_equal(np.asarray(c.info["respond"]), ~same)
    # no-go trials keep the fixation target to the end and have no response target
    y = np.asarray(c.targets)
    assert np.all(y[same, :, 0] == 0.8) and np.all(y[same, :, 1:] == 0)


@pytest.mark.parametrize("name", DRISCOLL_TASKS)
def test_every_task_deterministic_and_varies(name):
    task = DriscollTask(name)
    a, b = task.sample(jr.PRNGKey(0), 256), task.sample(jr.PRNGKey(0), 256)
    c = task.sample(jr.PRNGKey(1), 256)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    np.testing.assert_array_equal(np.asarray(a.targets), np.asarray(b.targets))
    assert not np.array_equal(np.asarray(a.inputs), np.asarray(c.inputs))
    # the rule channel is the task's one-hot at every step
    rules = np.asarray(a.inputs[..., task.context_channels])
    assert np.all(rules[..., DRISCOLL_TASKS.index(name)] == 1) and np.all(rules.sum(-1) == 1)
    # a perfect output scores 100%
    assert task.evaluate(a.targets, a)["percent_correct"] == 100.0


# ------------------------------------------------------------------------------------------------
# metric


def _rotate(out, angle):
    out = np.array(out)
    c, s = np.cos(angle), np.sin(angle)
    sin_, cos_ = out[..., 1].copy(), out[..., 2].copy()
    # rotating (sin th, cos th) by `angle` gives (sin(th + a), cos(th + a))
    out[..., 1] = sin_ * c + cos_ * s
    out[..., 2] = cos_ * c - sin_ * s
    return out


def test_percent_correct_perfect_rotated_and_broken_fixation():
    task = DriscollTask("MemoryPro")
    b = task.sample(jr.PRNGKey(7), 256)
    perfect = np.asarray(b.targets)
    assert task.evaluate(perfect, b)["percent_correct"] == 100.0
    assert task.evaluate(_rotate(perfect, 0.9 * PI / 10), b)["percent_correct"] == 100.0
    assert task.evaluate(_rotate(perfect, 1.1 * PI / 10), b)["percent_correct"] == 0.0
    assert task.evaluate(_rotate(perfect, -1.1 * PI / 10), b)["percent_correct"] == 0.0
    # the opposite direction is wrong (a quadrant-blind arctan decoder would accept it)
    assert task.evaluate(_rotate(perfect, PI), b)["percent_correct"] == 0.0
    # breaking fixation one step before the go cue
    broken = perfect.copy()
    go = np.asarray(b.info["go"])
    broken[np.arange(256), go - 1, 0] = 0.4
    assert task.evaluate(broken, b)["percent_correct"] == 0.0
    # only half the trials broken -> 50 %
    half = perfect.copy()
    half[np.arange(128), go[:128] - 1, 0] = 0.4
    assert task.evaluate(half, b)["percent_correct"] == 50.0
    # scaled output amplitude does not matter for the angle
    assert task.evaluate(perfect * np.array([1.0, 0.3, 0.3]), b)["percent_correct"] == 100.0


def test_percent_correct_react_and_nogo_trials():
    react = DriscollTask("ReactPro")
    b = react.sample(jr.PRNGKey(8), 256)
    out = np.asarray(b.targets).copy()  # fixation output drops at go although the input stays on
    assert react.evaluate(out, b)["percent_correct"] == 100.0
    t = DriscollTask("ReactNonMatch2Sample", timing="absolute", dt=10.0, n_steps=30,
                     durations=fixed(fixation=50, stimulus1=50, delay1=50, response=50))
    nogo = t.trials([[50, 50, 50, 50]], [(1.0, 1.0)])  # match -> keep fixating
    out = np.asarray(nogo.targets).copy()
    assert t.evaluate(out, nogo)["percent_correct"] == 100.0
    out[0, -1, 0] = 0.2  # released fixation at the end
    assert t.evaluate(out, nogo)["percent_correct"] == 0.0


def test_require_release_option():
    b = DriscollTask("DelayPro").sample(jr.PRNGKey(9), 256)
    out = np.asarray(b.targets).copy()
    out[:, :, 0] = 0.8  # keeps fixating through the response
    assert trial_correct(out, b).all()
    assert not trial_correct(out, b, require_release=True).any()
    assert DriscollTask("DelayPro", require_release=True).evaluate(out, b)["percent_correct"] == 0


# ------------------------------------------------------------------------------------------------
# layout, names, registry


def test_channel_ranges_route_an_nmrnn():
    task = DriscollTask("MemoryPro", rules=NMRNN_RULES, n_modalities=1)
    model = make_model(
        "nmrnn", n_in=task.n_in, n_out=task.n_out, n_hidden=16, n_nm=4, rank=2,
        z_inputs=task.context_channels, x_inputs=task.sensory_channels, key=jr.PRNGKey(0),
    )
    assert model.B_z.shape == (4, len(NMRNN_RULES)) and model.B_x.shape == (16, 3)
    b = task.sample(jr.PRNGKey(0), 256)
    x = np.asarray(b.inputs)
    np.testing.assert_array_equal(x[..., task.context_channels], np.broadcast_to(
        np.eye(4)[NMRNN_RULES.index("MemoryPro")], (256, 100, 4)))


def test_name_map_is_complete_and_accepted():
    assert set(DRISCOLL_TO_YANG) == set(DRISCOLL_TASKS) and len(DRISCOLL_TASKS) == 15
    assert set(DRISCOLL_TO_YANG.values()) == {
        "fdgo", "reactgo", "delaygo", "fdanti", "reactanti", "delayanti", "delaydm1", "delaydm2",
        "contextdelaydm1", "contextdelaydm2", "multidelaydm", "dmsgo", "dmsnogo", "dmcgo",
        "dmcnogo",
    }
    assert DRISCOLL_TO_YANG["MemoryPro"] == "delaygo" and DRISCOLL_TO_YANG["DelayPro"] == "fdgo"
    assert YANG_TO_DRISCOLL["delayanti"] == "MemoryAnti"
    assert DriscollTask("delayanti").task == "MemoryAnti"
    t = make_task("driscoll", task="ReactCategoryAnti", n_steps=50)
    assert t.task == "ReactCategoryAnti" and t.n_steps == 50


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"task": "MemoryGo"}, "valid names: DelayPro"),
        ({"task": "DelayPro", "durations": {"delay": (100, 200)}}, "valid periods: fixation"),
        ({"task": "DelayPro", "durations": {"stimulus": (-10, 200)}}, "non-negative"),
        ({"task": "DelayPro", "durations": {"stimulus": (300, 200)}}, "below lo"),
        ({"task": "DelayPro", "durations": {"response": (0, 200)}}, "response period"),
        ({"task": "DelayPro", "timing": "absolute", "n_steps": 100}, "longer than n_steps=100"),
        ({"task": "IntegrationModality1", "n_steps": 40}, "too short"),
        ({"task": "ContextIntModality1", "n_modalities": 1}, "two stimulus modalities"),
        ({"task": "DelayPro", "n_modalities": 3}, "n_modalities"),
        ({"task": "MemoryAnti", "rules": ("DelayPro", "MemoryPro")}, "not in rules"),
        ({"task": "DelayPro", "rules": ("DelayPro", "fdgo")}, "repeats"),
        ({"task": "DelayPro", "timing": "elastic"}, "valid choices: scaled"),
        ({"task": "DelayPro", "mask": "half"}, "valid choices: ones"),
        ({"task": "DelayPro", "dt": 0}, "dt"),
        ({"task": "DelayPro", "input_noise": -1}, "input_noise"),
    ],
)
def test_bad_input_is_refused(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        DriscollTask(**kwargs)


def test_bad_trials_are_refused():
    task = DriscollTask("DelayPro", timing="absolute", dt=1.0, n_steps=40,
                        durations={"fixation": (5, 10), "stimulus": (5, 20), "response": (5, 10)})
    with pytest.raises(ValueError, match="non-negative"):
        task.trials([[10, -5, 5]], [0.0])
    with pytest.raises(ValueError, match="longer than n_steps=40"):
        task.trials([[10, 30, 5]], [0.0])
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        task.trials([[10, 5]], [0.0])
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(jr.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="valid choices: .*driscoll"):
        make_task("driscol")
