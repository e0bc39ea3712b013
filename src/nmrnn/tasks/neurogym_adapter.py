"""Any neurogym environment as a task of this library (T8).

``NeurogymTask(env, n_steps=...)`` turns a neurogym trial environment (an id such as
``"PerceptualDecisionMaking-v0"``, or an environment object) into :class:`~nmrnn.tasks.base.Batch`
batches, so every model of the library trains on every neurogym task with the same training loop.

neurogym is an optional dependency (``pip install nmrnn[neurogym]``); it is imported only when a
``NeurogymTask`` is built.

Conventions
-----------
* Inputs are the environment's observations ``env.ob`` (flattened), one step per neurogym ``dt``.
* Targets come from the ground truth ``env.gt``: for a discrete action space the one-hot of the
  target action (``n_out = number of actions``; the models are trained with the masked MSE on
  it), for a continuous (Box) action space the target vector itself.
* Mask: ``mask="all"`` scores every step of every trial, including the fixation periods (as
  neurogym's supervised examples do: they train on the ground truth at every step);
  ``mask="decision"`` scores only the steps whose target is not the fixation action (neurogym
  names it in ``action_space.name["fixation"]``; action 0 if the space does not say). Padding steps
  are never scored. An environment that defines its own per-step ``mask`` (a few neurogym contrib
  environments) has it multiplied in.
* ``mode="single"``: each row is one trial, starting at step 0; steps after the trial's end are
  zero inputs with mask 0; a trial longer than ``n_steps`` is cut (``info["trial_length"]`` shows
  its full length, so ``trial_length > n_steps`` flags it). ``mode="stream"``: each row is filled
  with consecutive trials, the last one cut at ``n_steps`` (neurogym's ``Dataset`` convention,
  except that a row always starts at a trial onset). ``info["new_trial"]`` marks trial onsets.
* Determinism: generation runs on the host (neurogym is NumPy code). For each batch a fresh copy
  of the environment is seeded with a seed derived from the key, so the same key gives the same
  batch and different keys give independent batches. ``sample`` goes through
  ``jax.pure_callback``, so it also runs inside a compiled training loop (at host speed).
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validation import check_choice, check_positive_int
from .base import AbstractTask, Batch, masked_mse

MODES = ("single", "stream")
MASKS = ("all", "decision")
INSTALL_HINT = "pip install nmrnn[neurogym]"


def import_neurogym():
    """Import neurogym, or explain how to install it."""
    try:
        import neurogym
    except ImportError as err:
        raise ImportError(
            "the neurogym adapter needs the optional dependency neurogym; install it with "
            f"`{INSTALL_HINT}`"
        ) from err
    return neurogym


def neurogym_env_ids() -> list[str]:
    """Ids of the registered neurogym environments (native, contrib and collections)."""
    ngym = import_neurogym()
    from neurogym.envs.registration import all_envs

    del ngym
    return all_envs(contrib=True, collections=True)


class NeurogymTask(AbstractTask):
    """A neurogym environment as a task. See the module docstring for the conventions.

    Args:
        env: a neurogym environment id (see :func:`neurogym_env_ids`) or an environment object.
        n_steps: steps per row. Default: the trial length if every period of the environment has
            a fixed duration; otherwise it must be given.
        env_kwargs: keyword arguments for ``neurogym.make`` (e.g. ``{"dt": 100}``); only with an
            id.
        mode: ``"single"`` (one trial per row, zero-padded) or ``"stream"`` (consecutive trials).
        mask: ``"all"`` or ``"decision"``.
    """

    env: Any = eqx.field(static=True)
    env_id: str | None = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    mask_mode: str = eqx.field(static=True)
    discrete: bool = eqx.field(static=True)
    fixation_action: int = eqx.field(static=True)
    obs_shape: tuple[int, ...] = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 32

    def __init__(
        self,
        env: Any = "PerceptualDecisionMaking-v0",
        n_steps: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        mode: str = "single",
        mask: str = "all",
    ):
        ngym = import_neurogym()
        import gymnasium as gym

        self.mode = check_choice("mode", mode, MODES)
        self.mask_mode = check_choice("mask", mask, MASKS)
        if isinstance(env, str):
            check_choice("neurogym environment", env, neurogym_env_ids())
            with _quiet():
                env_obj = ngym.make(env, **(env_kwargs or {}))
            self.env_id = env
        else:
            if env_kwargs:
                raise ValueError("env_kwargs only apply when env is given by its id")
            if not isinstance(env, gym.Env):
                raise ValueError(
                    f"env must be a neurogym environment id or a gymnasium.Env, got "
                    f"{type(env).__name__}"
                )
            env_obj = env
            self.env_id = None
        if not hasattr(env_obj.unwrapped, "new_trial"):
            raise ValueError(
                f"{type(env_obj.unwrapped).__name__} is not a neurogym trial environment "
                "(it has no new_trial)"
            )
        self.env = env_obj
        obs_space, act_space = env_obj.observation_space, env_obj.action_space
        if obs_space.shape is None or act_space.shape is None:
            raise ValueError("the environment's observation and action spaces must have shapes")
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.n_in = int(np.prod(self.obs_shape))
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        if self.discrete:
            self.n_out = int(act_space.n)
            names = getattr(act_space, "name", None) or {}
            fix = names.get("fixation", 0) if isinstance(names, dict) else 0
            self.fixation_action = int(fix) if np.ndim(fix) == 0 else 0
        else:
            if self.mask_mode == "decision":
                raise ValueError(
                    "mask='decision' needs a discrete action space (a fixation action); this "
                    f"environment's action space is {act_space}"
                )
            self.n_out = int(np.prod(act_space.shape))
            self.fixation_action = -1
        if n_steps is None:
            n_steps = _fixed_trial_length(env_obj.unwrapped)
            if n_steps is None:
                raise ValueError(
                    "this environment's trial length varies (random period durations); give "
                    "n_steps (e.g. a high percentile of env.unwrapped.trial_length_stats())"
                )
        self.n_steps = check_positive_int("n_steps", n_steps)

    @property
    def name(self) -> str:
        return self.env_id or type(self.env.unwrapped).__name__

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """``batch_size`` trials generated on the host from a seed derived from ``key``."""
        B = check_positive_int("batch_size", batch_size)
        T = self.n_steps
        if jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        gt_shape = (B, T) if self.discrete else (B, T, self.n_out)
        gt_dtype = jnp.int32 if self.discrete else jnp.float32
        shapes = (
            jax.ShapeDtypeStruct((B, T, self.n_in), jnp.float32),
            jax.ShapeDtypeStruct((B, T, self.n_out), jnp.float32),
            jax.ShapeDtypeStruct((B, T, self.n_out), jnp.float32),
            jax.ShapeDtypeStruct(gt_shape, gt_dtype),
            jax.ShapeDtypeStruct((B,), jnp.int32),
            jax.ShapeDtypeStruct((B, T), jnp.bool_),
        )
        fn = functools.partial(_host_batch, self, B)
        inputs, targets, mask, gt, length, new_trial = jax.pure_callback(
            fn, shapes, key, vmap_method="sequential"
        )
        info = {"gt": gt, "trial_length": length, "new_trial": new_trial}
        return Batch(inputs, targets, mask, info)

    def generate(self, seed: int, batch_size: int) -> Batch:
        """The batch that a key deriving ``seed`` gives, made directly on the host (NumPy)."""
        arrays = _generate(self, int(seed), check_positive_int("batch_size", batch_size))
        inputs, targets, mask, gt, length, new_trial = (jnp.asarray(a) for a in arrays)
        return Batch(inputs, targets, mask, {"gt": gt, "trial_length": length,
                                             "new_trial": new_trial})

    def evaluate(self, outputs: Array, batch: Batch) -> dict[str, float]:
        """``loss`` (masked MSE); for discrete actions also ``accuracy`` (argmax of the outputs
        equals the target action, over scored steps), ``decision_accuracy`` (the same over
        scored steps whose target is not fixation) and ``choice_accuracy`` (on those steps, the
        largest output among the non-fixation actions is the target: which choice the network
        leans to, whether or not it has released fixation)."""
        result = {"loss": float(masked_mse(outputs, batch.targets, batch.mask))}
        if not self.discrete:
            return result
        out = np.asarray(outputs)
        gt = np.asarray(batch.info["gt"])
        scored = np.asarray(batch.mask).max(axis=-1) > 0
        hit = out.argmax(axis=-1) == gt
        if scored.any():
            result["accuracy"] = float(hit[scored].mean())
        decision = scored & (gt != self.fixation_action)
        if decision.any():
            result["decision_accuracy"] = float(hit[decision].mean())
            choice_scores = out.copy()
            choice_scores[..., self.fixation_action] = -np.inf
            choice_hit = choice_scores.argmax(axis=-1) == gt
            result["choice_accuracy"] = float(choice_hit[decision].mean())
        return result


def seed_from_key_data(key_data) -> int:
    """A 32-bit seed for NumPy / neurogym from the raw data of a JAX key."""
    words = np.asarray(key_data, dtype=np.uint32).ravel().tolist()
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _host_batch(task: NeurogymTask, batch_size: int, key_data):
    return _generate(task, seed_from_key_data(key_data), batch_size)


def _generate(task: NeurogymTask, seed: int, B: int):
    T = task.n_steps
    inputs = np.zeros((B, T, task.n_in), np.float32)
    gt_all = np.zeros((B, T) if task.discrete else (B, T, task.n_out),
                      np.int32 if task.discrete else np.float32)
    valid = np.zeros((B, T), np.float32)
    extra = np.ones((B, T), np.float32)
    length = np.zeros((B,), np.int32)
    new_trial = np.zeros((B, T), bool)
    with _quiet():
        env = copy.deepcopy(task.env)
        env.seed(seed)
        for b in range(B):
            t0 = 0
            while t0 < T:
                env.new_trial()
                ob = np.asarray(env.ob, np.float32)
                gt = np.asarray(env.gt)
                n = ob.shape[0]
                if t0 == 0:
                    length[b] = n
                k = min(n, T - t0)
                inputs[b, t0 : t0 + k] = ob[:k].reshape(k, -1)
                gt_all[b, t0 : t0 + k] = gt[:k].reshape((k,) + gt_all.shape[2:])
                valid[b, t0 : t0 + k] = 1.0
                new_trial[b, t0] = True
                own_mask = getattr(env.unwrapped, "mask", None)
                if isinstance(own_mask, np.ndarray) and own_mask.shape[:1] == (n,):
                    extra[b, t0 : t0 + k] = own_mask[:k].reshape(k, -1).max(axis=-1)
                t0 += k
                if task.mode == "single":
                    break
    if task.discrete:
        targets = np.eye(task.n_out, dtype=np.float32)[gt_all]
        scored = valid * extra
        if task.mask_mode == "decision":
            scored = scored * (gt_all != task.fixation_action)
    else:
        targets = gt_all.astype(np.float32)
        scored = valid * extra
    mask = np.repeat(scored[..., None], task.n_out, axis=-1).astype(np.float32)
    return inputs, targets, mask, gt_all, length, new_trial


def _fixed_trial_length(env) -> int | None:
    timing = getattr(env, "timing", None)
    dt = getattr(env, "dt", None)
    if not timing or not dt or not all(isinstance(v, int | float) for v in timing.values()):
        return None
    return int(sum(int(v // dt) for v in timing.values()))


class _quiet(warnings.catch_warnings):
    """Silence gymnasium's warnings about reaching attributes through wrappers."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", message=".*other wrappers is deprecated.*")
        warnings.filterwarnings("ignore", message=".*render_modes.*")
        return out


__all__ = ["NeurogymTask", "import_neurogym", "neurogym_env_ids", "seed_from_key_data"]
