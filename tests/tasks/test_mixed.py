"""Mixed-task batches: per-trial ids, exact per-trial content, per-task metrics, bad input."""

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model
from nmrnn.tasks import (
    DRISCOLL_TASKS,
    NMRNN_RULES,
    DriscollMultitask,
    DriscollTask,
    MixedTask,
    make_task,
)
from nmrnn.tasks.base import masked_mse
from nmrnn.tasks.driscoll import TrialConditions
from nmrnn.train import TrainConfig, fit


def test_general_path_takes_each_trial_from_its_own_task():
    # different masks -> no shared rendering: each task makes the whole batch, trials selected
    tasks = [DriscollTask("DelayPro"), DriscollTask("ReactAnti", mask="driscoll")]
    mixed = MixedTask(tasks)
    assert not mixed.shares_rendering
    key = jr.PRNGKey(3)
    b = mixed.sample(key, 32)
    # reference: the documented key use (ids, task keys, noise) and a plain per-trial loop
    k_ids, k_tasks, _ = jr.split(key, 3)
    ids = np.asarray(mixed.sample_ids(k_ids, 32))
    np.testing.assert_array_equal(np.asarray(b.info["task_id"]), ids)
    assert 0 < ids.sum() < 32
    subs = [t.sample(k, 32) for t, k in zip(tasks, jr.split(k_tasks, 2), strict=True)]
    for i in range(32):
        src = subs[ids[i]]
        np.testing.assert_array_equal(np.asarray(b.inputs[i]), np.asarray(src.inputs[i]))
        np.testing.assert_array_equal(np.asarray(b.targets[i]), np.asarray(src.targets[i]))
        np.testing.assert_array_equal(np.asarray(b.mask[i]), np.asarray(src.mask[i]))
        assert float(b.info["target_angle"][i]) == float(src.info["target_angle"][i])


def test_shared_rendering_trials_follow_their_task():
    names = ("DelayPro", "DelayAnti", "MemoryPro", "ReactMatch2Sample")
    mixed = MixedTask([DriscollTask(n) for n in names])
    assert mixed.shares_rendering
    b = mixed.sample(jr.PRNGKey(0), 512)
    ids = np.asarray(b.info["task_id"])
    assert set(ids.tolist()) == {0, 1, 2, 3}
    rule = np.asarray(b.inputs[:, 0, 5:]).argmax(-1)
    np.testing.assert_array_equal(rule, [DRISCOLL_TASKS.index(names[i]) for i in ids])
    th = np.asarray(b.info["theta"][:, 0])
    tgt = np.asarray(b.info["target_angle"])
    d = np.mod(tgt - th, 2 * np.pi)
    assert np.allclose(d[ids == 0], 0, atol=1e-5)
    assert np.allclose(d[ids == 1], np.pi, atol=1e-5)
    on, off = np.asarray(b.info["stim_off"][:, 0]), np.asarray(b.info["go"])
    assert np.all(on[ids == 2] < off[ids == 2])  # memory: stimulus off before the go cue
    assert np.all(on[ids == 0] == 100)  # delay: stimulus stays on
    fix_in = np.asarray(b.inputs[:, -1, 0])
    assert np.all(fix_in[ids == 3] == 1) and np.all(fix_in[ids != 3] == 0)
    # each trial equals its own task's rendering of the trial's conditions
    for t in range(4):
        sel = np.flatnonzero(ids == t)[:3]
        sub = b.take(sel)
        cond = TrialConditions(**{k: sub.info[k] for k in TrialConditions._fields
                                  if k != "grace"}, grace=np.zeros(len(sel), np.int32))
        own = mixed.tasks[t].render(cond)
        np.testing.assert_array_equal(np.asarray(own.inputs), np.asarray(sub.inputs))
        np.testing.assert_array_equal(np.asarray(own.targets), np.asarray(sub.targets))
        assert mixed.tasks[t].evaluate(sub.targets, sub)["percent_correct"] == 100.0


def test_weights_and_determinism_and_jit():
    mixed = MixedTask([DriscollTask("DelayPro"), DriscollTask("MemoryPro")], weights=(3, 1))
    b = mixed.sample(jr.PRNGKey(0), 1024)
    frac = np.mean(np.asarray(b.info["task_id"]) == 0)
    assert frac == pytest.approx(0.75, abs=0.04)
    only = MixedTask([DriscollTask("DelayPro"), DriscollTask("MemoryPro")], weights=(0, 1))
    assert np.all(np.asarray(only.sample(jr.PRNGKey(0), 1024).info["task_id"]) == 1)
    a1, a2 = mixed.sample(jr.PRNGKey(5), 1024), mixed.sample(jr.PRNGKey(5), 1024)
    c = mixed.sample(jr.PRNGKey(6), 1024)
    np.testing.assert_array_equal(np.asarray(a1.inputs), np.asarray(a2.inputs))
    assert not np.array_equal(np.asarray(a1.inputs), np.asarray(c.inputs))
    j = jax.jit(lambda k: mixed.sample(k, 1024))(jr.PRNGKey(5))
    np.testing.assert_allclose(np.asarray(j.inputs), np.asarray(a1.inputs), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(j.info["task_id"]), np.asarray(a1.info["task_id"]))


