"""Yang et al. 2019 tasks: numbers against hand-derived trials and plain NumPy references.

Compilation is kept sparse: trial specifications are drawn eagerly and rendered through one
shared jitted renderer (one compilation per batch shape), so the 20 rules reuse compilations.
"""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import make_task, task_options
from nmrnn.tasks.yang import (
    EPOCHS,
    RULES,
    YangTask,
    common_n_steps,
    max_trial_steps,
    trial_correct,
)

PI = np.pi
DT = 20.0
PRE_ON, GRACE = 5, 5  # 100 ms at dt = 20 ms
N_TEST = 175  # one trial length for every rule in test mode (the longest is 3500 ms)
N_RANDOM = 209  # longest random-mode trial (delaydm: 600+600+1600+600+280+500 ms)


# ---------------------------------------------------------------------------------------------
# Independent NumPy references
# ---------------------------------------------------------------------------------------------


def np_tuning(loc):
    """0.8 exp(-d^2 / 2), d = circular distance to 2 pi k / 32 in units of pi / 8 (plain loop)."""
    out = np.zeros(32)
    for k in range(32):
        d = abs(loc - 2 * PI * k / 32)
        d = min(d, 2 * PI - d) / (PI / 8)
        out[k] = 0.8 * math.exp(-(d**2) / 2)
    return out


def reference_trial(n_steps, stims, fix_off, go, t_end, respond, response_loc, rule):
    """Inputs, targets and c_mask (unsquared) of one trial, step by step."""
    x = np.zeros((n_steps, 85))
    y = np.full((n_steps, 33), 0.05)
    c = np.zeros((n_steps, 33))
    for t in range(t_end):
        x[t, 0] = 1.0 if t < fix_off else 0.0
        for loc, strength, ring, on, off in stims:
            if on <= t < off and strength != 0:
                x[t, 1 + 32 * (ring - 1) : 1 + 32 * ring] += strength * np_tuning(loc)
        x[t, 65 + RULES.index(rule)] = 1.0
        y[t, 0] = 0.8 if (not respond or t < go) else 0.05
        if respond and t >= go:
            y[t, 1:] = 0.05 + np_tuning(response_loc)
        w = 0.0 if t < PRE_ON else 1.0 if t < go else 0.0 if t < go + GRACE else 5.0
        c[t, :] = w
        c[t, 0] = 2 * w
    return x, y, c


def reference_correct(outputs, y_loc, t_end):
    """Per-trial correctness of the reference metric, written out trial by trial."""
    correct = []
    for b in range(outputs.shape[0]):
        last = outputs[b, t_end[b] - 1]
        fixating = last[0] > 0.5
        ring = last[1:]
        cs = sum(ring[k] * math.cos(2 * PI * k / 32) for k in range(32)) / ring.sum()
        sn = sum(ring[k] * math.sin(2 * PI * k / 32) for k in range(32)) / ring.sum()
        loc = math.atan2(sn, cs) % (2 * PI)
        d = abs(y_loc[b] - loc)
        d = min(d, 2 * PI - d)
        if y_loc[b] < 0:
            correct.append(fixating)
        else:
            correct.append((not fixating) and d < 0.2 * PI)
    return np.array(correct)


def np_batch(batch):
    return (
        {k: np.asarray(v) for k, v in batch.info.items()},
        np.asarray(batch.inputs),
        np.asarray(batch.targets),
        np.asarray(batch.mask),
    )


# ---------------------------------------------------------------------------------------------
# Test mode: one trial per rule derived by hand from the reference's grid (dt = 20 ms)
# ---------------------------------------------------------------------------------------------
# rule: (grid index, stimuli [(loc, strength, ring, on, off)], fix_off, go, t_end, response, epochs)
_FD = {"fix1": (0, 25), "stim1": (25, 75), "go1": (75, 100)}
_REACT = {"fix1": (0, 100), "go1": (100, 125)}
_DELAY = {"fix1": (0, 25), "stim1": (25, 50), "delay1": (50, 100), "go1": (100, 125)}
_DM = {"fix1": (0, 25), "stim1": (25, 100), "go1": (100, 125)}
_CDM = {"fix1": (0, 25), "stim1": (25, 75), "go1": (75, 100)}
_DDM = {"fix1": (0, 25), "stim1": (25, 50), "delay1": (50, 100), "stim2": (100, 125),
        "delay2": (125, 135), "go1": (135, 150)}  # fmt: skip
_CDDM = {"fix1": (0, 25), "stim1": (25, 50), "delay1": (50, 100), "stim2": (100, 125),
         "delay2": (125, 150), "go1": (150, 175)}  # fmt: skip
