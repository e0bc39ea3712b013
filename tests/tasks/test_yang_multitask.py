"""Batches of several Yang rules (``yang_multitask``): every trial is its own rule's trial, the
rules are drawn with the reference's probabilities, per trial or per batch, and the metrics are
each rule's own."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.tasks import YangMultitask, YangTask, make_task
from nmrnn.tasks.yang import RULES, YANG_ALL_RULE_PROBS, common_n_steps
from nmrnn.train import TrainConfig, fit

FEW = ("fdgo", "delayanti", "contextdm1", "dmsnogo")  # one rule of four families


def _trial(spec, i):
    return {k: v[i : i + 1] for k, v in spec.items() if k != "task_id"}


def test_every_trial_is_its_own_rules_trial_rendered_alone():
    task = YangMultitask(FEW, sigma_x=0.0)
    assert task.n_steps == common_n_steps(FEW) == 170
    key = jr.PRNGKey(3)
    spec = task.trial_spec(key, 48)
    batch = task.render(spec)
    ids = np.asarray(spec["task_id"])
    assert set(ids.tolist()) == {0, 1, 2, 3}
    # the documented key use: ids from the first key, rule i's specification from split(second)[i]
    k_ids, k_spec = jr.split(key)
    np.testing.assert_array_equal(ids, np.asarray(task.sample_ids(k_ids, 48)))
    own = [YangTask(r, sigma_x=0.0, n_steps=170).trial_spec(k, 48)
           for r, k in zip(FEW, jr.split(k_spec, 4), strict=True)]
    for i in range(48):
        rule = FEW[ids[i]]
        for name, value in own[ids[i]].items():
            np.testing.assert_array_equal(np.asarray(spec[name][i]), np.asarray(value[i]), err_msg=name)
        alone = YangTask(rule, sigma_x=0.0, n_steps=170).render(_trial(spec, i))
        np.testing.assert_array_equal(np.asarray(batch.inputs[i]), np.asarray(alone.inputs[0]))
        np.testing.assert_array_equal(np.asarray(batch.targets[i]), np.asarray(alone.targets[0]))
        np.testing.assert_array_equal(np.asarray(batch.mask[i]), np.asarray(alone.mask[0]))
        assert int(batch.info["rule"][i]) == RULES.index(rule)
        # the rule input is the trial's own, padding carries nothing
        t_end = int(spec["t_end"][i])
        assert np.all(np.asarray(batch.inputs[i, :t_end, 65 + RULES.index(rule)]) == 1.0)
        assert np.all(np.asarray(batch.inputs[i, t_end:]) == 0) and np.all(np.asarray(batch.mask[i, t_end:]) == 0)
    # trials of one rule share their timing within the batch (one draw per batch, as the reference)
    for r in range(4):
        assert len(np.unique(np.asarray(spec["t_end"])[ids == r])) == 1


def test_sample_is_the_render_of_its_specification_with_noise_on_live_steps_only():
    task = YangMultitask(("fdgo", "dmsnogo"))
    key = jr.PRNGKey(5)
    b = task.sample(key, 64)
    k_spec, k_noise = jr.split(key)
    spec = task.trial_spec(k_spec, 64)
    clean = task.render(spec)
    np.testing.assert_allclose(np.asarray(b.inputs), np.asarray(task.render(spec, k_noise).inputs), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(b.mask), np.asarray(clean.mask))
    noise = np.asarray(b.inputs - clean.inputs)
    live = np.arange(task.n_steps)[None, :] < np.asarray(spec["t_end"])[:, None]
    assert np.std(noise[live]) == pytest.approx(0.01 * math.sqrt(10), rel=0.02)
    assert np.all(noise[~live] == 0)


def test_rules_are_drawn_with_the_reference_probabilities_per_trial_or_per_batch():
    task = YangMultitask(rule_prob_map=YANG_ALL_RULE_PROBS)
    p = np.full(20, 1 / 28)
    p[[RULES.index("contextdm1"), RULES.index("contextdm2")]] = 5 / 28
    np.testing.assert_allclose(task.weights, p)
    n = 40_000
    counts = np.bincount(np.asarray(task.sample_ids(jr.PRNGKey(0), n)), minlength=20)
    assert np.all(np.abs(counts - n * p) < 4.5 * np.sqrt(n * p * (1 - p)))  # binomial, every rule
    batched = YangMultitask(rule_prob_map=YANG_ALL_RULE_PROBS, mixing="batch")
    ids = np.asarray(jax.vmap(lambda k: batched.sample_ids(k, 8))(jr.split(jr.PRNGKey(1), 4000)))
    assert np.all(ids == ids[:, :1])  # one rule per batch, as the reference's train.py
    counts = np.bincount(ids[:, 0], minlength=20)
    assert np.all(np.abs(counts - 4000 * p) < 4.5 * np.sqrt(4000 * p * (1 - p)))
    assert YangMultitask(["fdgo", "dm1"], rule_prob_map={"dm1": 0.0}).sample_ids(jr.PRNGKey(0), 50).max() == 0


def test_metrics_are_each_rules_own_and_targets_score_perfectly():
    rules = ("delayanti", "dmsnogo")  # dmsnogo: go and no-go trials
    task = YangMultitask(rules, n_eval=64)
    batch = task.evaluation_batches(jr.PRNGKey(0))["test"]
    ids = np.asarray(batch.info["task_id"])
    np.testing.assert_array_equal(np.bincount(ids), [64, 64])
    # two batches of 32 per rule, each with its own timing
    assert len(np.unique(np.asarray(batch.info["t_end"])[ids == 0])) == 2
    perfect = task.evaluate(batch.targets, batch)
    assert perfect["perf"] == 1.0 and all(perfect[f"{r}/perf"] == 1.0 for r in rules)
    out = np.asarray(batch.targets) + 0.3 * np.asarray(jr.normal(jr.PRNGKey(1), batch.targets.shape))
    metrics = task.evaluate(out, batch)
    per_rule = []
    for i, rule in enumerate(rules):
        sel = np.flatnonzero(ids == i)
        own = YangTask(rule, n_steps=task.n_steps).evaluate(jnp.asarray(out[sel]), batch.take(sel))
        for k in ("perf", "perf_strict", "loss"):
            assert metrics[f"{rule}/{k}"] == pytest.approx(float(own[k]), abs=1e-6)
        per_rule.append(float(own["perf"]))
    assert 0.05 < metrics["perf"] < 0.95  # the noise makes some trials wrong: not a flat check
    assert metrics["perf"] == pytest.approx(np.mean(per_rule))  # equal trials per rule


def test_by_name_in_a_training_run():
    task = make_task("yang_multitask", rules=["fdgo", "reactanti"], rule_prob_map={"fdgo": 2.0}, mixing="batch")
    assert isinstance(task, YangMultitask) and task.n_steps == 149 and task.weights == (2 / 3, 1 / 3)
    from nmrnn.models import make_model

    model = make_model("vanilla", n_in=task.n_in, n_out=task.n_out, n_hidden=8, key=jr.PRNGKey(0))
    result = fit(model, task, TrainConfig(steps=3, batch_size=4, steps_per_call=3, lr=1e-3), key=jr.PRNGKey(1))
    assert np.all(np.isfinite(result.losses)) and len(result.losses) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rules": []}, "at least one Yang rule"),
        ({"rules": ["fdgo", "fdgoo"]}, "unknown Yang rule 'fdgoo'"),
        ({"rules": ["fdgo", "fdgo"]}, "repeats a rule"),
        ({"rules": ["fdgo"], "rule_prob_map": {"dm1": 2.0}}, "names rule\\(s\\) not trained here: dm1"),
        ({"rule_prob_map": {"dm1": -1.0}}, "rule_prob_map\\['dm1'\\] must be a non-negative number"),
        ({"rules": ["fdgo"], "rule_prob_map": {"fdgo": 0.0}}, "every rule weight 0"),
        ({"rule_prob_map": [1.0]}, "must map rule names to weights"),
        ({"mixing": "step"}, "unknown mixing 'step'; valid choices: trial, batch"),
        ({"n_eval": 0}, "n_eval must be a positive integer"),
        ({"rules": ["delaydm1"], "n_steps": 150}, "n_steps=150 is shorter than the longest"),
        ({"dt": 30.0}, "dt=30.0 ms does not divide the 100 ms grid"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YangMultitask(**kwargs)
