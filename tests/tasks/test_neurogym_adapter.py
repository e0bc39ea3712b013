"""The neurogym adapter against neurogym itself, its conventions, and training on its batches."""

import importlib.util
import sys
import warnings

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model, simulate
from nmrnn.tasks import NeurogymTask, make_task
from nmrnn.tasks.neurogym_adapter import seed_from_key_data
from nmrnn.train import TrainConfig, fit

HAVE_NEUROGYM = importlib.util.find_spec("neurogym") is not None
if HAVE_NEUROGYM:
    import neurogym as ngym
# Everything but the missing-package test needs the optional extra nmrnn[neurogym].
needs_neurogym = pytest.mark.skipif(not HAVE_NEUROGYM, reason="needs the extra nmrnn[neurogym]")

PDM = "PerceptualDecisionMaking-v0"


def reference_trials(env_id, seed, n, env_kwargs=None):
    """Trials straight from neurogym: a fresh environment seeded with ``seed``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = ngym.make(env_id, **(env_kwargs or {}))
        env.seed(seed)
        out = []
        for _ in range(n):
            env.new_trial()
            out.append((np.array(env.ob, np.float32), np.array(env.gt)))
    return out


@needs_neurogym
def test_single_mode_rows_are_neurogym_trials():
    task = NeurogymTask(PDM, n_steps=25)  # trials are 22 steps at dt = 100 ms
    key = jr.PRNGKey(4)
    b = task.sample(key, 6)
    ref = reference_trials(PDM, seed_from_key_data(key), 6)
    assert task.n_in == 3 and task.n_out == 3 and task.fixation_action == 0
    for i, (ob, gt) in enumerate(ref):
        n = ob.shape[0]
        assert n == 22 and int(b.info["trial_length"][i]) == 22
        np.testing.assert_array_equal(np.asarray(b.inputs[i, :n]), ob)
        np.testing.assert_array_equal(np.asarray(b.inputs[i, n:]), 0)
        np.testing.assert_array_equal(np.asarray(b.targets[i, :n]), np.eye(3)[gt])
        np.testing.assert_array_equal(np.asarray(b.info["gt"][i, :n]), gt)
        np.testing.assert_array_equal(np.asarray(b.mask[i, :n]), 1)
        np.testing.assert_array_equal(np.asarray(b.mask[i, n:]), 0)
        assert bool(b.info["new_trial"][i, 0]) and not np.asarray(b.info["new_trial"][i, 1:]).any()


@needs_neurogym
def test_stream_mode_and_decision_mask():
    task = NeurogymTask(PDM, n_steps=50, mode="stream", mask="decision")
    key = jr.PRNGKey(1)
    b = task.sample(key, 2)
    ref = reference_trials(PDM, seed_from_key_data(key), 6)  # 3 trials per row (22 + 22 + 6)
    for row in range(2):
        obs = np.concatenate([r[0] for r in ref[3 * row : 3 * row + 3]])[:50]
        gt = np.concatenate([r[1] for r in ref[3 * row : 3 * row + 3]])[:50]
        np.testing.assert_array_equal(np.asarray(b.inputs[row]), obs)
        np.testing.assert_array_equal(np.asarray(b.mask[row, :, 0]), (gt != 0).astype(float))
        np.testing.assert_array_equal(np.flatnonzero(np.asarray(b.info["new_trial"][row])),
                                      [0, 22, 44])


@needs_neurogym
def test_truncation_fixed_length_and_continuous_actions():
    short = NeurogymTask(PDM, n_steps=10)
    b = short.sample(jr.PRNGKey(0), 3)
    assert np.all(np.asarray(b.info["trial_length"]) == 22)  # longer than n_steps: cut
    assert np.all(np.asarray(b.mask) == 1)
    dms = NeurogymTask("DelayMatchSample-v0")  # all periods fixed: n_steps from the timing
    assert dms.n_steps == (300 + 500 + 1000 + 500 + 900) // 100
    reach = NeurogymTask("ReachingDelayResponse-v0", n_steps=40)
    assert not reach.discrete and reach.n_out == 2
    key = jr.PRNGKey(2)
    rb = reach.sample(key, 2)
    (ob, gt), _ = reference_trials("ReachingDelayResponse-v0", seed_from_key_data(key), 2)
    n = min(ob.shape[0], 40)
    np.testing.assert_allclose(np.asarray(rb.targets[0, :n]), gt[:n])
    assert set(reach.evaluate(rb.targets, rb)) == {"loss"}


@needs_neurogym
def test_deterministic_varies_and_runs_under_jit():
    task = NeurogymTask(PDM, n_steps=22)
    a, b = task.sample(jr.PRNGKey(0), 8), task.sample(jr.PRNGKey(0), 8)
    c = task.sample(jr.PRNGKey(1), 8)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    assert not np.array_equal(np.asarray(a.inputs), np.asarray(c.inputs))
    j = jax.jit(lambda k: task.sample(k, 8))(jr.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(j.inputs), np.asarray(a.inputs))
    np.testing.assert_array_equal(np.asarray(task.generate(seed_from_key_data(jr.PRNGKey(0)), 8)
                                             .targets), np.asarray(a.targets))


@needs_neurogym
def test_metrics_on_hand_made_outputs():
    task = NeurogymTask(PDM, n_steps=22)
    b = task.sample(jr.PRNGKey(0), 4)
    perfect = np.asarray(b.targets)
    m = task.evaluate(perfect, b)
    assert m == {"loss": 0.0, "accuracy": 1.0, "decision_accuracy": 1.0, "choice_accuracy": 1.0}
    always_fix = np.zeros_like(perfect)
    always_fix[..., 0] = 1.0
    m = task.evaluate(always_fix, b)
    assert m["accuracy"] == pytest.approx(21 / 22)  # one decision step per 22-step trial
    assert m["decision_accuracy"] == 0.0
    # choice: on the even trials the right choice unit gets 0.4, the wrong one 0.6
    choose = np.zeros_like(perfect)
    gt = np.asarray(b.info["gt"])
    choose[..., 1:] = 0.5
    choose[0::2, :, 1:] -= 0.1 * np.eye(3)[gt[0::2]][..., 1:] - 0.1 * (1 - np.eye(3)[gt[0::2]][..., 1:])
    choose[1::2] = perfect[1::2]
    assert task.evaluate(choose, b)["choice_accuracy"] == 0.5
    # loss: each decision step misses two unit entries out of 3 * 22 per trial
    assert m["loss"] == pytest.approx(2 / 66)


@needs_neurogym
def test_bad_input():
    with pytest.raises(ValueError, match="valid choices: .*PerceptualDecisionMaking-v0"):
        NeurogymTask("PerceptualDecisionMakin-v0", n_steps=10)
    with pytest.raises(ValueError, match="valid choices: single"):
        NeurogymTask(PDM, n_steps=10, mode="batch")
    with pytest.raises(ValueError, match="n_steps"):
        NeurogymTask(PDM, n_steps=0)
    with pytest.raises(ValueError, match="give n_steps"):
        NeurogymTask("ReadySetGo-v0")
    with pytest.raises(ValueError, match="discrete action space"):
        NeurogymTask("ReachingDelayResponse-v0", n_steps=10, mask="decision")
    with pytest.raises(ValueError, match="gymnasium.Env"):
        NeurogymTask(object(), n_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = ngym.make(PDM)
    with pytest.raises(ValueError, match="env_kwargs"):
        NeurogymTask(env, n_steps=10, env_kwargs={"dt": 20})
    assert NeurogymTask(env, n_steps=22).name == "PerceptualDecisionMaking"
    with pytest.raises(ValueError, match="batch_size"):
        NeurogymTask(PDM, n_steps=22).sample(jr.PRNGKey(0), 0)


def test_missing_neurogym_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "neurogym", None)
    with pytest.raises(ImportError, match=r"pip install nmrnn\[neurogym\]"):
        NeurogymTask(PDM, n_steps=22)


@needs_neurogym
def test_a_model_trains_on_neurogym_batches():
    task = make_task("neurogym", env=PDM, n_steps=22)
    model = make_model("vanilla", n_in=task.n_in, n_out=task.n_out, n_hidden=32,
                       key=jr.PRNGKey(0))
    res = fit(model, task, TrainConfig(steps=150, lr=1e-2, batch_size=32, steps_per_call=50),
              key=jr.PRNGKey(1))
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-10:].mean() < 0.1 * res.losses[:3].mean()
    test = task.sample(jr.PRNGKey(123), 256)
    before = task.evaluate(simulate(model, test.inputs).outputs, test)
    after = task.evaluate(simulate(res.model, test.inputs).outputs, test)
    assert after["loss"] < 0.1 * before["loss"]
    assert after["accuracy"] > 0.95  # fixation learnt
    assert after["choice_accuracy"] > 0.6 and before["choice_accuracy"] < 0.6