_DMS = {"fix1": (0, 25), "stim1": (25, 50), "delay1": (50, 110), "go1": (110, 135)}
# grid index 3 of (20 directions x 2 rings): direction 2 pi / 20, ring 2
# grid index 7 of (20 x 5): direction 2 pi / 20, strength index 2
# grid index 47 of (20 x 5 x 5): direction 2 pi / 20, ring-1 strength index 4, ring-2 index 2
# grid index 6 of (20 x 2 x 2): direction index 1, stimulus 1 on ring 2, stimulus 2 on ring 1
_CTX_STIMS = [(0.1 * PI, 1.12, 1, 25, 75), (1.1 * PI, 0.88, 1, 25, 75),
              (0.1 * PI, 0.96, 2, 25, 75), (1.1 * PI, 1.04, 2, 25, 75)]  # fmt: skip
_CDD_STIMS = [(0.1 * PI, 1.12, 1, 25, 50), (1.1 * PI, 0.88, 1, 100, 125),
              (0.1 * PI, 0.96, 2, 25, 50), (1.1 * PI, 1.04, 2, 100, 125)]  # fmt: skip
TEST_CASES = {
    "fdgo": (3, [(0.1 * PI, 1.0, 2, 25, 100)], 75, 75, 100, 0.1 * PI, _FD),
    "fdanti": (3, [(0.1 * PI, 1.0, 2, 25, 100)], 75, 75, 100, 1.1 * PI, _FD),
    "reactgo": (3, [(0.1 * PI, 1.0, 2, 100, 125)], 125, 100, 125, 0.1 * PI, _REACT),
    "reactanti": (3, [(0.1 * PI, 1.0, 2, 100, 125)], 125, 100, 125, 1.1 * PI, _REACT),
    "delaygo": (3, [(0.1 * PI, 1.0, 2, 25, 50)], 100, 100, 125, 0.1 * PI, _DELAY),
    "delayanti": (3, [(0.1 * PI, 1.0, 2, 25, 50)], 100, 100, 125, 1.1 * PI, _DELAY),
    # strengths 0.8 + 0.4 * 2 / 5 = 0.96 vs 2 - 0.96 = 1.04: respond to stimulus 2
    "dm1": (
        7,
        [(0.1 * PI, 0.96, 1, 25, 100), (1.1 * PI, 1.04, 1, 25, 100)],
        100,
        100,
        125,
        1.1 * PI,
        _DM,
    ),  # fmt: skip
    "dm2": (
        7,
        [(0.1 * PI, 0.96, 2, 25, 100), (1.1 * PI, 1.04, 2, 25, 100)],
        100,
        100,
        125,
        1.1 * PI,
        _DM,
    ),  # fmt: skip
    # ring 1: 1.12 vs 0.88 (stimulus 1), ring 2: 0.96 vs 1.04 (stimulus 2), sum 2.08 vs 1.92
    "contextdm1": (47, _CTX_STIMS, 75, 75, 100, 0.1 * PI, _CDM),
    "contextdm2": (47, _CTX_STIMS, 75, 75, 100, 1.1 * PI, _CDM),
    "multidm": (47, _CTX_STIMS, 75, 75, 100, 0.1 * PI, _CDM),
    # strengths 0.5 + 1.0 * 2 / 5 = 0.9 vs 1.1
    "delaydm1": (
        7,
        [(0.1 * PI, 0.9, 1, 25, 50), (1.1 * PI, 1.1, 1, 100, 125)],
        135,
        135,
        150,
        1.1 * PI,
        _DDM,
    ),  # fmt: skip
    "delaydm2": (
        7,
        [(0.1 * PI, 0.9, 2, 25, 50), (1.1 * PI, 1.1, 2, 100, 125)],
        135,
        135,
        150,
        1.1 * PI,
        _DDM,
    ),  # fmt: skip
    "contextdelaydm1": (47, _CDD_STIMS, 150, 150, 175, 0.1 * PI, _CDDM),
    "contextdelaydm2": (47, _CDD_STIMS, 150, 150, 175, 1.1 * PI, _CDDM),
    "multidelaydm": (47, _CDD_STIMS, 150, 150, 175, 0.1 * PI, _CDDM),
    # match tasks: every test trial is a go trial; fixation input stays on
    "dmsgo": (
        6,
        [(0.1 * PI, 1.0, 2, 25, 50), (0.1 * PI, 1.0, 1, 110, 135)],
        135,
        110,
        135,
        0.1 * PI,
        _DMS,
    ),  # fmt: skip
    "dmsnogo": (
        6,
        [(0.1 * PI, 1.0, 2, 25, 50), (1.1 * PI, 1.0, 1, 110, 135)],
        135,
        110,
        135,
        1.1 * PI,
        _DMS,
    ),  # fmt: skip
    # dmc directions (0.1 + 0.8 k / 10) pi: k = 1 gives 0.18 pi
    "dmcgo": (
        6,
        [(0.18 * PI, 1.0, 2, 25, 50), (0.18 * PI, 1.0, 1, 110, 135)],
        135,
        110,
        135,
        0.18 * PI,
        _DMS,
    ),  # fmt: skip
    "dmcnogo": (
        6,
        [(0.18 * PI, 1.0, 2, 25, 50), (1.18 * PI, 1.0, 1, 110, 135)],
        135,
        110,
        135,
        1.18 * PI,
        _DMS,
    ),  # fmt: skip
}
GRID_SIZES = {"fd": 40, "react": 40, "delay": 40, "dm": 100, "contextdm": 500, "delaydm": 100,
              "contextdelaydm": 500, "dms": 80, "dmc": 80}  # fmt: skip


