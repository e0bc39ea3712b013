"""PPO for recurrent agents, through the one training loop.

Each step of :func:`nmrnn.train.fit` collects one rollout with the current agent (as
:class:`~nmrnn.rl.A2C` does), computes GAE advantages and returns, and then takes
``epochs x minibatches`` optimiser steps on it: each epoch shuffles the environments and splits
them into minibatches of whole sequences; each minibatch replays its observations through the
agent from the initial state (the recurrent state is rebuilt, as recurrent PPO does) and
minimises the clipped surrogate

    policy = -mean[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ],  rho = pi(a | h) / pi_old(a | h_old)
    loss = policy + critic_coef * mean[(R - V)^2] - entropy_coef * mean[H] + sum_i w_i term_i

with the advantages normalised per minibatch (``normalize_advantages``). The replay is noise-free:
with ``noise=False`` the first step's ratio is exactly 1. The curve records the mean over the
inner steps of every term, the clipped fraction and the approximate KL divergence.

The e-nmRNN paper's text trains its agents with PPO at lr 7e-5 and clip epsilon 1 (Table 1); its
Table 2 lists A2C, which :mod:`nmrnn.experiments.bandit` runs. Epochs and minibatches are not
given; the defaults here (4 and 4) are the common ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._validation import check_nonnegative, check_positive, check_positive_int
from ..train.objectives import AbstractInnerObjective, AbstractTerm, add_terms
from .a2c import (
    A2C,
    PAPER_A2C,
    EnvStart,
    check_discount,
    check_rl_task,
    check_terms,
    gae,
    policy_terms,
    rollout,
)
from .env import BlockBandit

#: The PPO numbers of the e-nmRNN paper's Table 1 (the rest as :data:`~nmrnn.rl.PAPER_A2C`).
PAPER_PPO = {"lr": 7e-5, "clip_eps": 1.0}


class PPOBatch(NamedTuple):
    """A rollout ready for PPO's inner steps, batch-major ``(n_envs, T, ...)``."""

    obs: jax.Array
    actions: jax.Array
    logp_old: jax.Array
    advantages: jax.Array
    returns: jax.Array
    reward_rate: jax.Array


class PPO(AbstractInnerObjective):
    """Clipped-surrogate PPO on rollouts of the agent in ``env`` (see the module docstring)."""

    env: BlockBandit
    gamma: jax.Array
    lam: jax.Array
    clip_eps: jax.Array
    entropy_coef: jax.Array
    critic_coef: jax.Array
    terms: tuple[AbstractTerm, ...]
    weights: jax.Array
    n_steps: int = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    normalize_advantages: bool = eqx.field(static=True)
    noise: bool = eqx.field(static=True)

    main_terms = ("policy_loss", "value_loss", "entropy", "reward_rate", "clip_fraction", "approx_kl")

    def __init__(self, env: BlockBandit, *, n_steps: int = PAPER_A2C["n_steps"], epochs: int = 4,
                 minibatches: int = 4, clip_eps: float = 0.2, gamma: float = PAPER_A2C["gamma"],
                 lam: float = PAPER_A2C["lam"], entropy_coef: float = 0.01, critic_coef: float = 0.5,
                 normalize_advantages: bool = True, terms: Sequence[AbstractTerm] = (),
                 weights: Sequence[float] = (), noise: bool = True):
        if not isinstance(env, BlockBandit):
            raise ValueError(f"PPO needs a BlockBandit environment, got {type(env).__name__}")
        f = jnp.result_type(float)
        self.env = env
        self.n_steps = check_positive_int("n_steps", n_steps)
        if self.n_steps > env.episode_length:
            raise ValueError(f"PPO's rollouts replay whole episodes from their start: n_steps={n_steps} "
                             f"must not exceed the episode length {env.episode_length}")
        self.epochs = check_positive_int("epochs", epochs)
        self.minibatches = check_positive_int("minibatches", minibatches)
        self.clip_eps = jnp.asarray(check_positive("clip_eps", clip_eps), f)
        self.gamma = jnp.asarray(check_discount("gamma", gamma), f)
        self.lam = jnp.asarray(check_discount("lam", lam), f)
        self.entropy_coef = jnp.asarray(check_nonnegative("entropy_coef", entropy_coef), f)
        self.critic_coef = jnp.asarray(check_nonnegative("critic_coef", critic_coef), f)
        self.terms, self.weights = check_terms(terms, weights, self.main_terms)
        self.normalize_advantages, self.noise = bool(normalize_advantages), bool(noise)

    @property
    def n_inner(self) -> int:
        return self.epochs * self.minibatches

    @property
    def term_names(self) -> tuple[str, ...]:
        return (*self.main_terms, *(t.name for t in self.terms))

    def prepare(self, model, data: EnvStart, *, key) -> PPOBatch:
        ro = rollout(model, self.env, data, key, self.n_steps, noise=self.noise)
        adv, ret = gae(ro.rewards, ro.values, ro.dones, ro.last_value, self.gamma, self.lam)
        logp, _ = policy_terms(ro.logits, ro.actions)
        bm = lambda a: jnp.moveaxis(a, 0, 1)  # noqa: E731
        return jax.lax.stop_gradient(PPOBatch(bm(ro.obs), bm(ro.actions), bm(logp), bm(adv), bm(ret),
                                              jnp.mean(ro.rewards)))

    def minibatch(self, n_envs: int, i, key) -> jax.Array:
        """The environments of inner step ``i``: epoch ``i // minibatches`` permutes them (with
        ``key`` folded with the epoch), its minibatch ``i % minibatches`` takes a slice."""
        size = n_envs // self.minibatches
        epoch, part = i // self.minibatches, i % self.minibatches
        perm = jr.permutation(jr.fold_in(key, epoch), n_envs)
        return jax.lax.dynamic_slice_in_dim(perm, part * size, size)

    def inner(self, model, prepared: PPOBatch, i, *, key):
        n_envs = prepared.obs.shape[0]
        if n_envs % self.minibatches:
            raise ValueError(f"PPO splits the {n_envs} environments into {self.minibatches} minibatches: "
                             "the number of environments (batch_size) must be a multiple of it")
        idx = self.minibatch(n_envs, i, key)
        mb = jax.tree.map(lambda a: a[idx] if jnp.ndim(a) else a, prepared)
        traj = model.forward(mb.obs)
        n_act = self.env.num_actions
        logits, values = traj.outputs[..., :n_act], traj.outputs[..., n_act]
        logp, entropy = policy_terms(logits, mb.actions)
        adv = mb.advantages
        if self.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = jnp.exp(logp - mb.logp_old)
        clipped = jnp.clip(ratio, 1 - self.clip_eps, 1 + self.clip_eps)
        policy = -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))
        value = jnp.mean((mb.returns - values) ** 2)
        ent = jnp.mean(entropy)
        total = policy + self.critic_coef * value - self.entropy_coef * ent
        aux = {"policy_loss": policy, "value_loss": value, "entropy": ent, "reward_rate": mb.reward_rate,
               "clip_fraction": jnp.mean((jnp.abs(ratio - 1) > self.clip_eps).astype(total.dtype)),
               "approx_kl": jnp.mean((ratio - 1) - jnp.log(ratio))}
        return add_terms(total, aux, self.terms, self.weights, model, traj, mb)

    def validate(self, model, task) -> None:
        check_rl_task("PPO", self, model, task)


