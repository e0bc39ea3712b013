"""Recurrent actor-critic agents trained by :func:`nmrnn.train.fit`.

An *agent* is any library model whose readout has ``num_actions + 1`` outputs: the policy's
logits and the value, read out of the same network (the paper's ``shared_rnn``). The recurrent
state starts from the model's initial state at the start of an episode and is carried across the
trials of the episode.

Training goes through the one training loop. An environment task is the data source
(:class:`EnvironmentTask` of any :class:`~nmrnn.rl.env.BlockBandit`, or the registered
``"bandit"`` task :class:`BanditTask`, whose options are the environment's settings): each
optimiser step it gives ``n_envs`` freshly reset environments. :class:`A2C` is the objective: it
rolls the agent out for ``n_steps`` trials in those environments (sampling actions, with the
model's hidden-state noise), computes generalised advantage estimates (:func:`gae`) and returns
the advantage actor-critic loss (as the paper's code release and the PyTorch A2C it builds on):

    loss = policy + critic_coef * value - entropy_coef * entropy + sum_i w_i term_i
    policy = -mean_t,b[ stop_grad(A_tb) * log pi(a_tb | h_tb) ]
    value  =  mean_t,b[ (stop_grad(R_tb) - V_tb)^2 ],  R = A + V (the lambda-return)
    entropy = mean_t,b[ H(pi(. | h_tb)) ]

so environment, rollout and update are one compiled program (``lax.scan`` over updates), with the
loop's checkpoints, exact resume, NaN stop and learning curves: the curve records every term,
the entropy and the reward per trial.

Speed. The loss depends on the parameters only through the agent's outputs on the observations
it saw: the observations depend on them only through sampled (discrete) actions, which carry no
gradient. So the rollout runs without derivatives, its random numbers drawn before its loop
(:func:`rollout`), and the outputs are recomputed by ``model.forward`` on its observations with
the same noise (the same states), whose backward pass is the model's hand-written one where it
has one (:mod:`nmrnn.models.bptt`): the same loss and gradient as differentiating through the
rollout loop (:meth:`A2C.loss_through_rollout`, still used when episodes restart inside a
rollout), in about two thirds of the time (``benchmarks/RESULTS.md``).

The paper's table (``policy_algorithm a2c``): lr 7e-4, gamma 0.95, GAE lambda 0.95, entropy
coefficient 0.3, critic coefficient 0.01, max grad norm 0.5, Adam with eps 1e-8, 16 environments,
200 steps per update (one 200-trial episode), activity L2 coefficient 100, hidden-state noise
0.002: :data:`PAPER_A2C`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_nonnegative, check_positive, check_positive_int
from ..models.base import AbstractRecurrentModel, Trajectory
from ..tasks.base import AbstractTask
from ..tasks.registry import register_task
from ..train.objectives import AbstractObjective, AbstractTerm, add_terms
from .env import BanditParams, BlockBandit

#: The e-nmRNN paper's A2C settings (supplement, Table 2).
PAPER_A2C = {
    "lr": 7e-4, "gamma": 0.95, "lam": 0.95, "entropy_coef": 0.3, "critic_coef": 0.01,
    "max_grad_norm": 0.5, "adam_eps": 1e-8, "n_envs": 16, "n_steps": 200, "activity_l2": 100.0,
    "hidden_noise_std": 0.002, "num_updates": 50_000,
}


def check_discount(name: str, value: Any) -> float:
    """A discount or GAE lambda: a number in (0, 1]."""
    v = check_positive(name, value)
    if v > 1:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return v


# ----------------------------------------------------------------------------------------------
# the data source
# ----------------------------------------------------------------------------------------------


class EnvStart(eqx.Module):
    """``n`` freshly reset environments: their first observations ``obs (n, obs_size)``, states
    (leading axis ``n``) and the environment's ``params``."""

    obs: jax.Array
    state: Any
    params: BanditParams

    @property
    def batch_size(self) -> int:
        return self.obs.shape[0]