@pytest.fixture(scope="module")
def test_batches():
    """Noise-free test-mode grids of all 20 rules, with the raw (unsquared) c_mask."""
    out = {}
    for rule in RULES:
        raw = YangTask(rule, mode="test", sigma_x=0.0, n_steps=N_TEST, square_mask=False)
        out[rule] = (raw, raw.render(raw.trial_spec(jr.PRNGKey(0), raw.grid_size)))
    return out


def test_all_twenty_rules_and_shared_layout():
    assert len(RULES) == 20 and len(set(RULES)) == 20
    for rule in RULES:
        task = make_task("yang", rule=rule)
        assert (task.n_in, task.n_out) == (85, 33)
    assert TEST_CASES.keys() == set(RULES)
    assert "rule" in task_options("yang") and "mode" in task_options("yang")


@pytest.mark.parametrize("rule", RULES)
def test_test_mode_trial_matches_hand_derived_reference(rule, test_batches):
    task, batch = test_batches[rule]
    assert task.grid_size == GRID_SIZES[task.family]
    assert max_trial_steps(rule, "test") == TEST_CASES[rule][4]
    b, stims, fix_off, go, t_end, resp, epochs = TEST_CASES[rule]
    info, x, y, m = np_batch(batch)
    x_ref, y_ref, c_ref = reference_trial(N_TEST, stims, fix_off, go, t_end, True, resp, rule)
    np.testing.assert_allclose(x[b], x_ref, atol=2e-6)
    np.testing.assert_allclose(y[b], y_ref, atol=2e-6)
    np.testing.assert_array_equal(m[b], c_ref)

    # explicit values at the epoch boundaries
    assert m[b, PRE_ON - 1, 0] == 0 and m[b, PRE_ON, 0] == 2 and m[b, PRE_ON, 1] == 1
    assert m[b, go - 1, 5] == 1 and m[b, go, 5] == 0 and m[b, go + GRACE - 1, 5] == 0
    assert m[b, go + GRACE, 5] == 5 and m[b, go + GRACE, 0] == 10 and m[b, t_end - 1, 7] == 5
    assert np.all(m[b, t_end:] == 0) and np.all(x[b, t_end:] == 0)
    assert x[b, fix_off - 1, 0] == 1 and (fix_off == t_end or x[b, fix_off, 0] == 0)
    assert np.all(x[b, :t_end, 65 + RULES.index(rule)] == 1)
    assert y[b, go - 1, 0] == pytest.approx(0.8) and y[b, go, 0] == pytest.approx(0.05)
    peak = int(round(resp / (2 * PI / 32))) % 32
    d = abs(resp - 2 * PI * peak / 32) / (PI / 8)
    assert y[b, go, 1 + peak] == pytest.approx(0.05 + 0.8 * math.exp(-(d**2) / 2), abs=1e-6)
    assert np.all(y[b, go - 1, 1:] == np.float32(0.05))
    loc, strength, ring, on, off = stims[0]
    unit = 1 + 32 * (ring - 1) + int(round(loc / (2 * PI / 32))) % 32
    d = abs(loc - 2 * PI * (unit - 1 - 32 * (ring - 1)) / 32) / (PI / 8)
    assert x[b, on - 1, unit] == 0
    assert x[b, on, unit] == pytest.approx(strength * 0.8 * math.exp(-(d**2) / 2), abs=1e-6)

    # metadata
    assert info["t_end"][b] == t_end and info["go"][b] == go and info["fix_off"][b] == fix_off
    assert info["rule"][b] == RULES.index(rule) and info["respond"][b]
    assert info["y_loc"][b] == pytest.approx(resp, abs=1e-5)
    for i, name in enumerate(EPOCHS):
        assert tuple(info["epochs"][b, i]) == epochs.get(name, (-1, -1)), name


