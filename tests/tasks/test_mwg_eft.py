import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import ElementFinder, MeasureWaitGo, make_task


def test_mwg_trial_matches_hand_computed_values():
    task = MeasureWaitGo()
    b = task.trials([12], [10])
    x, y = np.asarray(b.inputs[0]), np.asarray(b.targets[0, :, 0])
    # pulses of 10 at measure (10), wait (10 + 12 = 22) and go (22 + 15 = 37), zero elsewhere
    assert x[10, 0] == 10 and x[22, 1] == 10 and x[37, 2] == 10
    assert np.count_nonzero(x) == 3
    # -0.5 until go, linear ramp over 12 steps, then +0.5
    assert y[0] == -0.5 and y[36] == -0.5 and y[37] == -0.5
    assert y[43] == pytest.approx(0.0)  # half-way
    assert y[40] == pytest.approx(-0.5 + 3 / 12)
    assert y[49] == pytest.approx(0.5) and y[109] == pytest.approx(0.5)
    assert np.all(np.asarray(b.mask) == 1)
    assert int(b.info["t_go"][0]) == 37


def test_mwg_training_and_extrapolation_sets():
    task = MeasureWaitGo()
    fixed = task.fixed_batch()
    assert fixed.inputs.shape == (40, 110, 3)
    pairs = set(zip(np.asarray(fixed.info["interval"]).tolist(), np.asarray(fixed.info["t_measure"]).tolist(), strict=True))
    assert pairs == {(i, m) for i in (12, 14, 16, 18) for m in range(10, 20)}
    ext = task.extrapolation_batch()
    assert np.asarray(ext.info["interval"]).tolist() == [4, 6, 8, 10, 20, 22, 24, 26]
    assert np.all(np.asarray(ext.info["t_measure"]) == 15)


def test_mwg_sample_deterministic_and_in_range():
    task = MeasureWaitGo()
    a, b = task.sample(jr.PRNGKey(0), 64), task.sample(jr.PRNGKey(0), 64)
    c = task.sample(jr.PRNGKey(1), 64)
    assert np.array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    assert set(np.asarray(a.info["interval"]).tolist()) <= {12, 14, 16, 18}
    tm = np.asarray(a.info["t_measure"])
    assert tm.min() >= 10 and tm.max() <= 19


def test_mwg_metric_per_interval():
    task = MeasureWaitGo()
    b = task.test_batch([4, 12])
    out = np.asarray(b.targets).copy()
    out[0] += 0.1  # constant error 0.1 on the interval-4 trial
    m = task.evaluate(jnp.asarray(out), b)
    assert m["loss_4"] == pytest.approx(0.01, rel=1e-5)
    assert m["loss_12"] == 0.0
    assert m["loss"] == pytest.approx(0.005, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"intervals": (12, -1)}, "interval"),
        ({"intervals": ()}, "at least one"),
        ({"delay": 0}, "delay"),
        ({"n_steps": 50}, "beyond the last step"),
        ({"measure_range": (19, 10)}, "measure_range"),
    ],
)
def test_mwg_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        MeasureWaitGo(**kwargs)


def test_mwg_test_interval_too_long_is_refused():
    with pytest.raises(ValueError, match="beyond the last step"):
        MeasureWaitGo().test_batch([60])


def test_eft_trial_matches_hand_computed_values():
    task = ElementFinder()
    values = np.arange(25) - 12  # -12..12 (any values work for the construction)
    b = task.trials([3], [values])
    x = np.asarray(b.inputs[0, :, 0])
    assert x[0] == 3 and np.array_equal(x[1:], values)
    assert float(b.targets[0, -1, 0]) == values[3]
    mask = np.asarray(b.mask[0, :, 0])
    assert mask[-1] == 1 and mask[:-1].sum() == 0
    assert task.n_steps == 26


def test_eft_sample_ranges_and_answer():
    b = ElementFinder().sample(jr.PRNGKey(3), 512)
    x = np.asarray(b.inputs[..., 0])
    q = x[:, 0].astype(int)
    assert q.min() >= 0 and q.max() <= 24
    assert x[:, 1:].min() >= -10 and x[:, 1:].max() <= 10
    assert np.array_equal(np.asarray(b.targets[:, -1, 0]), x[np.arange(512), q + 1])


def test_eft_deterministic_and_varies():
    t = ElementFinder()
    assert np.array_equal(t.sample(jr.PRNGKey(0), 8).inputs, t.sample(jr.PRNGKey(0), 8).inputs)
    assert not np.array_equal(t.sample(jr.PRNGKey(0), 8).inputs, t.sample(jr.PRNGKey(1), 8).inputs)


def test_unknown_task_and_option_are_refused():
    with pytest.raises(ValueError, match="valid choices: .*mwg"):
        make_task("nope")
    with pytest.raises(ValueError, match="unknown option"):
        make_task("mwg", interval=3)
    with pytest.raises(ValueError, match="batch_size"):
        MeasureWaitGo().sample(jr.PRNGKey(0), 0)


def test_mwg_mask_pad_scores_only_around_the_ramp():
    task = MeasureWaitGo(mask_pad=3)
    b = task.trials([12], [10])  # go at 37; max interval 18: mask on [34, 58)
    m = np.asarray(b.mask[0, :, 0])
    assert m[34] == 1 and m[57] == 1 and m[33] == 0 and m[58] == 0
    assert m.sum() == 58 - 34
    with pytest.raises(ValueError, match="mask_pad"):
        MeasureWaitGo(mask_pad=-1)


def test_mwg_delay_range_varies_the_delay_at_a_fixed_measure_time():
    task = MeasureWaitGo(delay_range=(10, 19))
    fixed = task.fixed_batch()
    pairs = set(zip(np.asarray(fixed.info["interval"]).tolist(), np.asarray(fixed.info["delay"]).tolist(), strict=True))
    assert pairs == {(i, d) for i in (12, 14, 16, 18) for d in range(10, 20)}
    assert np.all(np.asarray(fixed.info["t_measure"]) == 10)
    b = task.trials([12], [10], [11])  # wait at 22, go at 33
    x = np.asarray(b.inputs[0])
    assert x[10, 0] == 10 and x[22, 1] == 10 and x[33, 2] == 10
    s = task.sample(jr.PRNGKey(0), 256)
    d = np.asarray(s.info["delay"])
    assert d.min() >= 10 and d.max() <= 19 and len(set(d.tolist())) > 5
    assert np.all(np.asarray(task.extrapolation_batch().info["delay"]) == 15)
    with pytest.raises(ValueError, match="delay_range"):
        MeasureWaitGo(delay_range=(19, 10))