class AbstractEnvironmentTask(AbstractTask):
    """An environment as :func:`nmrnn.train.fit`'s data source: ``sample(key, n)`` resets ``n``
    environments (an :class:`EnvStart`). ``n_in`` is the observation size, ``n_out`` the
    number of actions plus one (the value). ``n_steps`` is the rollout length of an update.

    An environment has no supervised loss: it trains with a reinforcement-learning objective
    (:attr:`objectives`, built by :meth:`training_objective`), and a trained agent is evaluated
    by playing fresh episodes (:meth:`evaluate_model`, :func:`evaluate_agent`)."""

    env: eqx.AbstractVar[BlockBandit]
    params: eqx.AbstractVar[BanditParams]

    default_batch_size = PAPER_A2C["n_envs"]
    objectives = ("a2c", "ppo")

    def sample(self, key, batch_size: int) -> EnvStart:
        check_positive_int("n_envs", batch_size)
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(jr.split(key, batch_size), self.params)
        return EnvStart(obs, state, self.params)

    def evaluation_batches(self, key):
        raise NotImplementedError("an environment has no evaluation batches: evaluate an agent with "
                                  "task.evaluate_model or nmrnn.rl.evaluate_agent")

    def training_objective(self, name, options, config):
        """The objective ``name`` (``"a2c"`` or ``"ppo"``, :func:`~nmrnn.rl.objective_for_task`):
        its rollouts as long as this task's ``n_steps``, the training config's regularisers as
        its terms and the config's ``noise``."""
        from .ppo import objective_for_task

        return objective_for_task(name, self, config, **dict(options))

    def evaluate_model(self, model, key) -> dict[str, dict[str, float]]:
        """``{"test": evaluate_agent(...)}`` over ``4 * default_batch_size`` fresh episodes
        (noise-free, actions sampled from the policy)."""
        return {"test": evaluate_agent(model, self, key, n_envs=4 * self.default_batch_size)}


class EnvironmentTask(AbstractEnvironmentTask):
    """An :class:`AbstractEnvironmentTask` of a given environment (``env``, default
    ``BlockBandit()``) and its ``params`` (default: its own); ``n_steps`` defaults to the
    episode length."""

    env: BlockBandit
    params: BanditParams
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)

    def __init__(self, env: BlockBandit | None = None, *, n_steps: int | None = None,
                 params: BanditParams | None = None):
        self.env = BlockBandit() if env is None else env
        if not isinstance(self.env, BlockBandit):
            raise ValueError(f"EnvironmentTask needs a BlockBandit, got {type(self.env).__name__}")
        self.params = self.env.default_params if params is None else params
        self.n_in = self.env.obs_size
        self.n_out = self.env.num_actions + 1
        self.n_steps = check_positive_int("n_steps", self.env.episode_length if n_steps is None else n_steps)


class BanditTask(AbstractEnvironmentTask):
    """The block-switching bandit as a registered task (``make_task("bandit", ...)``, ``nmrnn
    train --task bandit``): the options are :class:`BlockBandit`'s settings (JSON-able, so a run
    directory's spec describes the environment) and ``n_steps``, the rollout length of an update
    (default: one episode). The same environment and data as
    ``EnvironmentTask(BlockBandit(**settings), n_steps=n_steps)``."""

    env: BlockBandit
    params: BanditParams
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)

    def __init__(self, *, p_high: float = 0.8, block: str = "trunc_exp", block_min: int = 40,
                 block_max: int = 80, block_beta: float = 20.0, hazard: float = 0.02,
                 episode_length: int = PAPER_A2C["n_steps"], time_as_input: bool = False,
                 n_steps: int | None = None):
        self.env = BlockBandit(p_high=p_high, block=block, block_min=block_min, block_max=block_max,
                               block_beta=block_beta, hazard=hazard, episode_length=episode_length,
                               time_as_input=time_as_input)
        self.params = self.env.default_params
        self.n_in = self.env.obs_size
        self.n_out = self.env.num_actions + 1
        self.n_steps = check_positive_int("n_steps", self.env.episode_length if n_steps is None else n_steps)


# ----------------------------------------------------------------------------------------------
# rollouts and advantages
# ----------------------------------------------------------------------------------------------


class Rollout(NamedTuple):
    """An agent's rollout, every field time-major ``(T, n_envs, ...)``: the observation it saw,
    its logits, value and sampled action, the reward and episode end that followed, the
    environment's info (``block``, ``p_reward``, ``flip``, ``time``), the model state after the
    input of the step, the value of the state after the last step (``last_value (n_envs,)``,
    for bootstrapping a rollout that ends mid-episode), and ``noise_key``: the key of the model's
    noise (``None`` without noise), with which ``model.forward(obs, key=noise_key)`` replays the
    rollout's states (see :func:`rollout`)."""

    obs: jax.Array
    logits: jax.Array
    values: jax.Array
    actions: jax.Array
    rewards: jax.Array
    dones: jax.Array
    info: dict[str, jax.Array]
    states: Any
    last_value: jax.Array
    noise_key: Any = None


