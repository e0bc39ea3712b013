"""The one interface every recurrent model implements, and the scan that runs any of them.

Conventions (used everywhere in the library)
--------------------------------------------
* A model is an ``equinox.Module``; its trainable parameters are its inexact-array fields, except the
  names listed in ``buffers`` (fixed masks, sign vectors, positions), which are never trained and not
  counted as parameters.
* ``state`` is a ``NamedTuple`` of arrays, one field per state variable (``x``, ``z``, ``h``, ``c``,
  ``r``, ``n`` ...). Every field has shape ``(*batch, size)``: one time step of one trial is the
  unbatched case ``batch = ()``; a batch of trials is ``batch = (B,)``. Models are written with
  batched matrix products (``x @ W.T``), which measure faster than ``vmap`` over trials, and the
  same code serves the unbatched case used by fixed-point analysis.
* ``step(state, u, key=None) -> state`` is the one-step map ``F(state, u)``. ``key`` feeds the
  model's own noise (recurrent noise); without a key the step is deterministic.
* ``readout(state) -> y`` maps a state (any leading dims) to the output.
* Batch arrays are **batch-major**: inputs ``(B, T, P)``, outputs ``(B, T, O)``; an unbatched
  sequence is ``(T, P)``. Time is measured in steps of ``dt``.
* ``materialize()`` returns an equivalent model whose derived weights (Dale-signed matrices,
  QR-orthonormalised factors) are computed once. :func:`simulate` calls it before the scan, so the
  per-step work is only the recurrence; calling ``step`` on the raw model gives the same numbers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

State = Any  # a NamedTuple of arrays; each model defines its own


class AbstractRecurrentModel(eqx.Module):
    """Base class of all recurrent models (see the module docstring for the conventions).

    Subclasses define ``n_in``, ``n_out`` (static ints), ``dt``, and implement
    :meth:`initial_state`, :meth:`step` and :meth:`readout`. They may override :meth:`materialize`
    and declare ``param_groups`` (named subsets of parameter fields used for staged training) and
    ``buffers`` (array fields that are not parameters).
    """

    n_in: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]
    dt: eqx.AbstractVar[float]

    #: Named groups of parameter fields, for staged training ("train only the NM subnetwork").
    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Array fields that are fixed (masks, signs): excluded from training and from counts.
    buffers: ClassVar[tuple[str, ...]] = ()
    #: Names of the state fields (the NamedTuple's fields), for analysis code.
    state_fields: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> State:
        """The state at t = -1 (before the first input), broadcast to ``batch_shape``."""

    @abc.abstractmethod
    def step(self, state: State, u: Float[Array, "*batch n_in"], key: PRNGKeyArray | None = None) -> State:
        """One step of the dynamics, ``state_t = F(state_{t-1}, u_t)``."""

    @abc.abstractmethod
    def readout(self, state: State) -> Float[Array, "*batch n_out"]:
        """Output ``y_t`` from ``state_t``."""

    def materialize(self) -> AbstractRecurrentModel:
        """An equivalent model with derived weights precomputed (default: the model itself)."""
        return self

    def vector_field(self, state: State, u: Float[Array, "*batch n_in"]) -> State:
        """Continuous-time vector field of the Euler-discretised model, ``(F(s, u) - s) / dt``.

        The fixed points of the map and the zeros of the field coincide; eigenvalues relate by
        ``lambda_map = 1 + dt * lambda_field``. Gated models (GRU, LSTM) have no continuous-time
        form; for them ``dt`` is 1 and this is simply ``F(s) - s``.
        """
        new = self.step(state, u)
        return jax.tree.map(lambda a, b: (a - b) / self.dt, new, state)


class Trajectory(NamedTuple):
    """The result of :func:`simulate`.

    ``outputs``: ``(*batch, T, n_out)``; ``states``: the model's state NamedTuple with every field
    stacked over time, ``(*batch, T, size)``; entry ``t`` is the state after input ``t``.
    """

    outputs: Array
    states: State


def check_inputs(model: AbstractRecurrentModel, inputs: Array) -> None:
    """Refuse inputs whose last axis does not match ``model.n_in`` (raised before tracing)."""
    shape = jnp.shape(inputs)
    if len(shape) < 2:
        raise ValueError(
            f"inputs must have shape (T, n_in) or (batch, T, n_in); got shape {tuple(shape)}"
        )
    if shape[-1] != model.n_in:
        raise ValueError(
            f"inputs have {shape[-1]} channels but the {type(model).__name__} expects "
            f"n_in={model.n_in}"
        )


def simulate(
    model: AbstractRecurrentModel,
    inputs: Float[Array, "*batch T n_in"],
    *,
    key: PRNGKeyArray | None = None,
    initial_state: State | None = None,
) -> Trajectory:
    """Run ``model`` over an input sequence and return outputs and every state variable.

    Args:
        model: any :class:`AbstractRecurrentModel`.
        inputs: ``(T, n_in)`` or ``(B, T, n_in)``, batch-major.
        key: PRNG key for the model's recurrent noise; ``None`` runs noise-free.
        initial_state: state before the first input; defaults to ``model.initial_state``.
    """
    check_inputs(model, inputs)
    inputs = jnp.asarray(inputs)
    batch_shape = inputs.shape[:-2]
    n_steps = inputs.shape[-2]
    core = model.materialize()
    if initial_state is None:
        initial_state = core.initial_state(batch_shape)
    xs = jnp.moveaxis(inputs, -2, 0)  # time-major for the scan
    keys = None if key is None else jr.split(key, n_steps)

    def body(state, scanned):
        u, k = scanned
        new = core.step(state, u, k)
        return new, new

    _, states = jax.lax.scan(body, initial_state, (xs, keys))
    outputs = core.readout(states)
    to_batch_major = lambda a: jnp.moveaxis(a, 0, -2)  # noqa: E731
    return Trajectory(to_batch_major(outputs), jax.tree.map(to_batch_major, states))


# ----------------------------------------------------------------------------------------------
# parameters: which leaves are trainable, counting, groups
# ----------------------------------------------------------------------------------------------


def _parameter_fields(model: AbstractRecurrentModel) -> list[str]:
    import dataclasses

    names = []
    for f in dataclasses.fields(model):
        if f.metadata.get("static", False) or f.name in model.buffers:
            continue
        if _is_inexact(getattr(model, f.name)):
            names.append(f.name)
    return names


def _is_inexact(value) -> bool:
    """An inexact array, or its abstract stand-in (``jax.ShapeDtypeStruct``, from eval_shape)."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return jnp.issubdtype(value.dtype, jnp.inexact)
    return eqx.is_inexact_array(value)


