"""Objectives: what training minimises.

An objective is a small protocol, ``objective(model, data, *, key) -> (loss, aux)``: ``data`` is
whatever the training data source produced for this step (a :class:`~nmrnn.tasks.base.Batch` of
a supervised task; an environment's initial states for a reinforcement-learning objective that
rolls the model out itself), ``key`` feeds the model's noise or the rollout's sampling, ``loss``
is the scalar to minimise and ``aux`` a dict of named scalars, every one of which
:func:`nmrnn.train.fit` records in the learning curve (one column per term).

Objectives are ``equinox.Module`` s whose numbers (regulariser weights) are array leaves: passed
to the compiled training loop as data, so changing a weight does not recompile and an ensemble
can give each member its own.

* :class:`Supervised`: masked MSE or masked cross-entropy on a batch, plus any number of
  weighted :class:`AbstractTerm` s (``total = main + sum_i w_i term_i``).
* Terms: :class:`WeightL2`, :class:`WeightL1` (per parameter group), :class:`ActivityL2` (mean
  squared state), :class:`Penalty` (any callable, e.g. a wiring cost).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_choice, check_nonnegative
from ..models.base import AbstractRecurrentModel, Trajectory, trainable_filter
from ..tasks.base import Batch, masked_mse

LOSSES = ("mse", "cross_entropy")


class AbstractObjective(eqx.Module):
    """``objective(model, data, *, key) -> (loss, aux)`` (see the module docstring)."""

    @abc.abstractmethod
    def __call__(self, model: AbstractRecurrentModel, data: Any, *, key) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The scalar loss and a dict of named scalar terms (recorded in the learning curve)."""

    def validate(self, model: AbstractRecurrentModel, task: Any) -> None:
        """Refuse a model/task pair the objective cannot train (called before compiling)."""


class AbstractInnerObjective(AbstractObjective):
    """An objective that takes several optimiser steps per step of the training loop (PPO's
    epochs over minibatches of one rollout): each loop step calls :meth:`prepare` once with the
    current model (collect a rollout; not differentiated), then takes ``n_inner`` optimiser steps
    on :meth:`inner` ``(model, prepared, i)``, ``i = 0 .. n_inner - 1``. The loop records the
    mean loss and terms over those steps. Calling the objective gives the first inner loss."""

    n_inner: eqx.AbstractVar[int]

    @abc.abstractmethod
    def prepare(self, model: AbstractRecurrentModel, data: Any, *, key) -> Any:
        """What the inner steps train on (computed from the model before they start)."""

    @abc.abstractmethod
    def inner(self, model: AbstractRecurrentModel, prepared: Any, i, *, key) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The loss and terms of inner step ``i`` (a traced integer)."""

    def __call__(self, model, data, *, key):
        k_prep, k_inner = jax.random.split(key)
        prepared = self.prepare(model, data, key=k_prep)
        return self.inner(model, jax.lax.stop_gradient(prepared), 0, key=k_inner)


class AbstractDirectionObjective(AbstractObjective):
    """An objective that supplies its own update direction instead of the gradient of its loss
    (a local learning rule): the training loop hands :meth:`loss_and_direction`'s direction to
    the optimiser where it would hand the gradient. Calling the objective gives ``(loss, aux)``."""

    @abc.abstractmethod
    def loss_and_direction(self, model: AbstractRecurrentModel, data: Any, *, key) -> tuple[tuple[jax.Array, dict[str, jax.Array]], Any]:
        """``((loss, aux), direction)``; ``direction`` has the structure of ``model``."""


class AbstractTerm(eqx.Module):
    """One regulariser: ``term(model, trajectory, data) -> scalar``. ``name`` labels its column."""

    name: eqx.AbstractVar[str]

    @abc.abstractmethod
    def __call__(self, model: AbstractRecurrentModel, traj: Trajectory, data: Any) -> jax.Array:
        ...


def _group_leaves(model, group: str):
    return jax.tree.leaves(eqx.filter(model, trainable_filter(model, group)))


class WeightL2(AbstractTerm):
    """``sum p^2`` over the trainable parameters of ``group``."""

    group: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, group: str = "all", name: str = "weight_l2"):
        self.group, self.name = str(group), str(name)

    def __call__(self, model, traj, data):
        return sum(jnp.sum(p**2) for p in _group_leaves(model, self.group))


class WeightL1(AbstractTerm):
    """``sum |p|`` over the trainable parameters of ``group``."""

    group: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, group: str = "all", name: str = "weight_l1"):
        self.group, self.name = str(group), str(name)

    def __call__(self, model, traj, data):
        return sum(jnp.sum(jnp.abs(p)) for p in _group_leaves(model, self.group))


class ActivityL2(AbstractTerm):
    """Mean over state fields of the mean squared state (``fields``: names, default all)."""

    fields: tuple[str, ...] | None = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, fields=None, name: str = "activity_l2"):
        self.fields = None if fields is None else tuple(fields)
        self.name = str(name)

    def __call__(self, model, traj, data):
        states = traj.states
        names = states._fields if self.fields is None else self.fields
        acts = [jnp.mean(getattr(states, f) ** 2) for f in names]
        return sum(acts) / len(acts)


class Penalty(AbstractTerm):
    """Any callable ``fn(model, trajectory, data) -> scalar`` as a term (a wiring cost, say)."""

    fn: Callable[..., jax.Array] = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, fn: Callable[..., jax.Array], name: str = "penalty"):
        if not callable(fn):
            raise ValueError(f"Penalty needs a callable fn(model, trajectory, data), got {fn!r}")
        self.fn, self.name = fn, str(name)

    def __call__(self, model, traj, data):
        return self.fn(model, traj, data)


def masked_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax cross-entropy over the output axis, ``-sum_o p_o log softmax(logits)_o``, averaged
    over the steps where the mask is on (``mask`` ``(B, T, O)`` or ``(B, T)``; a step counts with
    weight ``max_o mask``). ``targets``: probabilities (one-hot for labels), ``(B, T, O)``."""
    w = mask if mask.ndim == logits.ndim - 1 else jnp.max(mask, axis=-1)
    ce = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1e-12)