def test_per_task_metrics():
    mixed = MixedTask([DriscollTask("DelayPro"), DriscollTask("MemoryAnti")])
    b = mixed.sample(jr.PRNGKey(1), 64)
    ids = np.asarray(b.info["task_id"])
    out = np.asarray(b.targets).copy()
    # rotate the response of every MemoryAnti trial by 0.5 rad (> pi/10): all wrong
    th = 0.5
    s, c = out[ids == 1, :, 1].copy(), out[ids == 1, :, 2].copy()
    out[ids == 1, :, 1] = s * np.cos(th) + c * np.sin(th)
    out[ids == 1, :, 2] = c * np.cos(th) - s * np.sin(th)
    m = mixed.evaluate(out, b)
    assert m["DelayPro/percent_correct"] == 100.0
    assert m["MemoryAnti/percent_correct"] == 0.0
    n0 = int(np.sum(ids == 0))
    assert m["n_trials/DelayPro"] == n0 and m["n_trials/MemoryAnti"] == 64 - n0
    assert m["percent_correct"] == pytest.approx(100.0 * n0 / 64)
    assert m["loss"] == pytest.approx(float(masked_mse(out, b.targets, b.mask)), rel=1e-6)
    assert m["DelayPro/loss"] == 0.0 and m["MemoryAnti/loss"] > 0
    with pytest.raises(ValueError, match="task_id"):
        mixed.evaluate(out, DriscollTask("DelayPro").sample(jr.PRNGKey(0), 4))


def test_sample_each_and_evaluation_batches():
    mixed = MixedTask([DriscollTask("DelayPro"), DriscollTask("ReactPro")])
    n = mixed.default_batch_size
    b = mixed.sample_each(jr.PRNGKey(0), n)
    np.testing.assert_array_equal(np.asarray(b.info["task_id"]), [0] * n + [1] * n)
    assert np.all(np.asarray(b.inputs[:n, -1, 0]) == 0) and np.all(b.inputs[n:, -1, 0] == 1)
    ev = mixed.evaluation_batches(jr.PRNGKey(0))["test"]
    assert ev.batch_size == 2 * mixed.default_batch_size


def test_driscoll_multitask_layout_fixed_set_and_registry():
    train = DriscollMultitask(("DelayPro", "DelayAnti", "MemoryPro"), rules=NMRNN_RULES,
                              n_modalities=1, n_train=48, n_test=7)
    retrain = DriscollMultitask(("MemoryAnti",), rules=NMRNN_RULES, n_modalities=1)
    assert train.n_in == retrain.n_in == 7
    assert train.context_channels == (3, 4, 5, 6) and train.sensory_channels == (0, 1, 2)
    f1, f2 = train.fixed_batch(), train.fixed_batch()
    assert f1.batch_size == 48
    np.testing.assert_array_equal(np.asarray(f1.inputs), np.asarray(f2.inputs))
    assert retrain.fixed_batch() is None
    ev = train.evaluation_batches(jr.PRNGKey(0))["test"]
    assert ev.batch_size == 21
    r = retrain.sample(jr.PRNGKey(0), 16)
    assert np.all(np.asarray(r.inputs[..., 6]) == 1)  # the MemoryAnti channel
    t = make_task("driscoll_multitask", tasks=["DelayPro", "MemoryPro"], timing="absolute",
                  durations={"delay": (200, 400)})
    # absolute timing: one length for all, the longest task's; delay only shapes MemoryPro
    assert t.n_steps == 35 + 80 + 20 + 35
    assert t.tasks[1].periods[2] == ("delay", 200.0, 400.0)


@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda: MixedTask([]), "at least one"),
        (lambda: MixedTask([DriscollTask("DelayPro"), "MemoryPro"]), "not a task"),
        (lambda: MixedTask([DriscollTask("DelayPro"),
                            DriscollTask("MemoryPro", rules=NMRNN_RULES)]), "same n_in"),
        (lambda: MixedTask([DriscollTask("DelayPro"), DriscollTask("MemoryPro", n_steps=50)]),
         "same n_steps"),
        (lambda: MixedTask([DriscollTask("DelayPro")], weights=(1, 2)), "2 weights for 1"),
        (lambda: MixedTask([DriscollTask("DelayPro")], weights=(0,)), "not all be zero"),
        (lambda: MixedTask([DriscollTask("DelayPro")], weights=(-1,)), "non-negative"),
        (lambda: DriscollMultitask(("DelayPro", "DelayPro")), "repeats"),
        (lambda: DriscollMultitask(("DelayPro", "Nope")), "valid names"),
        (lambda: DriscollMultitask(("DelayPro",), durations={"stimulus2": (1, 2)}),
         "valid periods"),
    ],
)
def test_bad_input(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_mixed_batches_train_inside_the_compiled_loop():
    task = DriscollMultitask(("DelayPro", "DelayAnti"), rules=NMRNN_RULES, n_modalities=1,
                             n_steps=30)
    model = make_model("vanilla", n_in=task.n_in, n_out=task.n_out, n_hidden=16,
                       key=jr.PRNGKey(0))
    res = fit(model, task, TrainConfig(steps=60, lr=1e-2, batch_size=16, steps_per_call=60),
              key=jr.PRNGKey(1))
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-10:].mean() < 0.5 * res.losses[:3].mean()
