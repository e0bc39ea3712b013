"""Leading-order local learning rules of the e-nmRNN (paper 000, supplement section 3).

The e-nmRNN's Euler step (``a_r = dt / tau_r``, ``a_n = dt / tau_n``) is

    A(t)  = W r(t-1) + sum_k n_k(t-1) T_k r(t-1) + U u(t) + b
    r(t)  = r(t-1) + a_r (-r(t-1) + phi(A(t)))
    B(t)  = R r(t-1) + Z n(t-1)
    n(t)  = n(t-1) + a_n (-n(t-1) + phi_n(B(t)))
    y(t)  = D r(t) + d

and the loss a sum over steps, ``L = sum_t l(y(t))``, with output error ``e(t) = dl/dy(t)``. The
paper expands the error in the step size and keeps the leading order: the state before a step is
treated as given, so every parameter is credited only through the step that uses it. With
``delta(t) = a_r phi'(A(t)) * (D^T e(t))`` (error, carried back through the readout and the
postsynaptic slope):

* ``dL/dT_k ~ sum_t n_k(t-1) delta(t) r(t-1)^T`` (O(dt)): a three-factor Hebbian rule gated by the
  k-th neuromodulator, the paper's ``D^T eps phi'(A) n_k r^T``;
* ``dL/dW ~ sum_t delta(t) r(t-1)^T``, ``dL/dU ~ sum_t delta(t) u(t)^T``, ``dL/db ~ sum_t delta(t)``
  (O(dt)), and the excitability ``E, e`` of ReLU-Tanh through the same step;
* ``dL/dR_kj ~ sum_t g_k(t) r_j(t-2)``, ``dL/dZ_kl ~ sum_t g_k(t) n_l(t-2)`` (O(dt^2): a release
  reaches the loss through one step of the concentrations and one of the rates), with the
  per-neuromodulator credit ``g_k(t) = a_n phi_n'(B_k(t-1)) (delta(t) . T_k r(t-1))``: how much
  more of NM k one step earlier would have lowered this step's error, times the release slope;
* the readout ``D, d``: its exact gradient, which is already local, ``sum_t e(t) r(t)^T``.

Each rule uses only quantities present at the synapse or broadcast at that time (error, pre- and
postsynaptic activity, the concentrations): no backward pass through time. Every term is known at
its step, so the sums could be accumulated online during the forward pass; here they are formed
after it from the stored states (the same numbers, vectorised). Summed over a trial and handed to
the optimiser, they are one update of :func:`nmrnn.train.fit` through the objective
:class:`LocalRules`.

Two readings the paper leaves open, and what is done here:

* *Input weights.* The paper's text writes the input rule with a factor ``n_k`` ("the kth
  neuromodulator gates the input learning as well"), but its eq. 17 does not modulate the inputs,
  so the leading-order gradient of that model has no ``n_k``: ``input_rule="gradient"`` (default)
  is the derived rule; ``input_rule="gated"`` multiplies it by ``sum_k n_k(t-1)`` as the text reads.
* *R and Z.* The paper writes ``D^T eps phi'(A) theta'(B) r^2`` and ``... n r``; the factors
  above are what the O(dt^2) term of the expansion gives for this model (the ``T_k r`` factor
  is how NM k acts on the neurons).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._validation import check_choice
from ..activations import get_activation
from ..models.base import AbstractRecurrentModel, replace_fields
from ..models.bptt import value_and_derivative
from ..models.enmrnn import ENMRNN
from ..tasks.base import Batch
from .objectives import LOSS_FUNCTIONS, LOSSES, AbstractDirectionObjective, check_model_fits_task

#: The parameters with a local rule, and the order of the expansion each comes from.
RULE_ORDER = {"W": 1, "T": 1, "T_left": 1, "T_right": 1, "U": 1, "b": 1, "E": 1, "e": 1, "R": 2, "Z": 2,
              "D": 0, "d": 0}
INPUT_RULES = ("gradient", "gated")


def check_local_model(model: AbstractRecurrentModel) -> None:
    """Refuse models the rules are not derived for (raised before compiling)."""
    if not isinstance(model, ENMRNN):
        raise ValueError(f"local learning rules are derived for the e-nmRNN (ENMRNN), got {type(model).__name__}")
    if not model.manual_backward:
        raise ValueError("local learning rules need an e-nmRNN without dale=True, cell_types=True, a mask "
                         "or spatial_grid (their sign and masks are not in the derivation)")


def _delayed(first: jax.Array, x: jax.Array) -> jax.Array:
    """``x (..., T, size)`` one step later along time, ``first (..., size)`` at step 0."""
    return jnp.concatenate([first[..., None, :], x[..., :-1, :]], axis=-2)


def local_gradients(model: ENMRNN, batch: Batch, *, loss: str = "mse", input_rule: str = "gradient",
                    key=None) -> tuple[jax.Array, dict[str, jax.Array], Any]:
    """The loss and the leading-order local estimate of its gradient, one array per parameter
    field of ``model`` (see the module docstring), with the model's trajectory.

    ``key``: feed the model's recurrent noise (``None``: noise-free)."""
    check_local_model(model)
    check_choice("input_rule", input_rule, INPUT_RULES)
    traj = model.forward(batch.inputs, key=key)
    value, e = jax.value_and_grad(lambda y: LOSS_FUNCTIONS[loss](y, batch.targets, batch.mask))(traj.outputs)
    m = model.materialize()
    s0 = m.initial_state(batch.inputs.shape[:-2])
    r, n = traj.states.r, traj.states.n  # (B, T, .) after each step
    r_prev, n_prev = _delayed(s0.r, r), _delayed(s0.n, n)  # state before each step
    r_prev2, n_prev2 = _delayed(s0.r, r_prev), _delayed(s0.n, n_prev)  # ... and one step earlier
    u = batch.inputs
    ar, an = m.rate("tau_r"), m.rate("tau_n")
    T = m.full_T()

    c = e @ m.D  # D^T e(t)
    pre = m._pre(r_prev, n_prev, u)
    _, dphi = value_and_derivative(m.phi, pre)
    ga = ar * c
    delta = ga * dphi
    g_in = delta
    if input_rule == "gated":
        g_in = delta * jnp.sum(n_prev, axis=-1, keepdims=True)
    grads: dict[str, jax.Array] = {
        "W": jnp.einsum("...ti,...tj->ij", delta, r_prev),
        "U": jnp.einsum("...ti,...tp->ip", g_in, u),
        "b": jnp.sum(delta, axis=tuple(range(delta.ndim - 1))),
        "D": jnp.einsum("...to,...ti->oi", e, r),
        "d": jnp.sum(e, axis=tuple(range(e.ndim - 1))),
    }
    g_T = jnp.einsum("...tk,...ti,...tj->kij", n_prev, delta, r_prev)
    if m.T is not None:
        grads["T"] = g_T
    else:
        grads["T_left"] = jnp.einsum("kij,kjq->kiq", g_T, m.T_right)
        grads["T_right"] = jnp.einsum("kij,kiq->kjq", g_T, m.T_left)
    if m.E is not None:
        grads["E"], grads["e"] = m.excitability_vjp(pre, ga)
    # O(dt^2): NM k's credit through one step of n and one of r. Step 1 has no earlier release.
    tr = jnp.einsum("kij,...tj->...tki", T, r_prev)  # T_k r(t-1)
    credit = jnp.einsum("...ti,...tki->...tk", delta, tr)
    B = r_prev2 @ m.R.T + n_prev2 @ m.Z.T
    _, dphi_n = value_and_derivative(get_activation(m.nm_activation), B)
    first = (jnp.arange(u.shape[-2]) > 0).astype(delta.dtype)[:, None]
    gk = an * credit * dphi_n * first
    grads["R"] = jnp.einsum("...tk,...tj->kj", gk, r_prev2)
    grads["Z"] = jnp.einsum("...tk,...tl->kl", gk, n_prev2)
    return value, grads, traj


