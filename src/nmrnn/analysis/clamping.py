"""The value at which to clamp a state field so that a model's step *uses* a given level.

:func:`nmrnn.analysis.find_fixed_points` holds a clamped field at its value ``c`` *before* every
step and discards the field's own update. A model that updates the field first and then uses the
new value within the same step (the NM-RNN computes ``z_t = F_z(z_{t-1}, u_t)`` and gates ``x_t``
with ``s(z_t)``) therefore runs at the level ``F_field(c, u)``, not at ``c``. To analyse the
dynamics at the level ``target``, clamp at the pre-image ``c`` with ``F_field(c, u) = target``:
:func:`clamp_preimage` finds it by Newton's method, for any model and any state field, through
the model hooks ``make_state`` and ``step``. For a model that uses the field's old value within a
step (the e-nmRNN updates ``r`` and ``n`` simultaneously), clamping at ``target`` itself is exact
and no pre-image is needed. :func:`field_after_step` gives ``F_field(c, u)``.

The pre-image is a single value only if the field's update does not depend on the other state
fields (for the NM-RNN: no ``x -> z`` feedback, ``B_zx`` unset); :func:`clamp_preimage` refuses
a field whose update depends on them.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_choice, check_positive_int


def _state_fields(model: Any) -> tuple[str, ...]:
    return tuple(model.initial_state(())._fields)


def _check_level(model: Any, field: str, value: Any, what: str) -> jax.Array:
    check_choice("field", field, _state_fields(model))
    ref = getattr(model.initial_state(()), field)
    arr = jnp.asarray(value, jnp.result_type(ref))
    if arr.shape != ref.shape:
        raise ValueError(
            f"{what} must have shape {tuple(ref.shape)} (the {field!r} field of the "
            f"{type(model).__name__}), got {tuple(arr.shape)}"
        )
    return arr


def _check_input(model: Any, inputs: Any, dtype) -> jax.Array:
    u = jnp.zeros(model.n_in, dtype) if inputs is None else jnp.asarray(inputs, dtype)
    if u.shape != (model.n_in,):
        raise ValueError(f"inputs must have shape ({model.n_in},), got {tuple(u.shape)}")
    return u


def _after_step(model, field, value, u):
    return getattr(model.step(model.make_state(**{field: value}), u), field)


def field_after_step(model: Any, field: str, value: Any, inputs: Any = None) -> np.ndarray:
    """``F_field(value, u)``: the field after one step from the initial state with ``field`` set
    to ``value`` (``(size,)``), at the constant input ``inputs`` (``(n_in,)``, default zeros)."""
    v = _check_level(model, field, value, "value")
    u = _check_input(model, inputs, v.dtype)
    return np.asarray(_after_step(model, field, v, u))


@eqx.filter_jit
def _coupling(model, field, target, u):
    """Largest ``|d F_field / d other|`` at two states (the initial state and one shifted by 0.5
    in every other field): zero when the field's update ignores the other fields."""
    base = model.make_state(**{field: target})
    others = {f: getattr(base, f) for f in base._fields if f != field}

    def g(o):
        return getattr(model.step(model.replace_state(base, **o), u), field)

    worst = jnp.zeros(())
    for shift in (0.0, 0.5):
        point = {f: v + shift for f, v in others.items()}
        jac = jax.jacfwd(g)(point)
        for leaf in jax.tree.leaves(jac):
            worst = jnp.maximum(worst, jnp.max(jnp.abs(leaf)))
    return worst


@eqx.filter_jit
def _newton(model, field, target, u, n_iters):
    def g(c):
        return _after_step(model, field, c, u) - target

    def body(_, c):
        return c - jnp.linalg.solve(jax.jacfwd(g)(c), g(c))

    c = jax.lax.fori_loop(0, n_iters, body, target)
    return c, g(c)


def clamp_preimage(
    model: Any, field: str, target: Any, inputs: Any = None, *, n_iters: int = 20
) -> np.ndarray:
    """The clamp value ``c`` of state field ``field`` for which one step gives ``target``.

    Solves ``F_field(c, u) = target`` (see the module docstring) by Newton's method from
    ``c = target``. ``target``: ``(size,)`` of the field; ``inputs``: the constant input
    ``(n_in,)`` (default zeros). Refuses an unknown field, a target or input of the wrong shape,
    and a field whose update depends on the other state fields (then no single ``c`` exists).
    Returns ``c``, ``(size,)``.
    """
    z = _check_level(model, field, target, "target")
    u = _check_input(model, inputs, z.dtype)
    n_iters = check_positive_int("n_iters", n_iters)
    others = [f for f in _state_fields(model) if f != field]
    if others and float(_coupling(model, field, z, u)) > 0.0:
        raise ValueError(
            f"the update of {field!r} in the {type(model).__name__} depends on "
            f"{', '.join(map(repr, others))} (e.g. feedback into {field!r}): no single clamp "
            "value reaches the target"
        )
    c, _ = _newton(model, field, z, u, n_iters)
    return np.asarray(c)


__all__ = ["clamp_preimage", "field_after_step"]