def test_default_mask_is_the_squared_cost_mask(test_batches):
    """The reference squares (c_mask * error); the default mask holds those weights, c_mask^2."""
    raw, batch = test_batches["fdgo"]
    sq = YangTask("fdgo", mode="test", sigma_x=0.0, n_steps=N_TEST)
    got = np.asarray(sq.render(raw.trial_spec(jr.PRNGKey(0), 40)).mask)
    np.testing.assert_array_equal(got, np.asarray(batch.mask) ** 2)
    assert set(np.unique(got)) == {0.0, 1.0, 4.0, 25.0, 100.0}


def test_first_and_last_grid_trials_follow_the_grid(test_batches):
    """Grid order is NumPy's unravel_index (last index fastest), as in the reference."""
    info = np_batch(test_batches["contextdm1"][1])[0]
    np.testing.assert_allclose(info["stim_strength"][0], [0.8, 1.2, 0.8, 1.2], atol=1e-6)
    np.testing.assert_allclose(info["stim_strength"][499], [1.12, 0.88, 1.12, 0.88], atol=1e-6)
    assert info["stim_loc"][499, 0] == pytest.approx(2 * PI * 19 / 20, abs=1e-5)
    info = np_batch(test_batches["fdgo"][1])[0]
    assert list(info["stim_ring"][:4, 0]) == [1, 2, 1, 2]


# ---------------------------------------------------------------------------------------------
# Metric
# ---------------------------------------------------------------------------------------------


def _roll_ring(y, k):
    return jnp.concatenate([y[..., :1], jnp.roll(y[..., 1:], k, axis=-1)], axis=-1)


@pytest.mark.parametrize("rule", RULES)
def test_percent_correct_on_perfect_rotated_and_fixation_breaking_outputs(rule, test_batches):
    task, batch = test_batches[rule]
    y = batch.targets
    perfect = task.evaluate(y, batch)
    assert float(perfect["perf"]) == 1.0 and float(perfect["perf_strict"]) == 1.0
    assert float(perfect["loss"]) == 0.0
    # 3 units = 0.1875 pi (inside the 0.2 pi tolerance); 4 units = 0.25 pi and 8 units (outside)
    assert float(task.evaluate(_roll_ring(y, 3), batch)["perf"]) == 1.0
    assert float(task.evaluate(_roll_ring(y, 4), batch)["perf"]) == 0.0
    assert float(task.evaluate(_roll_ring(y, -8), batch)["perf"]) == 0.0
    # fixation kept at the last step: every (go) trial fails
    t_last = np.asarray(batch.info["t_end"]) - 1
    held = y.at[jnp.arange(y.shape[0]), t_last, 0].set(0.9)
    assert float(task.evaluate(held, batch)["perf"]) == 0.0
    # fixation broken before go: the reference metric (last step only) does not see it, the
    # strict metric does
    early = y.at[:, PRE_ON + 1, 0].set(0.1)
    out = task.evaluate(early, batch)
    assert float(out["perf"]) == 1.0 and float(out["perf_strict"]) == 0.0


def test_metric_matches_reference_on_random_outputs(test_batches):
    _, batch = test_batches["dm1"]
    info = np_batch(batch)[0]
    key = jr.PRNGKey(3)
    # random outputs around the target: some trials right, some wrong
    outputs = batch.targets + 0.35 * jr.uniform(key, batch.targets.shape)
    outputs = outputs.at[:, :, 0].add(jr.uniform(jr.PRNGKey(4), (batch.batch_size, 1)) * 0.6)
    want = reference_correct(np.asarray(outputs, np.float64), info["y_loc"], info["t_end"])
    got = np.asarray(trial_correct(outputs, batch.info["y_loc"], batch.info["t_end"]))
    assert 5 < want.sum() < 95
    np.testing.assert_array_equal(got, want)
    perf = float(YangTask("dm1", mode="test").evaluate(outputs, batch)["perf"])
    assert perf == pytest.approx(want.mean(), abs=1e-6)