def check_agent(model: AbstractRecurrentModel, env: BlockBandit) -> None:
    """Refuse a model that cannot be an agent of ``env`` (before anything compiles)."""
    if getattr(model, "n_in", None) != env.obs_size:
        raise ValueError(
            f"the agent's model has n_in={getattr(model, 'n_in', None)} but the environment's "
            f"observation has {env.obs_size} entries (previous action one-hot, previous reward"
            + (", time" if env.time_as_input else "") + ")"
        )
    if getattr(model, "n_out", None) != env.num_actions + 1:
        raise ValueError(
            f"the agent's model has n_out={getattr(model, 'n_out', None)}; an agent needs "
            f"{env.num_actions + 1} (the {env.num_actions} action logits and the value)"
        )
    try:
        model.initial_state(())
    except NotImplementedError:
        raise ValueError(f"{type(model).__name__} has no one-step map and cannot be an agent") from None


def check_terms(terms: Sequence[AbstractTerm], weights: Sequence[float], reserved: Sequence[str]):
    """An RL objective's regularisers: one non-negative weight per term, names distinct and
    none of the objective's own ``reserved`` names. Returns ``(terms, weights array)``."""
    terms, weights = tuple(terms), tuple(weights)
    if len(weights) != len(terms):
        raise ValueError(f"{len(terms)} terms need {len(terms)} weights, got {len(weights)}")
    names = [t.name for t in terms]
    if len(set(names)) != len(names) or set(names) & set(reserved):
        raise ValueError(f"term names must be distinct and differ from {tuple(reserved)}: {names}")
    w = [check_nonnegative(f"weight of {n}", v) for n, v in zip(names, weights, strict=True)]
    return terms, jnp.asarray(w, jnp.result_type(float)).reshape(-1)


def check_rl_task(name: str, objective, model: AbstractRecurrentModel, task) -> None:
    """Refuse a task or agent that RL objective ``name`` (with ``env`` and ``n_steps``) cannot
    train on (the objectives' ``validate``)."""
    if not isinstance(task, AbstractEnvironmentTask):
        raise ValueError(f"the {name} objective trains on an environment task, got {type(task).__name__}")
    if task.env != objective.env:
        raise ValueError(f"the {name} objective's environment differs from the task's")
    if task.n_steps != objective.n_steps:
        raise ValueError(f"the task rolls out {task.n_steps} steps but the objective {objective.n_steps}")
    check_agent(model, objective.env)


def rollout(model: AbstractRecurrentModel, env: BlockBandit, start: EnvStart, key, n_steps: int, *,
            noise: bool = True, greedy: bool = False) -> Rollout:
    """Run the agent for ``n_steps`` trials in the environments of ``start``. Actions are sampled
    from the policy (``greedy``: its most likely action); ``noise`` feeds the model's hidden-state
    noise. The model state returns to the initial state where an episode ends.

    Randomness: ``key`` splits into ``(noise, action, environment)`` keys. The model's noise uses
    ``split(noise_key, n_steps)``, one key per step, as :meth:`model.forward` does with
    ``key=noise_key``: within one episode the rollout's states are those of
    ``model.forward(obs, key=noise_key)`` on the observations it saw. The actions' Gumbel
    numbers ``(n_steps, n_envs, num_actions)`` and the environments' uniform numbers
    ``(n_steps, n_envs, draws)`` are drawn in one call each before the loop: the loop itself
    draws nothing but the model's noise (sampling ``argmax(logits + Gumbel)`` is
    ``jax.random.categorical``'s method)."""
    core = model.materialize()
    n = start.obs.shape[0]
    h0 = core.initial_state((n,))
    n_act = env.num_actions
    k_noise, k_act, k_env = jr.split(key, 3)
    noise_keys = jr.split(k_noise, n_steps) if noise else None
    dtype = start.obs.dtype
    gumbel = None if greedy else jr.gumbel(k_act, (n_steps, n, n_act), dtype)
    # a rollout from fresh environments that ends within the episode never needs the reset
    resets = n_steps > env.episode_length
    draws = env.step_draws + (env.reset_draws if resets else 0)
    uniforms = jr.uniform(k_env, (n_steps, n, draws), dtype)
    step_envs = jax.vmap(env.step_with if resets else env.step_env_with, in_axes=(0, 0, 0, None))

    def body(carry, scanned):
        h, obs, es = carry
        k, g, u = scanned
        h = core.step(h, obs, key=k)
        y = core.readout(h)
        logits, value = y[..., :n_act], y[..., n_act]
        action = jnp.argmax(logits if greedy else logits + g, -1)
        obs2, es2, reward, done, info = step_envs(u, es, action, start.params)
        h_next = jax.tree.map(lambda a, b: jnp.where(done[:, None], a, b), h0, h) if resets else h
        return (h_next, obs2, es2), (obs, logits, value, action, reward, done, info, h)

    (h_last, obs_last, _), out = jax.lax.scan(body, (h0, start.obs, start.state), (noise_keys, gumbel, uniforms))
    obs, logits, values, actions, rewards, dones, info, states = out
    if not resets:  # the episode may end on the last step
        h_last = jax.tree.map(lambda a, b: jnp.where(dones[-1][:, None], a, b), h0, h_last)
    h_boot = core.step(h_last, obs_last, key=None)
    last_value = core.readout(h_boot)[..., n_act]
    return Rollout(obs, logits, values, actions, rewards, dones, info, states, last_value,
                   k_noise if noise else None)


