"""Objectives (terms against hand computations), hyperparameters as data (no recompilation),
learning-rate schedules against their closed forms, a rollout-style objective through the same
``fit``, and ensembles against separate runs."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model, simulate
from nmrnn.tasks import make_task
from nmrnn.train import Stage, TrainConfig, fit
from nmrnn.train.loop import _run_chunk, fit_ensemble, learning_rate
from nmrnn.train.objectives import (
    AbstractObjective,
    ActivityL2,
    Penalty,
    Supervised,
    WeightL1,
    WeightL2,
    masked_cross_entropy,
)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.fixture(scope="module")
def nm_and_batch():
    task = make_task("mwg")
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=10, n_nm=3, rank=2, key=jr.PRNGKey(0))
    return model, task.fixed_batch()


def test_objective_with_two_regulariser_terms_equals_the_hand_computed_sum(nm_and_batch):
    model, batch = nm_and_batch
    w_l2, w_act = 0.3, 2.0
    obj = Supervised("mse", [WeightL2("nm"), ActivityL2()], [w_l2, w_act], noise=False)
    loss, aux = obj(model, batch, key=None)
    # by hand, in float64 from the raw arrays
    traj = simulate(model, batch.inputs)
    y, t, m = (np.asarray(a, np.float64) for a in (traj.outputs, batch.targets, batch.mask))
    mse = np.sum(m * (y - t) ** 2) / np.sum(m)
    l2 = sum(np.sum(np.asarray(getattr(model, f), np.float64) ** 2) for f in ("W_z", "B_z", "A_z", "b_z"))
    act = 0.5 * (np.mean(np.asarray(traj.states.x, np.float64) ** 2) + np.mean(np.asarray(traj.states.z, np.float64) ** 2))
    assert set(aux) == {"mse", "weight_l2", "activity_l2"}
    np.testing.assert_allclose(float(aux["mse"]), mse, rtol=1e-5)
    np.testing.assert_allclose(float(aux["weight_l2"]), l2, rtol=1e-5)
    np.testing.assert_allclose(float(aux["activity_l2"]), act, rtol=1e-5)
    np.testing.assert_allclose(float(loss), mse + w_l2 * l2 + w_act * act, rtol=1e-5)
    # a negative control: another weight changes the total by exactly the term
    loss2, _ = Supervised("mse", [WeightL2("nm"), ActivityL2()], [w_l2 + 1.0, w_act], noise=False)(model, batch, key=None)
    np.testing.assert_allclose(float(loss2) - float(loss), l2, rtol=1e-4)


def test_penalty_and_l1_terms(nm_and_batch):
    model, batch = nm_and_batch
    wiring = Penalty(lambda m, traj, data: jnp.sum(jnp.abs(m.L)), name="wiring")
    loss, aux = Supervised("mse", [wiring, WeightL1("lowrank")], [0.5, 0.25], noise=False)(model, batch, key=None)
    l1 = sum(np.abs(np.asarray(getattr(model, f), np.float64)).sum() for f in ("L", "R", "B_x", "C", "d"))
    np.testing.assert_allclose(float(aux["wiring"]), np.abs(np.asarray(model.L)).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["weight_l1"]), l1, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(aux["mse"]) + 0.5 * float(aux["wiring"]) + 0.25 * l1, rtol=1e-5)
    with pytest.raises(ValueError, match="2 terms need 2 weights"):
        Supervised("mse", [wiring, WeightL1()], [1.0])
    with pytest.raises(ValueError, match="weight of wiring must be a non-negative number"):
        Supervised("mse", [wiring], [-1.0])
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        Supervised("l3")


def test_masked_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4))
    labels = rng.integers(0, 4, size=(3, 5))
    targets = np.eye(4)[labels]
    mask = (rng.random((3, 5)) > 0.3).astype(float)
    ls = logits - logits.max(-1, keepdims=True)
    logp = ls - np.log(np.exp(ls).sum(-1, keepdims=True))
    ref = -(mask * np.take_along_axis(logp, labels[..., None], -1)[..., 0]).sum() / mask.sum()
    got = masked_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)
    # a (B, T, O) mask counts a step with its largest entry
    got3 = masked_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(np.repeat(mask[..., None], 4, -1)))
    np.testing.assert_allclose(float(got3), ref, rtol=1e-5)


def test_config_regularisers_build_the_same_terms(nm_and_batch):
    model, batch = nm_and_batch
    from nmrnn.train.loop import default_objective, loss_fn

    cfg = TrainConfig(weight_l2=1e-3, activity_l2=0.5, noise=False)
    obj = default_objective(cfg)
    assert [t.name for t in obj.terms] == ["activity_l2", "weight_l2"]
    np.testing.assert_allclose(float(loss_fn(model, batch, None, cfg)), float(obj(model, batch, key=None)[0]))


def test_learning_curve_records_every_term(tmp_path):
    task = make_task("mwg")
    model = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, key=jr.PRNGKey(0))
    cfg = TrainConfig(steps=12, steps_per_call=6, fixed_batch=True, weight_l2=1e-3, activity_l2=0.1, checkpoint_every=6)
    res = fit(model, task, cfg, key=jr.PRNGKey(1), run_dir=tmp_path)
    assert set(res.terms) == {"mse", "activity_l2", "weight_l2"}
    total = res.terms["mse"] + 0.1 * res.terms["activity_l2"] + 1e-3 * res.terms["weight_l2"]
    np.testing.assert_allclose(res.losses, total, rtol=1e-5)
    header = (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert header == "step,stage,group,loss,mse,activity_l2,weight_l2"
    # resume restores the terms too
    again = fit(model, task, cfg, key=jr.PRNGKey(1), run_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(again.terms["mse"], res.terms["mse"])


# ------------------------------------------------------------------------------------------------
# hyperparameters as data
# ------------------------------------------------------------------------------------------------


def test_learning_rate_schedules_match_their_closed_forms():
    f = jnp.result_type(float)
    hp = {"lr": jnp.asarray(0.1, f), "warmup": jnp.asarray(4.0, f), "final": jnp.asarray(0.01, f)}
    n = 21
    for t in (0, 2, 3, 10, 20):
        warm = min(1.0, (t + 1) / 4)
        frac = t / (n - 1)
        cos = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac))
        np.testing.assert_allclose(float(learning_rate(hp, t, n, "cosine")), 0.1 * warm * cos, rtol=1e-5)
        np.testing.assert_allclose(float(learning_rate(hp, t, n, "exponential")), 0.1 * warm * 0.01**frac, rtol=1e-5)
        np.testing.assert_allclose(float(learning_rate(hp, t, n, "constant")), 0.1 * warm, rtol=1e-6)
    hp0 = dict(hp, warmup=jnp.asarray(0.0, f))
    assert float(learning_rate(hp0, 0, n, "constant")) == pytest.approx(0.1)


def test_changing_numeric_hyperparameters_does_not_recompile():
    task = make_task("mwg")
    model = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, key=jr.PRNGKey(0))
    base = dict(steps=10, steps_per_call=10, fixed_batch=True, weight_l2=1e-3)
    fit(model, task, TrainConfig(**base), key=jr.PRNGKey(1))
    size = _run_chunk._cached._cache_size()
    runs = [
        fit(model, task, TrainConfig(**{**base, **change}), key=jr.PRNGKey(2))
        for change in ({"lr": 3e-3}, {"weight_decay": 1e-2}, {"clip": 0.5}, {"weight_l2": 5e-2},
                       {"warmup_steps": 3}, {"stages": (Stage(10, "all", lr=1e-3),)})
    ]
    assert _run_chunk._cached._cache_size() == size
    other_tau = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, tau=4.0, key=jr.PRNGKey(0))
    fit(other_tau, task, TrainConfig(**base), key=jr.PRNGKey(1))
    assert _run_chunk._cached._cache_size() == size
    # and the numbers did change the training
    assert len({float(r.losses[-1]) for r in runs}) == len(runs)


# ------------------------------------------------------------------------------------------------
# a rollout-style objective through the same fit
# ------------------------------------------------------------------------------------------------


class BanditData(eqx.Module):
    """Per-episode reward probabilities of a two-armed bandit (what the data source samples)."""

    p: jax.Array  # (B, 2)


class BanditSource(eqx.Module):
    """A data source for ``fit``: episodes of a two-armed bandit whose better arm is arm 1."""

    n_in: int = eqx.field(static=True, default=3)
    n_out: int = eqx.field(static=True, default=2)
    n_steps: int = eqx.field(static=True, default=10)
    default_batch_size = 32

    def sample(self, key, batch_size):
        return BanditData(jnp.broadcast_to(jnp.asarray([0.2, 0.8]), (batch_size, 2)))

    def fixed_batch(self):
        return None


class Reinforce(AbstractObjective):
    """REINFORCE on a rollout: the agent sees its previous action and reward, acts by sampling
    its softmax readout, and the loss is ``-mean(sum_t log pi(a_t) * (R - baseline))``."""

    def __call__(self, model, data, *, key):
        B = data.p.shape[0]
        state = model.initial_state((B,))
        u = jnp.zeros((B, 3))

        def body(carry, k):
            state, u = carry
            ka, kr = jr.split(k)
            state = model.step(state, u)
            logits = model.readout(state)
            a = jr.categorical(ka, jax.lax.stop_gradient(logits))
            r = (jr.uniform(kr, (B,)) < jnp.take_along_axis(data.p, a[:, None], 1)[:, 0]).astype(jnp.float32)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), a[:, None], 1)[:, 0]
            u = jnp.concatenate([jax.nn.one_hot(a, 2), r[:, None]], -1)
            return (state, u), (logp, r)

        _, (logp, r) = jax.lax.scan(body, (state, u), jr.split(key, 10))
        ret = r.sum(0)
        adv = jax.lax.stop_gradient(ret - ret.mean())
        loss = -jnp.mean(logp.sum(0) * adv)
        return loss, {"reward": r.mean()}


def test_a_rollout_objective_trains_through_the_same_fit():
    model = make_model("gru", n_in=3, n_out=2, n_hidden=8, key=jr.PRNGKey(0))
    res = fit(model, BanditSource(), TrainConfig(steps=150, steps_per_call=50, lr=3e-2), key=jr.PRNGKey(1),
              objective=Reinforce())
    reward = res.terms["reward"]
    assert reward[:2].mean() < 0.6  # chance is 0.5
    assert reward[-20:].mean() > 0.75  # learned to prefer the 0.8 arm
    with pytest.raises(ValueError, match="either in the TrainConfig"):
        fit(model, BanditSource(), TrainConfig(steps=2, weight_l2=1.0), key=jr.PRNGKey(1), objective=Reinforce())


# ------------------------------------------------------------------------------------------------
# ensembles
# ------------------------------------------------------------------------------------------------


def _members(name="vanilla", taus=(10.0, 10.0, 10.0), **opts):
    return [make_model(name, n_in=3, n_out=1, n_hidden=8, tau=t, key=jr.PRNGKey(10 + i), **opts) for i, t in enumerate(taus)]


def test_vmapped_ensemble_of_seeds_equals_separate_runs():
    task = make_task("mwg")
    cfg = TrainConfig(steps=30, steps_per_call=15, fixed_batch=True)
    models = _members()
    keys = [jr.PRNGKey(i) for i in range(3)]
    ens = fit_ensemble(models, task, cfg, keys=keys, vmap=True)
    for m, k, r in zip(models, keys, ens, strict=True):
        alone = fit(m, task, cfg, key=k)
        np.testing.assert_allclose(r.losses, alone.losses, rtol=2e-4)
        for a, b in zip(jax.tree.leaves(eqx.filter(r.model, eqx.is_array)), jax.tree.leaves(eqx.filter(alone.model, eqx.is_array)), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
    # the members really differ (a negative control for the comparison above)
    assert not np.allclose(ens[0].losses, ens[1].losses)
    seq = fit_ensemble(models, task, cfg, keys=keys, vmap=False)
    for r, alone_key, m in zip(seq, keys, models, strict=True):
        assert np.array_equal(r.losses, fit(m, task, cfg, key=alone_key).losses)


def test_vmapped_ensemble_of_settings_equals_separate_runs(tmp_path):
    task = make_task("mwg")
    configs = [TrainConfig(steps=20, steps_per_call=10, fixed_batch=True, lr=lr, weight_l2=w, checkpoint_every=10)
               for lr, w in ((1e-2, 1e-3), (3e-3, 1e-2))]
    models = _members(taus=(5.0, 20.0))[:2]
    keys = [jr.PRNGKey(0), jr.PRNGKey(0)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    ens = fit_ensemble(models, task, configs, keys=keys, vmap=True, run_dirs=dirs)
    for m, c, k, r in zip(models, configs, keys, ens, strict=True):
        alone = fit(m, task, c, key=k)
        np.testing.assert_allclose(r.losses, alone.losses, rtol=2e-4)
    assert all((d / "checkpoint.npz").exists() for d in dirs)
    # resuming the finished ensemble from its checkpoints gives the same models
    again = fit_ensemble(models, task, configs, keys=keys, vmap=True, run_dirs=dirs, resume=True)
    assert all(_leaves_equal(eqx.filter(a.model, eqx.is_array), eqx.filter(b.model, eqx.is_array)) for a, b in zip(again, ens, strict=True))


def test_ensemble_refuses_members_of_different_structure():
    task = make_task("mwg")
    small = make_model("vanilla", n_in=3, n_out=1, n_hidden=8, key=jr.PRNGKey(0))
    big = make_model("vanilla", n_in=3, n_out=1, n_hidden=9, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="member 1 has a different model structure"):
        fit_ensemble([small, big], task, TrainConfig(steps=2), keys=[jr.PRNGKey(0)] * 2, vmap=True)
    with pytest.raises(ValueError, match="differs from member 0's in more than its numeric hyperparameters"):
        fit_ensemble([small, small], task, [TrainConfig(steps=2), TrainConfig(steps=3)], keys=[jr.PRNGKey(0)] * 2, vmap=True)