def test_metric_on_nogo_trials_and_variable_trial_ends():
    task = YangTask("dmsgo", sigma_x=0.0, independent_trials=True, n_steps=N_RANDOM)
    batch = task.render(task.trial_spec(jr.PRNGKey(5), 24))
    info = np_batch(batch)[0]
    assert 4 < info["respond"].sum() < 20 and len(np.unique(info["t_end"])) > 3
    assert float(task.evaluate(batch.targets, batch)["perf"]) == 1.0
    # reading the array end instead of each trial's end would be wrong
    y = np.asarray(batch.targets, np.float64)
    assert reference_correct(y, info["y_loc"], np.full(24, N_RANDOM)).mean() < 0.9
    # a no-go trial that releases fixation at its last step fails; go trials stay correct
    t_last = info["t_end"] - 1
    released = batch.targets.at[jnp.arange(24), t_last, 0].set(0.1)
    perf = float(task.evaluate(released, batch)["perf"])
    assert perf == pytest.approx(info["respond"].mean())


# ---------------------------------------------------------------------------------------------
# Random mode
# ---------------------------------------------------------------------------------------------

_C = (10, 20, 30)  # {200, 400, 600} ms in steps
_DELAYS = (10, 20, 40, 80)  # {200, 400, 800, 1600} ms
ALLOWED_STEPS = {  # per epoch, in steps of 20 ms
    "fd": (range(15, 35), range(25, 75), (25,)),
    "react": (range(25, 125), (25,)),
    "delay": ((15, 25, 35), _C, _DELAYS, (25,)),
    "dm": (range(5, 20), (20, 40, 80), (25,)),
    "contextdm": (range(5, 20), (20, 40, 80), (25,)),
    "delaydm": (_C, _C, _DELAYS, _C, range(5, 15), (25,)),
    "contextdelaydm": (_C, _C, _DELAYS, _C, range(5, 15), (25,)),
    "dms": (_C, _C, _DELAYS, (25,)),
    "dmc": (_C, _C, _DELAYS, _C),
}


def _spec(task, key, n=24):
    return {k: np.asarray(v) for k, v in task.trial_spec(key, n).items()}


def _circ(a, b):
    d = np.abs(np.mod(a - b, 2 * PI))
    return np.minimum(d, 2 * PI - d)


@pytest.mark.parametrize("rule", RULES)
def test_random_mode_deterministic_in_range_and_rendered_consistently(rule):
    task = YangTask(rule, sigma_x=0.0, n_steps=N_RANDOM)
    fam = task.family
    a, b, c = _spec(task, jr.PRNGKey(0)), _spec(task, jr.PRNGKey(0)), _spec(task, jr.PRNGKey(1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["stim_loc"], c["stim_loc"])

    # durations on Yang's grid, shared by the batch (drawn once per batch)
    ep = a["epochs"]
    present = [i for i in range(6) if ep[0, i, 0] >= 0]
    assert len(present) == len(ALLOWED_STEPS[fam])
    for i, allowed in zip(present, ALLOWED_STEPS[fam], strict=True):
        assert np.all(ep[:, i] == ep[0, i])
        assert int(ep[0, i, 1] - ep[0, i, 0]) in allowed
    assert np.all(a["t_end"] == ep[:, present[-1], 1]) and np.all(a["go"] == ep[:, 5, 0])
    assert max_trial_steps(rule) == sum(max(s) for s in ALLOWED_STEPS[fam])

    loc, s, ring = a["stim_loc"], a["stim_strength"], a["stim_ring"]
    if fam in ("fd", "react", "delay"):
        assert np.all(ring[:, 0] == ring[0, 0]) and ring[0, 0] in (1, 2)
        shift = PI if rule.endswith("anti") else 0.0
        np.testing.assert_allclose(_circ(a["response_loc"], loc[:, 0] + shift), 0, atol=1e-5)
        assert np.all(a["respond"])
    elif fam in ("dms", "dmc"):
        assert np.all(ring[:, :2] == ring[0, :2])
        match = a["match"].astype(bool)
        assert np.array_equal(a["respond"], match != rule.endswith("nogo"))
        if fam == "dms":
            assert np.array_equal(match, _circ(loc[:, 0], loc[:, 1]) < 1e-5)
            assert np.all(_circ(loc[~match, 0], loc[~match, 1]) >= PI / 9 - 1e-5)
        else:
            grid = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]) * PI
            assert np.all(np.min(np.abs(loc[:, :2, None] - grid), axis=-1) < 1e-5)
            assert np.array_equal(match, (loc[:, 0] < PI) == (loc[:, 1] < PI))
        np.testing.assert_allclose(a["y_loc"], np.where(a["respond"], loc[:, 1], -1), atol=1e-6)
    else:
        delayed = fam in ("delaydm", "contextdelaydm")
        cohs = np.array([0.08, 0.16, 0.32] if delayed else [0.01, 0.02, 0.04, 0.08])
        dist = _circ(loc[:, 0], loc[:, 1])
        assert np.all(dist >= 0.5 * PI - 1e-5)
        if rule.endswith(("1", "2")):
            r = int(rule[-1]) - 1
            att = s[:, [2 * r, 2 * r + 1]]
            if fam in ("dm", "delaydm"):  # the other ring is silent
                assert np.all(s[:, [2 * (1 - r), 2 * (1 - r) + 1]] == 0)
        else:  # multisensory: the sum over rings decides, each sum is mean +- coh
            att = s[:, [0, 1]] + s[:, [2, 3]]
            att = att / 2
        coh = np.abs(att[:, 0] - att[:, 1]) / 2
        assert np.all(np.min(np.abs(coh[:, None] - cohs), axis=1) < 1e-5)
        assert np.all((att.mean(axis=1) >= 0.8 - 1e-6) & (att.mean(axis=1) <= 1.2 + 1e-6))
        want = np.where(att[:, 0] > att[:, 1], loc[:, 0], loc[:, 1])
        np.testing.assert_allclose(a["response_loc"], want)

    # rendering agrees with the metadata (plain NumPy loop, three trials)
    batch = task.render(task.trial_spec(jr.PRNGKey(0), 24))
    _, x, y, m = np_batch(batch)
    for i in (0, 11, 23):
        stims = [(loc[i, k], s[i, k], ring[i, k], a["stim_on"][i, k], a["stim_off"][i, k])
                 for k in range(4) if ring[i, k] > 0]  # fmt: skip
        x_ref, y_ref, c_ref = reference_trial(
            N_RANDOM, stims, a["fix_off"][i], a["go"][i], a["t_end"][i], a["respond"][i],
            a["response_loc"][i], rule,
        )  # fmt: skip
        np.testing.assert_allclose(x[i], x_ref, atol=3e-6)
        np.testing.assert_allclose(y[i], y_ref, atol=2e-6)
        np.testing.assert_array_equal(m[i], c_ref**2)