def _size(value) -> int:
    return int(np.prod(value.shape))


def parameter_fields(model: AbstractRecurrentModel) -> tuple[str, ...]:
    """Names of the model's trainable array fields (all inexact arrays minus buffers)."""
    return tuple(_parameter_fields(model))


def group_names(model: AbstractRecurrentModel) -> tuple[str, ...]:
    """Valid group names for :func:`trainable_filter`: ``"all"`` plus the model's own groups."""
    return ("all", *model.param_groups)


def trainable_filter(model: AbstractRecurrentModel, group: str = "all") -> Any:
    """A filter-spec pytree (``True`` on the trainable leaves of ``group``) for ``eqx.partition``.

    ``group`` is ``"all"`` or one of ``model.param_groups``; fields that are ``None`` in this
    instance (an option switched off) are skipped.
    """
    valid = group_names(model)
    if group not in valid:
        raise ValueError(
            f"unknown parameter group {group!r} for {type(model).__name__}; valid groups: "
            f"{', '.join(valid)}"
        )
    params = set(_parameter_fields(model))
    fields = params if group == "all" else params & set(model.param_groups[group])
    spec = jax.tree.map(lambda _: False, model)
    chosen = sorted(fields)
    if not chosen:
        return spec
    return eqx.tree_at(
        lambda m: [getattr(m, f) for f in chosen], spec, replace=[True] * len(chosen)
    )


def param_count(model: AbstractRecurrentModel, group: str = "all") -> int:
    """Exact number of trainable scalars (in ``group``)."""
    spec = trainable_filter(model, group)
    leaves = jax.tree.leaves(eqx.filter(model, spec))
    return int(sum(_size(x) for x in leaves))


def param_breakdown(model: AbstractRecurrentModel) -> dict[str, int]:
    """Trainable scalar count per field name."""
    return {f: _size(getattr(model, f)) for f in _parameter_fields(model)}


# ----------------------------------------------------------------------------------------------
# small shared helpers for the leaky (Euler-discretised) model family
# ----------------------------------------------------------------------------------------------


def narrow_matmul(a: Array, w: Array, narrow: int = 8) -> Array:
    """``a @ w`` for ``a (..., n)`` and ``w (n, m)``, in the form XLA runs fastest on CPU when ``w``
    is narrow.

    With ``n <= narrow``: a sum of ``n`` broadcast multiply-adds, which XLA fuses with the
    surrounding elementwise work instead of calling a matmul kernel; else with ``m <= narrow``:
    ``m`` matrix-vector products; else a plain matmul. At the NM-RNN paper's MWG sizes (rank 3,
    5 NM units, 3 inputs) this makes the compiled training step about 20% faster on CPU than plain
    matmuls (``benchmarks/bench_models.py``); results agree to rounding.
    """
    n, m = w.shape
    if n <= narrow:
        out = a[..., 0:1] * w[0]
        for k in range(1, n):
            out = out + a[..., k : k + 1] * w[k]
        return out
    if m <= narrow:
        return jnp.stack([a @ w[:, j] for j in range(m)], axis=-1)
    return a @ w


def leaky_update(x, drive, alpha: float, sigma: float = 0.0, key=None):
    """``(1 - alpha) x + alpha * drive + sqrt(2 alpha) sigma xi`` with ``xi ~ N(0, 1)``.

    Noise is added only when both ``sigma > 0`` and a key are given.
    """
    new = (1.0 - alpha) * x + alpha * drive
    if sigma > 0 and key is not None:
        new = new + jnp.sqrt(2.0 * alpha) * sigma * jr.normal(key, jnp.shape(new), new.dtype)
    return new


def zeros_state(batch_shape: tuple[int, ...], size: int) -> Array:
    return jnp.zeros((*batch_shape, size))


def normal_init(key, shape, scale: float) -> Array:
    return scale * jr.normal(key, shape)


def orthonormal_columns(L: Array) -> Array:
    """``sqrt(N) * Q`` where ``L = Q R`` (QR with a positive diagonal in R), so ``L'^T L' / N = I``."""
    n = L.shape[0]
    q, r = jnp.linalg.qr(L)
    signs = jnp.sign(jnp.diagonal(r))
    signs = jnp.where(signs == 0, 1.0, signs)
    return jnp.sqrt(n) * q * signs


ActivationName = str
StepFn = Callable[[State, Array], State]


def replace_fields(module: eqx.Module, **changes: Any) -> eqx.Module:
    """A shallow copy of ``module`` with fields (static ones included) replaced.

    Used by ``materialize`` to swap a parameter for its derived value and switch the option off
    that derived it, without re-running the constructor.
    """
    import copy

    new = copy.copy(module)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new
