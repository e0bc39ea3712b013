"""Reinforcement learning with recurrent agents: environments in pure JAX with gymnax's
functional API (:mod:`nmrnn.rl.env`), a gymnasium wrapper (:mod:`nmrnn.rl.gym`), and actor-critic
training through the library's one training loop (:mod:`nmrnn.rl.a2c`, :mod:`nmrnn.rl.ppo`).

The bandit is also a registered task (``"bandit"``, :class:`BanditTask`) trained by name from a
run spec or the command line (``nmrnn train --task bandit --objective a2c``)."""

from .a2c import (
    A2C,
    PAPER_A2C,
    AbstractEnvironmentTask,
    BanditTask,
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
from .ppo import (
    ALGORITHMS,
    FROM_TASK_AND_CONFIG,
    OBJECTIVES,
    PAPER_PPO,
    PPO,
    PPOBatch,
    make_objective,
    objective_for_task,
    objective_options,
)

__all__ = [
    "A2C", "ALGORITHMS", "AbstractEnvironmentTask", "BLOCK_MODES", "BanditParams", "BanditState", "BanditTask",
    "BlockBandit", "EnvStart", "EnvironmentTask", "FROM_TASK_AND_CONFIG", "OBJECTIVES", "PAPER_A2C", "PAPER_PPO", "PPO", "PPOBatch",
    "Rollout", "check_agent", "evaluate_agent", "gae", "make_objective", "normc_readout", "objective_for_task",
    "objective_options", "policy_terms", "rollout",
]