def test_sample_is_jitted_render_of_trial_spec_and_deterministic():
    task = YangTask("reactgo")
    key = jr.PRNGKey(7)
    b1, b2 = task.sample(key, 32), task.sample(key, 32)
    b3 = task.sample(jr.PRNGKey(8), 32)
    np.testing.assert_array_equal(b1.inputs, b2.inputs)
    assert not np.array_equal(np.asarray(b1.inputs), np.asarray(b3.inputs))
    k_spec, k_noise = jr.split(key)
    ref = task.render(task.trial_spec(k_spec, 32), k_noise)
    np.testing.assert_allclose(b1.inputs, ref.inputs, atol=1e-6)
    np.testing.assert_array_equal(b1.mask, ref.mask)
    assert b1.n_steps == max_trial_steps("reactgo") == 149
    # inside an outer jit, as in the training loop
    b4 = jax.jit(lambda k: task.sample(k, 32))(key)
    np.testing.assert_allclose(b4.inputs, b1.inputs, atol=1e-6)


def test_independent_trials_draw_timing_per_trial():
    task = YangTask("delaygo", independent_trials=True, sigma_x=0.0)
    a = _spec(task, jr.PRNGKey(2), 64)
    assert len(np.unique(a["epochs"][:, 2, 1] - a["epochs"][:, 2, 0])) == 4
    assert set(np.unique(a["stim_ring"][:, 0])) == {1, 2}


def test_input_noise_scale_and_padding():
    """std = sigma_x * sqrt(2 / alpha) = 0.01 * sqrt(10) on every channel, none after t_end."""
    kw = {"mode": "test", "n_steps": N_TEST, "square_mask": False}
    clean, noisy = YangTask("fdgo", sigma_x=0.0, **kw), YangTask("fdgo", sigma_x=0.01, **kw)
    assert noisy.alpha == pytest.approx(0.2)
    assert noisy.input_noise_std == pytest.approx(0.01 * math.sqrt(10))
    spec = clean.trial_spec(jr.PRNGKey(0), 40)
    key = jr.PRNGKey(0)
    noisy_x = np.asarray(noisy.render(spec, key).inputs)
    diff = noisy_x - np.asarray(clean.render(spec, key).inputs)
    live = diff[:, :100]
    assert np.std(live) == pytest.approx(0.01 * math.sqrt(10), rel=0.02)
    assert abs(np.mean(live)) < 1e-3
    assert np.all(np.std(live, axis=(0, 1)) > 0.025)  # every channel, rule inputs included
    assert np.all(diff[:, 100:] == 0)
    np.testing.assert_array_equal(np.asarray(noisy.render(spec, key).inputs), noisy_x)
    assert not np.array_equal(np.asarray(noisy.render(spec, jr.PRNGKey(1)).inputs), noisy_x)


