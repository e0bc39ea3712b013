"""A gymnasium face of the library's JAX environments, for users of other RL libraries.

``GymnasiumBandit(env)`` is a :class:`gymnasium.Env` (it passes gymnasium's environment checker):
``Discrete(2)`` actions, a ``Box`` observation (previous action one-hot, previous reward, and the
time when the environment gives it), ``terminated`` at the end of the episode's trials (the task
has a fixed number of trials; there is no later reward to bootstrap), and ``info`` with the block
(the better arm), the trial's reward probability and whether the block flips after it. The
dynamics are the JAX environment's, compiled once; ``reset(seed=s)`` makes an episode
reproducible. Needs the extra ``nmrnn[rl]`` (gymnasium).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.random as jr
import numpy as np

from .env import BlockBandit

try:
    import gymnasium
    from gymnasium import spaces
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("nmrnn.rl.gym needs gymnasium: pip install 'nmrnn[rl]'") from err


class GymnasiumBandit(gymnasium.Env):
    """A :class:`~nmrnn.rl.env.BlockBandit` as a gymnasium environment (see the module
    docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, env: BlockBandit | None = None, **settings: Any):
        if env is not None and settings:
            raise ValueError("give either a BlockBandit or its settings, not both")
        self.env = BlockBandit(**settings) if env is None else env
        if not isinstance(self.env, BlockBandit):
            raise ValueError(f"GymnasiumBandit wraps a BlockBandit, got {type(self.env).__name__}")
        self.params = self.env.default_params
        self.action_space = spaces.Discrete(self.env.num_actions)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.env.obs_size,), dtype=np.float32)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step_env)
        self._key = jr.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jr.PRNGKey(seed)
        elif self._state is None:  # unseeded first reset: draw a seed from gymnasium's generator
            self._key = jr.PRNGKey(int(self.np_random.integers(2**31)))
        self._key, k = jr.split(self._key)
        obs, self._state = self._reset(k, self.params)
        return np.asarray(obs, np.float32), {"block": int(self._state.block)}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 or 1, got {action!r}")
        self._key, k = jr.split(self._key)
        obs, self._state, reward, done, info = self._step(k, self._state, int(action), self.params)
        info = {"block": int(info["block"]), "p_reward": float(info["p_reward"]), "flip": bool(info["flip"])}
        return np.asarray(obs, np.float32), float(reward), bool(done), False, info
