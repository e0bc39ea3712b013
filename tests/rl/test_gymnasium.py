"""The gymnasium face of the bandit: gymnasium's own checker, and the same trials as the JAX
environment."""

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="needs the extra nmrnn[rl]")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from nmrnn.rl import BlockBandit  # noqa: E402
from nmrnn.rl.gym import GymnasiumBandit  # noqa: E402


def test_passes_gymnasiums_environment_checker():
    check_env(GymnasiumBandit(episode_length=30), skip_render_check=True)


def test_episode_is_reproducible_and_ends_after_its_trials():
    env = GymnasiumBandit(BlockBandit(p_high=0.9, episode_length=25))

    def episode(seed):
        obs, info = env.reset(seed=seed)
        assert np.array_equal(obs, [0, 0, 0])
        out, ended = [], False
        for t in range(25):
            a = t % 2
            obs, r, terminated, truncated, info = env.step(a)
            assert np.array_equal(obs, [a == 0, a == 1, r]) and not truncated
            out.append((a, r, info["block"], info["p_reward"]))
            ended = terminated
            assert terminated == (t == 24)
        return out, ended

    a, ended = episode(4)
    b, _ = episode(4)
    c, _ = episode(5)
    assert ended and a == b and a != c
    for action, _, block, p in a:  # the better arm pays with 0.9, the other with 0.1
        assert p == pytest.approx(0.9 if action == block else 0.1)


def test_bad_use_is_refused():
    env = GymnasiumBandit(episode_length=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(3)
    with pytest.raises(ValueError, match="either"):
        GymnasiumBandit(BlockBandit(), p_high=0.5)