#: The supervised losses by name, ``fn(outputs, targets, mask) -> scalar``.
LOSS_FUNCTIONS: dict[str, Callable[..., jax.Array]] = {"mse": masked_mse, "cross_entropy": masked_cross_entropy}


def check_model_fits_task(model: AbstractRecurrentModel, task: Any) -> None:
    """Refuse a model whose input or output size differs from the task's (before compiling)."""
    if getattr(model, "n_in", None) != task.n_in:
        raise ValueError(
            f"the model has n_in={model.n_in} but task {type(task).__name__} has {task.n_in} "
            "input channels"
        )
    if model.n_out != task.n_out:
        raise ValueError(
            f"the model has n_out={model.n_out} but task {type(task).__name__} has "
            f"{task.n_out} outputs"
        )


def add_terms(total, aux, terms, weights, model, traj, data):
    """``total + sum_i weights_i * term_i`` and ``aux`` with every (unweighted) term under its
    name: the regularisers of any objective."""
    for i, term in enumerate(terms):
        value = term(model, traj, data)
        aux[term.name] = value
        total = total + weights[i] * value
    return total, aux


class Supervised(AbstractObjective):
    """A supervised loss on a :class:`~nmrnn.tasks.base.Batch` plus weighted regularisers.

    ``loss``: ``"mse"`` (masked mean squared error, the papers' loss) or ``"cross_entropy"``.
    ``terms`` and ``weights`` pair up; ``weights`` is a float array (data, not static).
    ``noise``: feed the key to the model's recurrent noise. ``aux`` holds the main loss under its
    name, every term (unweighted) under the term's name, and nothing else; the returned loss is
    ``main + sum_i weights_i * term_i``.
    """

    terms: tuple[AbstractTerm, ...]
    weights: jax.Array
    loss: str = eqx.field(static=True, default="mse")
    noise: bool = eqx.field(static=True, default=True)

    def __init__(
        self,
        loss: str = "mse",
        terms: Sequence[AbstractTerm] = (),
        weights: Sequence[float] | jax.Array = (),
        *,
        noise: bool = True,
    ):
        check_choice("loss", loss, LOSSES)
        terms = tuple(terms)
        w = jnp.asarray(weights, dtype=jnp.result_type(float)).reshape(-1)
        if w.shape[0] != len(terms):
            raise ValueError(f"{len(terms)} terms need {len(terms)} weights, got {w.shape[0]}")
        names = [t.name for t in terms]
        if len(set(names)) != len(names) or loss in names:
            raise ValueError(f"term names must be distinct and differ from the loss {loss!r}: {names}")
        if not isinstance(w, jax.core.Tracer):
            for name, v in zip(names, w.tolist(), strict=True):
                check_nonnegative(f"weight of {name}", v)
        self.loss, self.terms, self.weights, self.noise = loss, terms, w, bool(noise)

    @property
    def term_names(self) -> tuple[str, ...]:
        return (self.loss, *(t.name for t in self.terms))

    def __call__(self, model, data: Batch, *, key):
        traj = model.forward(data.inputs, key=key if self.noise else None)
        main = LOSS_FUNCTIONS[self.loss](traj.outputs, data.targets, data.mask)
        return add_terms(main, {self.loss: main}, self.terms, self.weights, model, traj, data)

    def validate(self, model, task) -> None:
        takes = getattr(type(task), "objectives", (None,))
        if None not in takes:
            raise ValueError(f"task {type(task).__name__} has no supervised loss: train it with one of its "
                             f"objectives ({', '.join(str(t) for t in takes)}, e.g. nmrnn.rl.A2C)")
        check_model_fits_task(model, task)
        for term in self.terms:
            group = getattr(term, "group", None)
            if group is not None:
                trainable_filter(model, group)  # raises on unknown groups


__all__ = [
    "AbstractDirectionObjective",
    "AbstractInnerObjective",
    "AbstractObjective",
    "AbstractTerm",
    "ActivityL2",
    "LOSSES",
    "LOSS_FUNCTIONS",
    "Penalty",
    "Supervised",
    "WeightL1",
    "WeightL2",
    "add_terms",
    "check_model_fits_task",
    "masked_cross_entropy",
]