def gae(rewards, values, dones, last_value, gamma, lam):
    """Generalised advantage estimates and lambda-returns, time-major ``(T, ...)``.

    ``delta_t = r_t + gamma (1 - d_t) V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma lam (1 - d_t) A_{t+1}``, with ``V_T = last_value`` and ``d_t`` the
    end of an episode at step t. Returns ``(advantages, returns = A + V)``."""
    not_done = 1.0 - jnp.asarray(dones, values.dtype)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    deltas = rewards + gamma * not_done * next_values - values

    def back(acc, x):
        delta, nd = x
        acc = delta + gamma * lam * nd * acc
        return acc, acc

    _, adv = jax.lax.scan(back, jnp.zeros_like(last_value), (deltas, not_done), reverse=True)
    return adv, adv + values


def policy_terms(logits, actions):
    """``(log pi(a), entropy)`` of categorical policies with ``logits (..., A)``."""
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(logp_all, actions[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    return logp, entropy


# ----------------------------------------------------------------------------------------------
# the objective
# ----------------------------------------------------------------------------------------------


class A2C(AbstractObjective):
    """The advantage actor-critic loss of a rollout of the agent in ``env`` (see the module
    docstring). Numbers are array leaves (data: changing one does not recompile); ``terms`` and
    ``weights`` add regularisers on the rollout's trajectory (:class:`~nmrnn.train.ActivityL2`
    is the paper's activity L2)."""

    env: BlockBandit
    gamma: jax.Array
    lam: jax.Array
    entropy_coef: jax.Array
    critic_coef: jax.Array
    terms: tuple[AbstractTerm, ...]
    weights: jax.Array
    n_steps: int = eqx.field(static=True)
    noise: bool = eqx.field(static=True)

    main_terms = ("policy_loss", "value_loss", "entropy", "reward_rate")

    def __init__(self, env: BlockBandit, *, n_steps: int = PAPER_A2C["n_steps"], gamma: float = PAPER_A2C["gamma"],
                 lam: float = PAPER_A2C["lam"], entropy_coef: float = PAPER_A2C["entropy_coef"],
                 critic_coef: float = PAPER_A2C["critic_coef"], terms: Sequence[AbstractTerm] = (),
                 weights: Sequence[float] = (), noise: bool = True):
        if not isinstance(env, BlockBandit):
            raise ValueError(f"A2C needs a BlockBandit environment, got {type(env).__name__}")
        f = jnp.result_type(float)
        self.env = env
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.gamma = jnp.asarray(check_discount("gamma", gamma), f)
        self.lam = jnp.asarray(check_discount("lam", lam), f)
        self.entropy_coef = jnp.asarray(check_nonnegative("entropy_coef", entropy_coef), f)
        self.critic_coef = jnp.asarray(check_nonnegative("critic_coef", critic_coef), f)
        self.terms, self.weights = check_terms(terms, weights, self.main_terms)
        self.noise = bool(noise)

    @property
    def term_names(self) -> tuple[str, ...]:
        return (*self.main_terms, *(t.name for t in self.terms))

    def loss_of(self, ro: Rollout) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The actor-critic loss and its terms from a rollout (no regularisers)."""
        adv, ret = gae(ro.rewards, jax.lax.stop_gradient(ro.values), ro.dones,
                       jax.lax.stop_gradient(ro.last_value), self.gamma, self.lam)
        adv, ret = jax.lax.stop_gradient(adv), jax.lax.stop_gradient(ret)
        logp, entropy = policy_terms(ro.logits, ro.actions)
        policy = -jnp.mean(adv * logp)
        value = jnp.mean((ret - ro.values) ** 2)
        ent = jnp.mean(entropy)
        total = policy + self.critic_coef * value - self.entropy_coef * ent
        aux = {"policy_loss": policy, "value_loss": value, "entropy": ent, "reward_rate": jnp.mean(ro.rewards)}
        return total, aux

    def __call__(self, model, data: EnvStart, *, key):
        if self.n_steps > self.env.episode_length:  # episodes restart within the rollout
            return self.loss_through_rollout(model, data, key=key)
        return self.loss_by_replay(model, data, key=key)

    def loss_through_rollout(self, model, data: EnvStart, *, key):
        """The loss, differentiated through the rollout itself (its loop, environment steps
        included): the general case, used when episodes restart within a rollout."""
        ro = rollout(model, self.env, data, key, self.n_steps, noise=self.noise)
        total, aux = self.loss_of(ro)
        batch_major = lambda a: jnp.moveaxis(a, 0, 1)  # noqa: E731
        traj = Trajectory(batch_major(ro.logits), jax.tree.map(batch_major, ro.states))
        return add_terms(total, aux, self.terms, self.weights, model, traj, data)

    def loss_by_replay(self, model, data: EnvStart, *, key):
        """The same loss and gradient, faster: the rollout runs without derivatives and the
        agent's outputs are recomputed by ``model.forward`` on the observations it saw, with the
        rollout's noise (:func:`rollout`: the same states), which differentiates with the
        model's hand-written backward pass where it has one (:mod:`nmrnn.models.bptt`). Exact
        because nothing the loss differentiates flows through the environment: the
        observations depend on the parameters only through the sampled (discrete) actions.
        Needs one episode per rollout (``n_steps <= episode_length``: no restart inside)."""
        ro = rollout(jax.lax.stop_gradient(model), self.env, data, key, self.n_steps, noise=self.noise)
        traj = model.forward(jnp.moveaxis(ro.obs, 0, 1), key=ro.noise_key)
        time_major = jnp.moveaxis(traj.outputs, 1, 0)
        n_act = self.env.num_actions
        total, aux = self.loss_of(ro._replace(logits=time_major[..., :n_act], values=time_major[..., n_act]))
        return add_terms(total, aux, self.terms, self.weights, model, traj, data)

    def validate(self, model, task) -> None:
        check_rl_task("A2C", self, model, task)


def normc_readout(model: AbstractRecurrentModel, key, *, gain: float = 1.0) -> AbstractRecurrentModel:
    """The model with its readout re-initialised "normc"-style (the PyTorch RL codebases' and the
    paper's ``policy_net_initialization_method normc``): each output's weight row drawn from
    N(0, 1) and scaled to norm ``gain``, the bias set to 0. The readout is the model's
    ``readout`` parameter group (matrix, bias)."""
    check_positive("gain", gain)
    paths = type(model).param_groups.get("readout")
    if not paths:
        raise ValueError(f"{type(model).__name__} declares no readout parameter group")
    w_name, b_name = paths[0], paths[1] if len(paths) > 1 else None
    w = getattr(model, w_name)
    new = jr.normal(key, w.shape, w.dtype)
    new = gain * new / jnp.sqrt(jnp.sum(new**2, axis=1, keepdims=True))
    model = eqx.tree_at(lambda m: getattr(m, w_name), model, new)
    if b_name is not None and getattr(model, b_name, None) is not None:
        model = eqx.tree_at(lambda m: getattr(m, b_name), model, jnp.zeros_like(getattr(model, b_name)))
    return model


def evaluate_agent(model: AbstractRecurrentModel, task: AbstractEnvironmentTask, key, *, n_envs: int = 64,
                   greedy: bool = False) -> dict[str, float]:
    """Reward per trial, fraction of trials on the better arm, and the oracle's reward rate over
    ``n_envs`` fresh episodes of ``task.n_steps`` trials (noise-free)."""
    k_env, k_run = jr.split(key)
    start = task.sample(k_env, n_envs)
    ro = _eval_rollout(model, task.env, start, k_run, task.n_steps, greedy)
    best = np.asarray(ro.actions == ro.info["block"])
    return {"reward_rate": float(np.mean(np.asarray(ro.rewards))), "p_best": float(np.mean(best)),
            "oracle_reward_rate": task.env.oracle_reward_rate()}


@eqx.filter_jit
def _eval_rollout(model, env, start, key, n_steps, greedy):
    return rollout(model, env, start, key, n_steps, noise=False, greedy=greedy)


register_task("bandit")(BanditTask)