# ---------------------------------------------------------------------------------------------
# Psychometric mode, rule inputs, mixing rules
# ---------------------------------------------------------------------------------------------


def test_psychometric_dm_and_delaygo():
    p = {"stim1_locs": [0.0, 0.5 * PI], "stim2_locs": [PI, 1.5 * PI],
         "stim1_strengths": [1.1, 0.9], "stim2_strengths": [0.9, 1.1],
         "stim_time": 400}  # fmt: skip
    task = YangTask("dm1", mode="psychometric", params=p, sigma_x=0.0)
    batch = task.sample(jr.PRNGKey(0), 2)
    info, x, y, m = np_batch(batch)
    # fix1 300 ms, stim1 400 ms, go1 400 ms
    assert task.n_steps == 55 and list(info["epochs"][0, [0, 1, 5]].ravel()) == [
        0,
        15,
        15,
        35,
        35,
        55,
    ]
    np.testing.assert_allclose(info["y_loc"], [0.0, 1.5 * PI], atol=1e-6)
    x_ref, y_ref, c_ref = reference_trial(
        55, [(0.5 * PI, 0.9, 1, 15, 35), (1.5 * PI, 1.1, 1, 15, 35)], 35, 35, 55, True, 1.5 * PI,
        "dm1",
    )  # fmt: skip
    np.testing.assert_allclose(x[1], x_ref, atol=2e-6)
    np.testing.assert_allclose(y[1], y_ref, atol=2e-6)
    np.testing.assert_array_equal(m[1], c_ref**2)

    p = {"stim_locs": [1.0, 2.0], "stim_ons": 200, "stim_offs": 600, "delay_time": [200, 1000]}
    task = YangTask("delayanti", mode="psychometric", params=p, sigma_x=0.0)
    info, x, _, m = np_batch(task.sample(jr.PRNGKey(0), 2))
    assert task.n_steps == 100 and list(info["t_end"]) == [60, 100]
    assert list(info["go"]) == [40, 80]
    assert np.all(m[0, 60:] == 0) and m[0, 59, 3] == 25 and np.all(x[0, 60:] == 0)
    np.testing.assert_allclose(info["y_loc"], [1.0 + PI, 2.0 + PI], atol=1e-6)


def test_psychometric_match_and_contextdelay():
    p = {"stim1_locs": [1.0, 1.0], "stim2_locs": [1.0 + PI / 40, 1.0 + PI / 30]}
    task = YangTask("dmsgo", mode="psychometric", params=p)
    info = _spec(task, jr.PRNGKey(0), 2)
    # within 5 degrees = match (respond); 6 degrees = non-match (fixate)
    assert list(info["respond"]) == [True, False] and info["y_loc"][1] == -1
    assert list(info["epochs"][0, [0, 1, 2, 5]].ravel()) == [0, 25, 25, 40, 40, 100, 100, 125]
    p = dict.fromkeys(
        ("stim1_mod1_strengths", "stim2_mod1_strengths", "stim1_mod2_strengths",
         "stim2_mod2_strengths"), 1.0)  # fmt: skip
    p.update(stim1_locs=[0.0], stim2_locs=[PI], stim_time=1000, stim2_mod1_strengths=[1.2])
    info = _spec(YangTask("contextdelaydm1", mode="psychometric", params=p), jr.PRNGKey(0), 1)
    assert list(info["epochs"][0].ravel()) == [0, 15, 15, 30, 30, 80, 80, 95, 95, 105, 105, 120]
    assert info["y_loc"][0] == pytest.approx(PI, abs=1e-6)


def test_rule_mixing_and_rule_window():
    task = YangTask("dm1", mode="test", sigma_x=0.0, replace_rule=["dm1", "dm2"],
                    rule_strength=[0.5, 0.75], rule_on=100, rule_off=400)  # fmt: skip
    x = np.asarray(task.sample(jr.PRNGKey(0), 3).inputs)
    want = np.zeros((125, 20))
    want[5:20, 6], want[5:20, 7] = 0.5, 0.75
    np.testing.assert_array_equal(x[:, :, 65:], np.broadcast_to(want, (3, 125, 20)))
    x = np.asarray(YangTask("dm1", mode="test", sigma_x=0.0, replace_rule="fdgo").sample(
        jr.PRNGKey(0), 1).inputs)  # fmt: skip
    assert np.all(x[0, :, 65] == 1) and np.all(x[0, :, 71] == 0)


