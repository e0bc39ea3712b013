"""Environments for recurrent reinforcement-learning agents, in pure JAX.

The interface is gymnax's functional one, so an environment is jit- and vmap-able and its
randomness is explicit:

* ``env.default_params`` -- an :class:`equinox.Module` of numbers (array leaves: changing one
  does not recompile);
* ``env.reset(key, params) -> (obs, state)``;
* ``env.step(key, state, action, params) -> (obs, state, reward, done, info)``, which resets the
  environment on the step that ends an episode (the returned ``obs`` and ``state`` are then the
  next episode's first, as in gymnax), so that a rollout is one ``lax.scan`` of ``step``;
* ``env.num_actions`` and ``env.obs_size``.

The randomness of a reset and of a trial is a few uniform numbers drawn from the key
(:attr:`BlockBandit.reset_draws`, :attr:`BlockBandit.step_draws`); ``reset_with``,
``step_env_with`` and ``step_with`` take those numbers instead of a key, so that a rollout can
draw every trial's numbers in one call before its loop (:func:`nmrnn.rl.rollout`).

:class:`BlockBandit` is the block-switching two-armed bandit of the e-nmRNN paper (supplement
section 6; its table names the environment ``BlockBandit2ArmCoupledEasy-v0``): the arms pay 1 with
*coupled* probabilities ``p_high`` and ``1 - p_high``; which arm is the better one is a hidden
block state that flips at block boundaries. The agent sees its previous action (one-hot) and its
previous reward, and optionally the time in the episode. The paper does not give the block
lengths or the probabilities, and its environment's code is not public; the defaults here are
stated choices:

* ``block="trunc_exp"`` (default): block lengths ``floor(min(block_min + Exp(block_beta),
  block_max))``, the truncated exponential of the Allen Institute's coupled block task
  (aind-behavior-gym ``CoupledBlockTask``: 40, 80 and 20 trials), which the paper's behavioural
  fit (aind-dynamic-foraging-models) was made for;
* ``block="hazard"``: after every trial the block flips with probability ``hazard``
  (geometric block lengths, the classic reversal-learning bandit);
* ``p_high=0.8`` ("Easy": a clear contrast between the arms), ``episode_length=200`` (the
  paper's ``max_episode_steps``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._validation import check_choice, check_fraction, check_positive, check_positive_int

BLOCK_MODES = ("trunc_exp", "hazard")


class BanditParams(eqx.Module):
    """The numbers of a :class:`BlockBandit` (array leaves)."""

    p_high: jax.Array
    block_min: jax.Array
    block_max: jax.Array
    block_beta: jax.Array
    hazard: jax.Array


class BanditState(NamedTuple):
    """``time`` (trial within the episode), ``block`` (the better arm, 0 or 1), ``left``
    (trials left in the block, ``trunc_exp`` mode), ``last_action`` (-1 before the first
    trial) and ``last_reward``."""

    time: jax.Array
    block: jax.Array
    left: jax.Array
    last_action: jax.Array
    last_reward: jax.Array


class BlockBandit(eqx.Module):
    """The block-switching two-armed bandit (see the module docstring)."""

    episode_length: int = eqx.field(static=True)
    block: str = eqx.field(static=True)
    time_as_input: bool = eqx.field(static=True)
    p_high: float = eqx.field(static=True)
    block_min: int = eqx.field(static=True)
    block_max: int = eqx.field(static=True)
    block_beta: float = eqx.field(static=True)
    hazard: float = eqx.field(static=True)

    num_actions = 2
    #: Uniform numbers a reset uses: ``(side, first block length)``.
    reset_draws = 2
    #: Uniform numbers a trial uses: ``(reward, hazard flip, next block length)``.
    step_draws = 3

    def __init__(
        self,
        *,
        p_high: float = 0.8,
        block: str = "trunc_exp",
        block_min: int = 40,
        block_max: int = 80,
        block_beta: float = 20.0,
        hazard: float = 0.02,
        episode_length: int = 200,
        time_as_input: bool = False,
    ):
        self.p_high = check_fraction("p_high", p_high)
        self.block = check_choice("block", block, BLOCK_MODES)
        self.block_min = check_positive_int("block_min", block_min)
        self.block_max = check_positive_int("block_max", block_max)
        if self.block_max < self.block_min:
            raise ValueError(f"block_max={block_max} is below block_min={block_min}")
        self.block_beta = check_positive("block_beta", block_beta)
        self.hazard = check_fraction("hazard", hazard)
        self.episode_length = check_positive_int("episode_length", episode_length)
        self.time_as_input = bool(time_as_input)

    @property
    def obs_size(self) -> int:
        return self.num_actions + 1 + int(self.time_as_input)

    @property
    def default_params(self) -> BanditParams:
        """The environment's own settings as :class:`BanditParams`."""
        return self.make_params()

    def make_params(self, **changes: float) -> BanditParams:
        """:class:`BanditParams` with some numbers changed (checked as the constructor checks
        them); another value does not recompile a program that takes the params."""
        names = ("p_high", "block_min", "block_max", "block_beta", "hazard")
        bad = sorted(set(changes) - set(names))
        if bad:
            raise ValueError(f"unknown bandit parameter(s) {', '.join(bad)}; known: {', '.join(names)}")
        values = {n: changes.get(n, getattr(self, n)) for n in names}
        checked = BlockBandit(**values, block=self.block, episode_length=self.episode_length)
        f = jnp.result_type(float)
        return BanditParams(**{n: jnp.asarray(getattr(checked, n), f) for n in names})

    # -- dynamics ------------------------------------------------------------------------------
    def _block_length(self, u, params: BanditParams) -> jax.Array:
        """A block length from a uniform draw ``u`` (inverse CDF of the exponential)."""
        x = params.block_min - params.block_beta * jnp.log1p(-u)
        return jnp.floor(jnp.minimum(x, params.block_max)).astype(jnp.int32)

    def reset(self, key, params: BanditParams | None = None) -> tuple[jax.Array, BanditState]:
        """A new episode: the better arm is either with probability 1/2, and the first block's
        length is drawn. One uniform pair from ``key``: ``(side, length)``."""
        params = self.default_params if params is None else params
        return self.reset_with(jr.uniform(key, (self.reset_draws,), dtype=params.p_high.dtype), params)

    def reset_with(self, u, params: BanditParams | None = None) -> tuple[jax.Array, BanditState]:
        """:meth:`reset` from its uniform pair ``u = (side, length)``."""
        params = self.default_params if params is None else params
        state = BanditState(
            time=jnp.zeros((), jnp.int32),
            block=(u[0] < 0.5).astype(jnp.int32),
            left=self._block_length(u[1], params),
            last_action=jnp.full((), -1, jnp.int32),
            last_reward=jnp.zeros((), jnp.result_type(float)),
        )
        return self.observe(state), state

    def observe(self, state: BanditState) -> jax.Array:
        """The agent's input: one-hot previous action (zeros before the first trial), previous
        reward, and ``time / episode_length`` when ``time_as_input``."""
        f = jnp.result_type(float)
        parts = [jax.nn.one_hot(state.last_action, self.num_actions, dtype=f), state.last_reward[None].astype(f)]
        if self.time_as_input:
            parts.append((state.time / self.episode_length)[None].astype(f))
        return jnp.concatenate(parts)

    def reward_probabilities(self, state: BanditState, params: BanditParams) -> jax.Array:
        """``(p_arm0, p_arm1)`` in the current block."""
        return jnp.where(state.block == 0, jnp.stack([params.p_high, 1 - params.p_high]),
                         jnp.stack([1 - params.p_high, params.p_high]))

    def step_env(self, key, state: BanditState, action, params: BanditParams | None = None):
        """One trial without the automatic reset: pull arm ``action`` (0 or 1); one uniform
        triple from ``key``: ``(reward, hazard flip, next block length)``. Returns
        ``(obs, state, reward, done, info)``; ``info`` has the block (better arm), the reward
        probability of the trial, whether the block flips after it, and its time."""
        params = self.default_params if params is None else params
        return self.step_env_with(jr.uniform(key, (self.step_draws,), dtype=params.p_high.dtype), state, action, params)

    def step_env_with(self, u, state: BanditState, action, params: BanditParams | None = None):
        """:meth:`step_env` from its uniform triple ``u = (reward, hazard flip, next block
        length)``."""
        params = self.default_params if params is None else params
        action = jnp.asarray(action, jnp.int32)
        # the better arm pays with p_high, the other with 1 - p_high
        p = jnp.where(action == state.block, params.p_high, 1 - params.p_high)
        reward = (u[0] < p).astype(jnp.result_type(float))
        if self.block == "trunc_exp":
            left = state.left - 1
            flip = left <= 0
            left = jnp.where(flip, self._block_length(u[2], params), left)
        else:
            flip = u[1] < params.hazard
            left = state.left
        time = state.time + 1
        nxt = BanditState(time=time, block=jnp.where(flip, 1 - state.block, state.block), left=left,
                          last_action=action, last_reward=reward)
        info = {"block": state.block, "p_reward": p, "flip": flip, "time": state.time}
        return self.observe(nxt), nxt, reward, time >= self.episode_length, info

    def step(self, key, state: BanditState, action, params: BanditParams | None = None):
        """:meth:`step_env`, then, on the trial that ends the episode, the next episode's first
        observation and state in place of the last ones (gymnax's automatic reset). The trial's
        numbers come from the first half of ``split(key)``, the reset's from the second."""
        params = self.default_params if params is None else params
        k_step, k_reset = jr.split(key)
        f = params.p_high.dtype
        u = jnp.concatenate([jr.uniform(k_step, (self.step_draws,), dtype=f),
                             jr.uniform(k_reset, (self.reset_draws,), dtype=f)])
        return self.step_with(u, state, action, params)

    def step_with(self, u, state: BanditState, action, params: BanditParams | None = None):
        """:meth:`step` from ``step_draws + reset_draws`` uniform numbers (the trial's, then the
        reset's)."""
        params = self.default_params if params is None else params
        obs, nxt, reward, done, info = self.step_env_with(u[: self.step_draws], state, action, params)
        obs_reset, state_reset = self.reset_with(u[self.step_draws:], params)
        nxt = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_reset, nxt)
        obs = jnp.where(done, obs_reset, obs)
        return obs, nxt, reward, done, info

    # -- reference numbers ---------------------------------------------------------------------
    def oracle_reward_rate(self) -> float:
        """The expected reward per trial of an agent that knows the block: ``p_high``."""
        return self.p_high

    def mean_block_length(self) -> float:
        """The expected block length (trials)."""
        if self.block == "hazard":
            return math.inf if self.hazard == 0 else 1 / self.hazard
        lo, hi, beta = self.block_min, self.block_max, self.block_beta
        # E floor(min(lo + X, hi)), X ~ Exp(beta): lo + sum_{k=1}^{hi-lo} P(X >= k)
        return lo + sum(math.exp(-k / beta) for k in range(1, hi - lo + 1))


def describe(env: BlockBandit) -> dict[str, Any]:
    """The environment's settings as JSON-able data."""
    return {
        "p_high": env.p_high, "block": env.block, "block_min": env.block_min, "block_max": env.block_max,
        "block_beta": env.block_beta, "hazard": env.hazard, "episode_length": env.episode_length,
        "time_as_input": env.time_as_input,
    }
