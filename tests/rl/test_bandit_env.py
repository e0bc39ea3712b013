"""The block-switching bandit against a NumPy simulation fed the same random draws, its
statistics against closed forms, and its gymnax-style interface."""

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.rl import BlockBandit


def numpy_bandit(env, key, actions):
    """The same episode in plain NumPy: the uniform draws come from the keys the environment
    derives (reset: side and first block length; every trial: reward, hazard flip, next block
    length), the dynamics (inverse-CDF block lengths included) are written out here."""
    p_high, lo, hi, beta = env.p_high, env.block_min, env.block_max, env.block_beta

    def length(u):
        return int(np.floor(min(lo - beta * np.log1p(-u), hi)))

    u_side, u_len = np.asarray(jr.uniform(key, (2,)), float)
    block = int(u_side < 0.5)
    left = length(u_len)
    rows = []
    for t, (a, k) in enumerate(zip(actions, step_keys(key, len(actions)), strict=True)):
        u_reward, u_flip, u_next = np.asarray(jr.uniform(jr.split(k)[0], (3,)), float)
        p = p_high if a == block else 1 - p_high
        r = float(u_reward < p)
        if env.block == "trunc_exp":
            left -= 1
            flip = left <= 0
            if flip:
                left = length(u_next)
        else:
            flip = u_flip < env.hazard
        rows.append((block, p, r, flip, t))
        if flip:
            block = 1 - block
    return rows


def step_keys(key, n):
    return [jr.fold_in(key, 1000 + t) for t in range(n)]


def run_jax(env, key, actions):
    obs, state = env.reset(key)
    out = []
    for a, k in zip(actions, step_keys(key, len(actions)), strict=True):
        obs, state, r, done, info = env.step(k, state, a)
        out.append((int(info["block"]), float(info["p_reward"]), float(r), bool(info["flip"]),
                    int(info["time"]), np.asarray(obs), bool(done)))
    return out


@pytest.mark.parametrize("block", ["trunc_exp", "hazard"])
def test_episode_matches_a_numpy_simulation_of_the_same_draws(block):
    env = BlockBandit(block=block, block_min=3, block_max=9, block_beta=4.0, hazard=0.2, p_high=0.7,
                      episode_length=40)
    key = jr.PRNGKey(3)
    actions = np.random.default_rng(0).integers(0, 2, 40)
    ours = run_jax(env, key, actions)
    ref = numpy_bandit(env, key, actions)
    for t, (mine, theirs) in enumerate(zip(ours, ref, strict=True)):
        assert mine[0] == theirs[0], t
        assert mine[1] == pytest.approx(theirs[1]), t
        assert mine[2:5] == theirs[2:5], t
    assert sum(r[3] for r in ref) >= 3  # the episode crosses several blocks
    # observations: one-hot previous action and previous reward; the last step resets
    for t in range(39):
        assert np.array_equal(ours[t][5], [actions[t] == 0, actions[t] == 1, ours[t][2]])
        assert not ours[t][6]
    assert ours[39][6] and np.array_equal(ours[39][5], [0, 0, 0])


def test_params_are_checked_like_the_settings():
    env = BlockBandit()
    assert float(env.make_params(p_high=0.6).p_high) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="p_high"):
        env.make_params(p_high=1.5)
    with pytest.raises(ValueError, match="unknown bandit parameter"):
        env.make_params(p_low=0.1)


def test_first_observation_and_time_input():
    env = BlockBandit(time_as_input=True, episode_length=10)
    obs, state = env.reset(jr.PRNGKey(0))
    assert env.obs_size == 4 and np.array_equal(obs, [0, 0, 0, 0])
    obs, state, *_ = env.step(jr.PRNGKey(1), state, 1)
    assert obs[1] == 1 and obs[0] == 0 and obs[3] == pytest.approx(0.1)


def test_block_lengths_and_reward_rates_match_closed_forms():
    env = BlockBandit(block_min=5, block_max=30, block_beta=8.0, p_high=0.9, episode_length=4000)
    params = env.default_params
    keys = jr.split(jr.PRNGKey(0), 20000)
    lengths = np.asarray(jax.vmap(lambda k: env._block_length(jr.uniform(k), params))(keys))
    assert lengths.min() >= 5 and lengths.max() == 30
    assert abs(lengths.mean() - env.mean_block_length()) < 0.15  # s.e. ~0.05
    # the closed form against a direct sum over the truncated exponential
    x = 5 + 8.0 * np.random.default_rng(1).exponential(size=400_000)
    assert env.mean_block_length() == pytest.approx(np.floor(np.minimum(x, 30)).mean(), abs=0.05)

    def play(state, k):  # always arm 0 for a long episode
        k1, k2 = jr.split(k)
        _, state, r, _, info = env.step(k1, state, 0, params)
        return state, (r, info["block"], info["flip"])

    _, state = env.reset(jr.PRNGKey(2), params)
    _, (r, block, flip) = jax.lax.scan(play, state, jr.split(jr.PRNGKey(3), 3999))
    r, block = np.asarray(r), np.asarray(block)
    assert abs(r[block == 0].mean() - 0.9) < 0.02 and abs(r[block == 1].mean() - 0.1) < 0.02
    n_blocks = int(np.sum(flip)) + 1
    assert abs(3999 / n_blocks - env.mean_block_length()) < 4


def test_hazard_blocks_are_geometric():
    env = BlockBandit(block="hazard", hazard=0.05, episode_length=100)
    assert env.mean_block_length() == pytest.approx(20.0)
    _, state = env.reset(jr.PRNGKey(0))

    def play(state, k):
        _, state, _, _, info = env.step(k, state, 0)
        return state, info["flip"]

    _, flips = jax.lax.scan(play, state, jr.split(jr.PRNGKey(1), 2000))
    assert abs(np.mean(np.asarray(flips)) - 0.05) < 0.015


def test_jit_vmap_and_params_as_data():
    env = BlockBandit(episode_length=5)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    params = env.default_params
    obs, state = reset(jr.split(jr.PRNGKey(0), 8), params)
    assert obs.shape == (8, 3)
    certain = env.make_params(p_high=1.0)
    _, _, r, _, info = step(jr.split(jr.PRNGKey(1), 8), state, state.block, certain)
    assert np.all(np.asarray(r) == 1)  # the better arm always pays when p_high = 1
    assert step._cache_size() == 1
    step(jr.split(jr.PRNGKey(1), 8), state, state.block, params)
    assert step._cache_size() == 1  # another p_high did not recompile


@pytest.mark.parametrize("kwargs, match", [
    ({"p_high": 1.2}, "p_high"), ({"p_high": -0.1}, "p_high"), ({"block_min": 0}, "block_min"),
    ({"block_min": 10, "block_max": 5}, "block_max"), ({"hazard": 2}, "hazard"),
    ({"block": "sometimes"}, "block"), ({"episode_length": 0}, "episode_length"),
    ({"block_beta": 0}, "block_beta"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockBandit(**kwargs)