def test_batches_of_different_rules_concatenate():
    n = common_n_steps()
    assert n == N_RANDOM
    tasks = [YangTask(r, n_steps=n, sigma_x=0.0) for r in ("fdgo", "dmcnogo")]
    parts = [t.render(t.trial_spec(jr.PRNGKey(i), 24)) for i, t in enumerate(tasks)]
    mixed = jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
    assert mixed.inputs.shape == (48, n, 85)
    assert list(np.asarray(mixed.info["rule"])) == [0] * 24 + [19] * 24
    assert float(tasks[0].evaluate(mixed.targets, mixed)["perf"]) == 1.0


def test_evaluation_batches():
    task = YangTask("reactgo")
    sets = task.evaluation_batches(jr.PRNGKey(0))
    b = sets["random"]
    assert b.batch_size == 512
    assert len(np.unique(np.asarray(b.info["t_end"]))) > 1  # 16 batches, each its own timing
    assert YangTask("reactgo", mode="test").grid_size == 40


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

_DM_P = {"stim1_locs": [0.0], "stim2_locs": [PI], "stim1_strengths": [1.0],
         "stim2_strengths": [1.1], "stim_time": 400}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rule": "fdgoo"}, "unknown Yang rule 'fdgoo'; valid choices: fdgo, reactgo"),
        ({"mode": "train"}, "unknown mode 'train'; valid choices: random, test, psychometric"),
        ({"dt": 30}, "dt=30.0 ms does not divide the 100 ms grid"),
        ({"dt": 0}, "dt must be a positive number"),
        ({"dt": 100, "tau": 50}, "dt=100.0 is larger than tau=50.0"),
        ({"sigma_x": -0.1}, "sigma_x must be a non-negative number"),
        ({"rule": "delaydm1", "n_steps": 150}, "n_steps=150 is shorter than the longest"),
        ({"n_steps": 0}, "n_steps must be a positive integer"),
        ({"params": _DM_P}, "params are only used in mode 'psychometric'"),
        ({"rule": "dm1", "mode": "psychometric"}, "needs params for rule 'dm1'"),
        (
            {"rule": "dm1", "mode": "psychometric", "params": {**_DM_P, "stim_tim": 1}},
            "unknown option.*stim_tim",
        ),  # fmt: skip
        (
            {
                "rule": "dm1",
                "mode": "psychometric",
                "params": {k: v for k, v in _DM_P.items() if k != "stim_time"},
            },
            "lack stim_time",
        ),
        (
            {"rule": "dm1", "mode": "psychometric", "params": {**_DM_P, "stim_time": -200}},
            "must be a non-negative duration",
        ),  # fmt: skip
        (
            {"rule": "dm1", "mode": "psychometric", "params": {**_DM_P, "stim_time": 410}},
            "not a multiple of dt",
        ),  # fmt: skip
        (
            {"rule": "dm1", "mode": "psychometric", "params": {**_DM_P, "stim1_locs": [0.0, 1.0]}},
            "one common length",
        ),  # fmt: skip
        (
            {
                "rule": "delaygo",
                "mode": "psychometric",
                "params": {"stim_locs": [0.0], "stim_ons": 600, "stim_offs": 200, "delay_time": 0},
            },
            "negative epoch durations \\(stim1\\)",
        ),  # fmt: skip
        ({"replace_rule": "go"}, "unknown rule in replace_rule 'go'"),
        ({"replace_rule": ["dm1", "dm2"], "rule_strength": 1.0}, "rule_strength has 1 value"),
        ({"rule_strength": "strong"}, "rule_strength must be a number"),
        ({"rule_strength": float("nan")}, "rule_strength must hold finite numbers"),
        ({"rule_on": 400, "rule_off": 200}, "rule_off=200 ms must come after rule_on=400 ms"),
        ({"rule_on": -20}, "rule_on must be a non-negative duration"),
    ],
)
def test_bad_input_is_refused_early(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YangTask(**kwargs)


def test_bad_input_elsewhere():
    with pytest.raises(ValueError, match="valid choices: fdgo"):
        make_task("yang", rule="nope")
    with pytest.raises(ValueError, match="unknown option"):
        make_task("yang", rule="fdgo", bogus=1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        YangTask("fdgo").sample(jr.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="dt=3.0 ms does not divide"):
        max_trial_steps("fdgo", dt=3)
    # the constructor's checks come before any compilation
    assert YangTask("fdgo", dt=10).n_steps == 69 + 149 + 50  # U[300,700) + U[500,1500) + 500 ms
