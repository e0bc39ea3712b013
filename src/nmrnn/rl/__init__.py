"""Reinforcement learning with recurrent agents: environments in pure JAX with gymnax's
functional API (:mod:`nmrnn.rl.env`), a gymnasium wrapper (:mod:`nmrnn.rl.gym`), and actor-critic
training through the library's one training loop (:mod:`nmrnn.rl.a2c`, :mod:`nmrnn.rl.ppo`)."""

from .a2c import (
    A2C,
    PAPER_A2C,
    EnvironmentTask,
    EnvStart,
    Rollout,
    check_agent,
    evaluate_agent,
    gae,
    normc_readout,
    policy_terms,
    rollout,
)
from .env import BLOCK_MODES, BanditParams, BanditState, BlockBandit
from .ppo import ALGORITHMS, PAPER_PPO, PPO, PPOBatch, make_objective

__all__ = [
    "A2C", "ALGORITHMS", "make_objective", "BLOCK_MODES", "PAPER_A2C", "BanditParams", "BanditState", "BlockBandit", "EnvStart",
    "EnvironmentTask", "PAPER_PPO", "PPO", "PPOBatch", "Rollout", "check_agent", "evaluate_agent", "gae", "normc_readout", "policy_terms", "rollout",
]