ALGORITHMS = ("a2c", "ppo")

#: The reinforcement-learning objectives by name (``RunSpec.objective``, ``nmrnn train
#: --objective``).
OBJECTIVES: dict[str, type] = {"a2c": A2C, "ppo": PPO}

#: The constructor arguments of an objective built for a task (:func:`objective_for_task`) that
#: are not its options: the environment and the rollout length come from the task, the
#: regularisers (``terms``, ``weights``) and the hidden-state ``noise`` from the training config,
#: so that every setting has one place.
FROM_TASK_AND_CONFIG = ("env", "n_steps", "terms", "weights", "noise")


def objective_options(algorithm: str, *, for_task: bool = False) -> dict[str, object]:
    """The options of objective ``algorithm`` with their defaults (``for_task``: without those
    that :func:`objective_for_task` takes from the task and the config)."""
    import inspect

    from .._validation import check_choice

    cls = OBJECTIVES[check_choice("objective", algorithm, OBJECTIVES)]
    skip = ("self", *(FROM_TASK_AND_CONFIG if for_task else ("env",)))
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k not in skip}


def make_objective(algorithm: str, env: BlockBandit, **options):
    """The training objective of ``algorithm`` (``"a2c"`` or ``"ppo"``) for agents in ``env``;
    unknown names and options are refused before anything compiles."""
    from .._validation import check_known_options

    allowed = objective_options(algorithm)
    check_known_options(f"objective {algorithm!r}", options, allowed)
    return OBJECTIVES[algorithm](env, **options)


def objective_for_task(algorithm: str, task, config, **options):
    """Objective ``algorithm`` for training on environment task ``task`` with ``config`` (a
    :class:`~nmrnn.train.TrainConfig`): rollouts of ``task.n_steps`` steps in ``task.env``, the
    config's regularisers (activity L2, weight L2, weight L1: those with positive weights, as
    :func:`nmrnn.train.loop.default_objective` takes them) as its terms and the config's
    ``noise``; ``options`` are the rest (:func:`objective_options` with ``for_task``). The
    training loop then gets the config without those regularisers
    (``RunSpec.training``)."""
    from .._validation import check_known_options
    from ..train.loop import default_objective

    allowed = objective_options(algorithm, for_task=True)
    check_known_options(f"objective {algorithm!r}", options, allowed)
    supervised = default_objective(config)
    return OBJECTIVES[algorithm](task.env, n_steps=task.n_steps, terms=supervised.terms,
                                 weights=[float(w) for w in supervised.weights], noise=config.noise, **options)
