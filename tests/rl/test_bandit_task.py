"""The bandit as a registered task: its options build the environment, its objectives by name
take the training config's regularisers and noise, and it evaluates an agent by playing."""

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model
from nmrnn.rl import (
    A2C,
    PPO,
    BanditTask,
    BlockBandit,
    EnvironmentTask,
    evaluate_agent,
    objective_for_task,
)
from nmrnn.tasks import TASKS, make_task
from nmrnn.train import TrainConfig
from nmrnn.train.objectives import ActivityL2, WeightL2


def test_the_registered_bandit_is_the_environment_of_its_options():
    task = make_task("bandit", p_high=0.7, block="hazard", hazard=0.1, episode_length=20, n_steps=15)
    assert isinstance(task, BanditTask) and TASKS["bandit"] is BanditTask
    env = BlockBandit(p_high=0.7, block="hazard", hazard=0.1, episode_length=20)
    assert task.env == env and (task.n_in, task.n_out, task.n_steps) == (3, 3, 15)
    ref = EnvironmentTask(env, n_steps=15)
    a, b = task.sample(jr.PRNGKey(0), 5), ref.sample(jr.PRNGKey(0), 5)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert make_task("bandit").n_steps == 200 and make_task("bandit", time_as_input=True).n_in == 4
    assert TASKS["bandit"].objectives == ("a2c", "ppo") and TASKS["mwg"].objectives == (None,)
    with pytest.raises(ValueError, match="p_high"):
        make_task("bandit", p_high=1.5)
    with pytest.raises(ValueError, match="unknown option"):
        make_task("bandit", arms=3)


def test_objectives_by_name_take_the_configs_regularisers_and_noise():
    task = make_task("bandit", episode_length=10)
    config = TrainConfig(steps=1, activity_l2=2.0, weight_l2=0.5, noise=False)
    obj = task.training_objective("a2c", {"entropy_coef": 0.1}, config)
    assert isinstance(obj, A2C) and obj.n_steps == 10 and obj.noise is False
    assert [t.name for t in obj.terms] == ["activity_l2", "weight_l2"]
    np.testing.assert_array_equal(obj.weights, [2.0, 0.5])
    assert float(obj.entropy_coef) == pytest.approx(0.1)
    by_hand = A2C(task.env, n_steps=10, entropy_coef=0.1, terms=[ActivityL2(), WeightL2()], weights=[2.0, 0.5],
                  noise=False)
    model = make_model("vanilla", n_in=3, n_out=3, n_hidden=5, key=jr.PRNGKey(0))
    data = task.sample(jr.PRNGKey(1), 2)
    assert float(obj(model, data, key=jr.PRNGKey(2))[0]) == float(by_hand(model, data, key=jr.PRNGKey(2))[0])
    ppo = objective_for_task("ppo", task, TrainConfig(steps=1), epochs=2)
    assert isinstance(ppo, PPO) and ppo.epochs == 2 and ppo.terms == () and ppo.noise is True
    for bad, match in [({"epochs": 2}, "unknown option.*epochs.*valid options: critic_coef, entropy_coef, gamma, lam"),
                       ({"n_steps": 5}, "unknown option.*n_steps"), ({"noise": False}, "unknown option.*noise"),
                       ({"gamma": 2.0}, "gamma")]:
        with pytest.raises(ValueError, match=match):
            task.training_objective("a2c", bad, config)
    with pytest.raises(ValueError, match="unknown objective 'dqn'"):
        task.training_objective("dqn", {}, config)


def test_a_supervised_task_takes_no_objective_by_name():
    task = make_task("flipflop")
    assert task.training_objective(None, {}, TrainConfig(steps=1)) is None
    with pytest.raises(ValueError, match="supervised loss only"):
        task.training_objective("a2c", {}, TrainConfig(steps=1))


def test_fit_refuses_an_environment_without_an_objective_before_compiling():
    from nmrnn.train import fit

    task = make_task("bandit", episode_length=10)
    model = make_model("vanilla", n_in=3, n_out=3, n_hidden=5, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="BanditTask has no supervised loss.*a2c, ppo"):
        fit(model, task, TrainConfig(steps=1), key=jr.PRNGKey(1))


def test_the_task_evaluates_an_agent_by_playing_episodes():
    task = make_task("bandit", episode_length=20)
    model = make_model("vanilla", n_in=3, n_out=3, n_hidden=5, key=jr.PRNGKey(0))
    metrics = task.evaluate_model(model, jr.PRNGKey(3))
    assert metrics == {"test": evaluate_agent(model, task, jr.PRNGKey(3), n_envs=64)}
    assert set(metrics["test"]) == {"reward_rate", "p_best", "oracle_reward_rate"}
    with pytest.raises(NotImplementedError, match="evaluate_model"):
        task.evaluation_batches(jr.PRNGKey(0))
