"""PPO: the clipped surrogate by hand, minibatches that cover every environment each epoch, a first
ratio of exactly 1, the training loop's inner steps against a hand-written loop, and an agent
that learns the bandit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from nmrnn.models import make_model
from nmrnn.models.base import trainable_filter
from nmrnn.rl import PPO, BlockBandit, EnvironmentTask, PPOBatch, evaluate_agent
from nmrnn.train import TrainConfig, fit


def _agent(env, n_hidden=6, seed=0):
    return make_model("vanilla", n_in=env.obs_size, n_out=env.num_actions + 1, n_hidden=n_hidden, tau=1.0,
                      key=jr.PRNGKey(seed))


def test_clipped_surrogate_by_hand():
    env = BlockBandit(episode_length=3)
    model = _agent(env)
    obs = np.array([[[0, 0, 0], [1, 0, 1], [0, 1, 0]]], np.float32)  # one environment, 3 steps
    actions = np.array([[0, 0, 1]])
    y = np.asarray(model.forward(jnp.asarray(obs)).outputs)[0]
    lp = y[:, :2] - np.log(np.exp(y[:, :2]).sum(-1, keepdims=True))
    logp_new = lp[np.arange(3), actions[0]]
    logp_old = logp_new - np.array([0.5, -0.05, 0.0])  # ratios e^0.5, e^-0.05, 1
    adv = np.array([1.0, -2.0, 0.5])
    ret = np.array([0.3, 0.1, -0.2])
    batch = PPOBatch(jnp.asarray(obs), jnp.asarray(actions), jnp.asarray(logp_old[None], jnp.float32),
                     jnp.asarray(adv[None], jnp.float32), jnp.asarray(ret[None], jnp.float32), jnp.asarray(0.5))
    eps, ce, cv = 0.2, 0.1, 0.5
    obj = PPO(env, n_steps=3, epochs=1, minibatches=1, clip_eps=eps, entropy_coef=ce, critic_coef=cv,
              normalize_advantages=False, noise=False)
    total, aux = obj.inner(model, batch, 0, key=jr.PRNGKey(0))
    ratio = np.exp(logp_new - logp_old)
    policy = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv))
    value = np.mean((ret - y[:, 2]) ** 2)
    ent = np.mean(-(np.exp(lp) * lp).sum(-1))
    assert float(aux["policy_loss"]) == pytest.approx(policy, rel=1e-5)
    assert float(aux["value_loss"]) == pytest.approx(value, rel=1e-5)
    assert float(total) == pytest.approx(policy + cv * value - ce * ent, rel=1e-5)
    assert float(aux["clip_fraction"]) == pytest.approx(1 / 3)  # only e^0.5 leaves [0.8, 1.2]
    assert float(aux["approx_kl"]) == pytest.approx(np.mean((ratio - 1) - np.log(ratio)), rel=1e-4)


def test_minibatches_cover_every_environment_once_per_epoch():
    obj = PPO(BlockBandit(episode_length=5), n_steps=5, epochs=3, minibatches=4)
    key = jr.PRNGKey(0)
    epochs = []
    for e in range(3):
        parts = [np.asarray(obj.minibatch(16, e * 4 + m, key)) for m in range(4)]
        assert sorted(np.concatenate(parts)) == list(range(16))
        epochs.append(np.concatenate(parts))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch


def test_first_inner_step_has_ratio_one_without_noise():
    env = BlockBandit(episode_length=8)
    task = EnvironmentTask(env)
    obj = PPO(env, n_steps=8, minibatches=2, noise=False)
    model = _agent(env)
    prepared = obj.prepare(model, task.sample(jr.PRNGKey(0), 4), key=jr.PRNGKey(1))
    _, aux = obj.inner(model, prepared, 0, key=jr.PRNGKey(2))
    assert abs(float(aux["approx_kl"])) < 1e-6 and float(aux["clip_fraction"]) == 0.0


def test_fit_takes_epochs_times_minibatches_steps_per_rollout():
    """One step of fit equals: prepare with the current model, then epochs x minibatches Adam
    steps on the inner losses, written out here with the loop's key derivation."""
    env = BlockBandit(episode_length=6)
    task = EnvironmentTask(env)
    obj = PPO(env, n_steps=6, epochs=2, minibatches=2, noise=False)
    model = _agent(env)
    config = TrainConfig(steps=1, lr=1e-2, optimizer="adam", clip=None, batch_size=4, steps_per_call=1)
    key = jr.PRNGKey(5)
    res = fit(model, task, config, key=key, objective=obj)

    params, static = eqx.partition(model, trainable_filter(model))
    k_data, k_noise = jr.split(jr.fold_in(key, 0))
    data = task.sample(k_data, 4)
    k_prep, k_inner = jr.split(k_noise)
    prepared = obj.prepare(model, data, key=k_prep)
    opt = optax.adam(1e-2)
    state = opt.init(params)
    losses = []
    for i in range(4):
        def loss(p, i=i):
            return obj.inner(eqx.combine(p, static), prepared, i, key=jr.fold_in(k_inner, i))[0]

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        params = eqx.apply_updates(params, updates)
        losses.append(float(value))
    ours = jax.tree.leaves(eqx.filter(res.model, eqx.is_inexact_array))
    ref = jax.tree.leaves(eqx.filter(eqx.combine(params, static), eqx.is_inexact_array))
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert res.losses[0] == pytest.approx(np.mean(losses), rel=1e-5)


def test_a_ppo_agent_learns_the_bandit():
    env = BlockBandit(p_high=0.9, block_min=10, block_max=30, block_beta=10.0, episode_length=60)
    task = EnvironmentTask(env)
    obj = PPO(env, n_steps=60, epochs=4, minibatches=4, entropy_coef=0.01, critic_coef=0.01)
    res = fit(_agent(env, n_hidden=16, seed=1), task,
              TrainConfig(steps=300, lr=3e-3, optimizer="adam", clip=0.5, batch_size=16, steps_per_call=50),
              key=jr.PRNGKey(3), objective=obj)
    after = evaluate_agent(res.model, task, jr.PRNGKey(9), n_envs=128)
    assert after["reward_rate"] > 0.7, after


def test_bad_ppo_settings_are_refused():
    env = BlockBandit(episode_length=10)
    for kw, match in [({"n_steps": 11}, "episode length"), ({"epochs": 0}, "epochs"), ({"clip_eps": 0}, "clip_eps"),
                      ({"minibatches": 0}, "minibatches"), ({"gamma": 2}, "gamma")]:
        with pytest.raises(ValueError, match=match):
            PPO(env, **{"n_steps": 10, **kw})
    with pytest.raises(ValueError, match="multiple"):
        fit(_agent(env), EnvironmentTask(env), TrainConfig(steps=1, batch_size=6), key=jr.PRNGKey(0),
            objective=PPO(env, n_steps=10, minibatches=4))


def test_objectives_by_name_and_unknown_ones_refused():
    from nmrnn.rl import A2C, make_objective

    env = BlockBandit(episode_length=10)
    assert isinstance(make_objective("a2c", env, n_steps=10), A2C)
    assert isinstance(make_objective("ppo", env, n_steps=10, epochs=2), PPO)
    with pytest.raises(ValueError, match="unknown objective 'dqn'; valid choices: a2c, ppo"):
        make_objective("dqn", env)
    with pytest.raises(ValueError, match="epochs"):
        make_objective("a2c", env, epochs=2)