def _cosine(a, b):
    a, b = a.ravel(), b.ravel()
    return jnp.vdot(a, b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), 1e-30)


class LocalRules(AbstractDirectionObjective):
    """Train an e-nmRNN with the leading-order local rules instead of backpropagation through time.

    The loss is the supervised loss (``"mse"`` or ``"cross_entropy"``); the update direction
    handed to the optimiser is :func:`local_gradients` for the parameters in ``rules`` (default:
    every parameter that has one) and zero for the others. ``alignment=True`` also computes the
    true gradient (BPTT) at every step, without using it, and records per rule the cosine
    similarity ``cos_<name>`` between the local and the true gradient and ``null_<name>``, the
    same with the local update's entries randomly permuted (the shuffle null).
    """

    loss: str = eqx.field(static=True, default="mse")
    rules: tuple[str, ...] | None = eqx.field(static=True, default=None)
    input_rule: str = eqx.field(static=True, default="gradient")
    alignment: bool = eqx.field(static=True, default=False)
    noise: bool = eqx.field(static=True, default=False)

    def __init__(self, loss: str = "mse", rules=None, *, input_rule: str = "gradient", alignment: bool = False,
                 noise: bool = False):
        check_choice("loss", loss, LOSSES)
        check_choice("input_rule", input_rule, INPUT_RULES)
        if rules is not None:
            rules = tuple(rules)
            for name in rules:
                check_choice("rule", name, RULE_ORDER)
            if not rules:
                raise ValueError("rules must name at least one parameter, or be None for all")
        self.loss, self.rules, self.input_rule = loss, rules, input_rule
        self.alignment, self.noise = bool(alignment), bool(noise)

    def _names(self, model) -> tuple[str, ...]:
        present = tuple(name for name in RULE_ORDER if getattr(model, name, None) is not None)
        return present if self.rules is None else tuple(n for n in present if n in self.rules)

    @property
    def term_names(self) -> tuple[str, ...]:
        return (self.loss,)

    def validate(self, model, task) -> None:
        check_local_model(model)
        if self.rules is not None:
            missing = [n for n in self.rules if getattr(model, n, None) is None]
            if missing:
                raise ValueError(f"rules {missing} name parameters this e-nmRNN does not have")
        check_model_fits_task(model, task)

    def __call__(self, model, data, *, key):
        value, _ = self.loss_and_direction(model, data, key=key)
        return value

    def loss_and_direction(self, model, data: Batch, *, key):
        """``((loss, aux), direction)``: ``direction`` is ``model`` with every parameter field
        replaced by its update direction (the optimiser treats it as the gradient)."""
        k_noise, k_perm = jr.split(key)
        value, local, _ = local_gradients(model, data, loss=self.loss, input_rule=self.input_rule,
                                          key=k_noise if self.noise else None)
        names = self._names(model)
        aux = {self.loss: value}
        if self.alignment:
            def true_loss(mdl):
                traj = mdl.forward(data.inputs, key=k_noise if self.noise else None)
                return LOSS_FUNCTIONS[self.loss](traj.outputs, data.targets, data.mask)

            true = eqx.filter_grad(true_loss)(model)
            for i, name in enumerate(names):
                g_loc, g_true = local[name], getattr(true, name)
                aux[f"cos_{name}"] = _cosine(g_loc, g_true)
                perm = jr.permutation(jr.fold_in(k_perm, i), g_loc.size)
                aux[f"null_{name}"] = _cosine(g_loc.ravel()[perm], g_true)
        # every other parameter (a learned initial state, say) gets no update
        zeros = jax.tree.map(lambda x: jnp.zeros_like(x) if eqx.is_inexact_array(x) else x, model)
        direction = replace_fields(zeros, **{name: local[name] for name in names})
        return (value, aux), direction


__all__ = ["INPUT_RULES", "RULE_ORDER", "LocalRules", "check_local_model", "local_gradients"]
