"""Backpropagation through time with the weight gradients formed once, after the reverse loop.

Reverse-mode autodiff of a ``lax.scan`` accumulates every weight's gradient inside the reverse
loop: at each of the T steps it forms the outer products ``delta_t h_{t-1}^T`` (one per weight)
and adds them to a carry. On small recurrent networks the cost of a step is the number of
operations in the loop body, not their size, so those accumulations are a large part of the
training step (``benchmarks/bench_models.py``).

A model that sets ``manual_backward = True`` supplies the reverse recursion of its *state*
cotangents by hand; :func:`scan_steps` then runs

1. the forward scan of ``step`` (the same numbers as the plain scan), saving the states;
2. ``bptt_residuals``: everything the backward needs that depends on the states only (activation
   derivatives, gains, projections), computed for all T steps at once, outside any loop;
3. a reverse loop of ``bptt_step`` that carries only the state cotangents and emits, per step, the
   small cotangents the weight gradients are built from;
4. ``bptt_grads``: every weight gradient as one contraction over time and batch (a single matrix
   product per weight instead of T of them);
5. for any other differentiated leaf the model does not cover by hand (time constants, inputs),
   the exact gradient from autodiff of ``step`` applied to all steps at once (a ``vmap`` over
   time), ``sum_t dstep(s_{t-1}, u_t)^T G_t``.

The hooks (on the model, each for the materialised model ``forward`` scans):

* ``bptt_residuals(prev, new, xs) -> (loop, post)``: ``prev``/``new`` are the states before and
  after every step, ``(T, *batch, size)``; ``xs`` the time-major inputs. ``loop`` is scanned by
  the reverse loop (leading axis T), ``post`` goes to ``bptt_grads``.
* ``bptt_step(loop_t, g) -> (g_prev, emit)``: ``g`` is the total cotangent of the step's output
  state (from the loss and from the future); returns the cotangent of its input state and the
  per-step values for ``bptt_grads`` (keep them few: each is a write per step).
* ``bptt_fields() -> names``: the top-level array fields whose gradients ``bptt_grads`` forms,
  and the fields ``step`` does not read (the readout's), whose gradient through the scan is zero.
* ``bptt_grads(prev, new, xs, post, emits) -> {field: gradient or None}``: those gradients, from
  the stacked ``emits``; ``None`` for a field ``step`` does not read.

Noise: the recurrent noise of the library's models is additive, so it changes the states but not
the Jacobians; the manual recursion runs on the noisy states the forward pass produced.

``tests/models/test_bptt.py`` checks every model with a manual backward against autodiff of the
plain scan (all options, with noise, learned initial states, and gradients of inputs and time
constants) to 1e-5.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def scan_steps(core, initial_state, xs, keys=None, *, manual: bool | None = None):
    """The states of ``core.step`` scanned over the time-major inputs ``xs`` from
    ``initial_state``: ``(T, *batch, size)`` per field. ``keys``: one key per step, or ``None``.

    ``manual``: use the model's hand-written backward (``None``: whenever the model has one;
    ``False``: plain autodiff of the scan, e.g. for forward-mode differentiation, which a custom
    backward does not support).
    """
    use = bool(getattr(core, "manual_backward", False)) if manual is None else bool(manual)
    if use and not getattr(core, "manual_backward", False):
        raise ValueError(f"{type(core).__name__} has no manual backward pass")
    if not use:
        return _scan(core, initial_state, xs, keys)
    return _manual_scan((core, initial_state, xs), keys)


def _scan(core, initial_state, xs, keys):
    def body(state, scanned):
        u, k = scanned
        new = core.step(state, u, key=k)
        return new, new

    return jax.lax.scan(body, initial_state, (xs, keys))[1]


def previous_states(initial_state, states):
    """The states before every step, ``s_{-1}, ..., s_{T-2}`` (time-major)."""
    return jax.tree.map(lambda a, s: jnp.concatenate([a[None], s[:-1]], axis=0), initial_state, states)


def contract(a, b):
    """``sum over every leading (time, batch) axis of a[..., i] b[..., j]``: ``(I, J)``."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def contract_many(a, *bs, bias: bool = False):
    """``[contract(a, b) for b in bs]`` (and ``a`` summed over the leading axes if ``bias``) in
    one pass over ``a``: these contractions read arrays of ``T x batch x N`` numbers, so their
    cost is the reading, not the arithmetic."""
    cols = [b.reshape(-1, b.shape[-1]) for b in bs]
    if bias:
        cols.append(jnp.ones((cols[0].shape[0] if cols else a.size // a.shape[-1], 1), a.dtype))
    both = contract(a, jnp.concatenate(cols, axis=-1))
    sizes = [c.shape[-1] for c in cols]
    out = jnp.split(both, list(np.cumsum(sizes)[:-1]), axis=-1)
    return [o[:, 0] if bias and i == len(out) - 1 else o for i, o in enumerate(out)]


def value_and_derivative(phi, x):
    """``phi(x)`` and ``phi'(x)`` of an elementwise activation, in one pass."""
    return jax.jvp(phi, (x,), (jnp.ones_like(x),))


@eqx.filter_custom_vjp
def _manual_scan(arg, keys):
    core, initial_state, xs = arg
    return _scan(core, initial_state, xs, keys)


@_manual_scan.def_fwd
def _manual_scan_fwd(perturbed, arg, keys):
    core, initial_state, xs = arg
    states = _scan(core, initial_state, xs, keys)
    return states, states


def _is_none(v) -> bool:
    return v is None


@_manual_scan.def_bwd
def _manual_scan_bwd(states, g_out, perturbed, arg, keys):
    core, initial_state, xs = arg
    p_core, p_init, p_xs = perturbed
    g_out = jax.tree.map(lambda g, s: jnp.zeros_like(s) if g is None else g, g_out, states, is_leaf=_is_none)
    prev = previous_states(initial_state, states)

    loop_res, post_res = core.bptt_residuals(prev, states, xs)
    covered = set(core.bptt_fields())
    names = {f.name for f in dataclasses.fields(core)}
    if covered - names:
        raise ValueError(f"{type(core).__name__}.bptt_fields names unknown field(s) {sorted(covered - names)}")
    rest_mask = _fields_masked(p_core, covered)
    fallback = any(jax.tree.leaves(rest_mask)) or any(jax.tree.leaves(p_xs))

    def body(carry, scanned):
        res_t, g_t = scanned
        total = jax.tree.map(jnp.add, carry, g_t)
        g_prev, emit = core.bptt_step(res_t, total)
        return g_prev, (total if fallback else None, emit)  # the totals only when needed below

    g_init, (G, emits) = jax.lax.scan(
        body, jax.tree.map(jnp.zeros_like, initial_state), (loop_res, g_out), reverse=True
    )
    by_hand = core.bptt_grads(prev, states, xs, post_res, emits)
    if set(by_hand) != covered:
        raise ValueError(f"{type(core).__name__}.bptt_grads returned {sorted(by_hand)}, its bptt_fields are {sorted(covered)}")

    # Differentiated leaves the model does not cover by hand: autodiff of the step at every time
    # step at once (exact; only traced when such leaves exist, e.g. time constants or inputs).
    g_core = jax.tree.map(lambda _: None, core)
    g_xs = None
    if fallback:
        diff, fixed = eqx.partition(core, rest_mask)

        def total(d, u):
            model = eqx.combine(d, fixed)
            step = lambda s, x, k: model.step(s, x, key=k)  # noqa: E731
            new = jax.vmap(step, in_axes=(0, 0, None if keys is None else 0))(prev, u, keys)
            return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(G), strict=True))

        g_core, g_xs = jax.grad(total, argnums=(0, 1))(diff, xs)
        if not any(jax.tree.leaves(p_xs)):
            g_xs = None
    fields = [f for f in sorted(by_hand) if getattr(p_core, f) is True and by_hand[f] is not None]
    if fields:
        g_core = eqx.tree_at(lambda m: [getattr(m, f) for f in fields], g_core,
                             [by_hand[f] for f in fields], is_leaf=_is_none)
    g_init = jax.tree.map(lambda g, p: g if p else None, g_init, p_init)
    return g_core, g_init, g_xs


def _fields_masked(mask: Any, fields: set[str]):
    """``mask`` (a model-shaped tree of bools) with the top-level ``fields`` set to False."""
    if not fields:
        return mask
    present = [f for f in sorted(fields) if getattr(mask, f) is not None]
    return eqx.tree_at(lambda m: [getattr(m, f) for f in present], mask,
                       [jax.tree.map(lambda _: False, getattr(mask, f)) for f in present])
