"""Fixed points and slow points of recurrent dynamics (Sussillo & Barak 2013; Golub & Sussillo
2018; see docs/references.md).

A fixed point of a map ``x -> F(x, u)`` solves ``F(x, u) = x``; a fixed point of a flow
``dx/dt = f(x, u)`` solves ``f(x, u) = 0``. Both are found by minimising the speed

    q(x) = 0.5 ||F(x, u) - x||^2        (kind="map")
    q(x) = 0.5 ||f(x, u)||^2            (kind="flow")

from many initial states (usually sampled from the network's own trajectories, optionally with
added noise), each with its constant input ``u``. Minima with ``q = 0`` are fixed points; local
minima with small but non-zero ``q`` are *slow points*. All candidates are optimised at once:
compiled ``lax.while_loop`` iterations ``vmap``-ed over the batch (see Searches).

Systems
-------
``system`` is either

* a recurrent model of this library (anything with ``step(state, u)`` and ``initial_state()``):
  its one-step map on an unbatched state NamedTuple. ``kind="map"`` analyses ``F = model.step``;
  ``kind="flow"`` analyses ``model.vector_field = (F(s, u) - s) / dt`` (same fixed points,
  eigenvalues ``lambda_flow = (lambda_map - 1) / dt`` in units of 1 / time). Fields named in
  ``clamp`` are *held fixed*: before every step they are set to their clamped value and their own
  update is discarded, so the search runs over the free fields only (flattened in field order).
  Note the semantics for models that update a clamped field *before* using it within one step:
  the NM-RNN computes ``z_t`` first and gates ``x_t`` with ``s(z_t)``, so with ``z`` clamped to
  ``z0`` the gains are those of ``z_t = F_z(z0, u)`` (one leaky step from ``z0``; exactly
  ``s(z0)`` when ``z0`` is itself a fixed point of the z dynamics at input ``u``). To gate with
  ``s(z_target)`` for some other ``z_target``, clamp at the pre-image ``c`` with
  ``F_z(c, u) = z_target`` (:func:`nmrnn.analysis.clamp_preimage` solves for it). The
  e-nmRNN updates ``r`` and ``n`` simultaneously, so clamping ``n`` is exact.
* a plain function ``F(x, u) -> array (D,)`` of a state vector ``x (D,)`` and an input ``u (P,)``
  (``P`` may be 0): the next state for ``kind="map"`` or ``dx/dt`` for ``kind="flow"``.

Example (a trained network, its own trajectories as initial states)::

    traj = simulate(model, batch.inputs)
    inits = sample_states(traj.states, 256, key=jr.PRNGKey(0), noise_scale=0.05)
    fps = find_fixed_points(model, inits, jnp.zeros(model.n_in))        # input off
    fps.points, fps.stability, fps.eigenvalues, fps.report.summary()
    find_fixed_points(enm_model, inits, u, clamp={"n": n_levels})       # NMs held fixed

To follow a point as a parameter (an input, a clamped neuromodulator level) changes, see
:func:`nmrnn.analysis.continue_fixed_point` and :class:`nmrnn.analysis.ModelFamily`.

Searches
--------
``search="between"`` (default): the candidates are optimised from the given initial states, then
a second time from the points found and from points on the segments between every two stable
points found (``between_fractions`` of the way, nearest pairs first, at most
``MAX_BETWEEN_STARTS``) and their centroid. Initial states sampled from a trained network's
trajectories lie near its attractors, and every optimiser started there mostly returns the
attractor nearest its start; the saddles between two memories lie between them. On a GRU trained
on the 3-bit flip-flop (``benchmarks/bench_fixed_points.py``) the first search alone finds the 8
memories and 1 saddle, the second all 27 fixed points of the cube (8 stable, 12 + 6 + 1 saddles),
in 0.3-0.4 s per compiled call; Golub & Sussillo's FixedPointFinder with the same starts finds 4
genuine points in 13 s (16 in 23 s with 4x its iterations, all among ours), and Adam's descent
polished by LM (``method="adam-lm"``) 21 in 1 s from the starts alone. ``search="single"``: the first search only. The report of the final search is
``result.report`` and that of the first ``result.report.first_pass``.

All candidates are optimised at once, in chunks of iterations; between chunks the finished
candidates are set aside and the others continue as a smaller batch, so that a few slow
candidates do not keep every candidate iterating (a candidate's result does not depend on the
others in its batch, tested).

Optimisers and tolerances
-------------------------
``method="lm"`` (default): Levenberg-Marquardt on the residual ``r(x)`` (``F - x`` or ``f``),
steps ``(J^T J + mu I) dx = -J^T r`` with ``mu = lam * max(diag(J^T J))``; ``lam`` starts at
``1e-3``, shrinks x0.3 on an accepted step and grows x4 on a rejected one. Quadratic convergence
at isolated fixed points; for large states (D of several hundred) the per-step Jacobian costs D
forward passes and ``method="adam"`` (gradient descent on q with optax Adam, no Jacobian) scales
better (its step size decays geometrically from ``lr`` to ``lr * 1e-4`` over ``max_iters``).

``method="adam-lm"``: Adam's descent on q (as Golub & Sussillo's FixedPointFinder does, for at
most ``descent_iters`` iterations, until ``q <= polish_q``), then Levenberg-Marquardt from where
the descent ended. A candidate that reaches ``q <= tol_q`` under LM gets one more, nearly
undamped LM step, kept if it lowers q, which takes it to the precision of the arithmetic.

A candidate stops when ``q <= tol_q``, when no step reduces q any more (``lam`` above ``1e10``:
the precision of q is exhausted; LM only), or after ``max_iters`` iterations. It is then

1. a *fixed point* if ``q <= tol_q`` (default ``1e-10`` in float32, about the precision floor of
   ``q`` for states of order 1 and N ~ 100; ``1e-20`` in float64; Golub & Sussillo use 1e-12);
2. a *slow point* if ``q > tol_q`` but q is stationary: no LM step reduces q any more at
   floating-point precision (steps kept being rejected while the damping grew to its cap), or
   its relative gradient ``||J^T r|| / (||J||_F ||r||) <= tol_grad``
   (default ``1e-3`` in float32, ``1e-6`` in float64; at a minimum with ``q > 0`` the optimiser
   stops once the decrease of q falls below the precision of q, which leaves a relative gradient
   of order ``sqrt(machine epsilon)``, 1e-5 to 5e-4 in float32, while a point that is not
   stationary has one of order 1). These tests are applied when the optimisation has ended, so
   an ill-conditioned Jacobian (a slow manifold) does not stop a candidate early. Adam has no
   stall test, only the gradient test;
3. *not converged* otherwise.

Candidates that end by 1 or 2 are *converged*; the others are reported in
``result.report.not_converged`` (never dropped silently). Converged candidates are then filtered
as in Golub & Sussillo's FixedPointFinder:

* *distance outliers*: points farther than ``outlier_distance_scale`` (10) times the mean distance
  of the initial states to their centroid, measured from that centroid, are dropped;
* *duplicates*: two points are the same if they differ by less than ``tol_unique`` (1e-3) in every
  coordinate (state and input); of a group of duplicates the one with the smallest q is kept.

Every kept point gets its Jacobians with respect to the free state and the input
(``jax.jacfwd``), their eigendecomposition (NumPy, float64), and a stability label.

Stability labels (``classify_stability``): with ``s_i = Re(lambda_i)`` for flows and
``s_i = |lambda_i| - 1`` for maps, a point is ``"stable"`` if every ``s_i < -tol``, ``"unstable"``
if every ``s_i > tol``, ``"saddle"`` if some are above and some below, and ``"marginal"`` if any
``|s_i| <= tol`` (non-hyperbolic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

KINDS = ("map", "flow")
METHODS = ("adam-lm", "lm", "adam")
STABILITY_LABELS = ("stable", "unstable", "saddle", "marginal")


# ----------------------------------------------------------------------------------------------
# systems: a model or a function, seen as F(x, u) on a flat free-state vector
# ----------------------------------------------------------------------------------------------


class System(NamedTuple):
    """A dynamical system on a flat state vector ``x (dim,)`` with input ``u (n_in,)``.

    ``fn(x, u)`` is the next state (``kind="map"``) or ``dx/dt`` (``kind="flow"``);
    ``residual(x, u)`` is ``fn - x`` for maps and ``fn`` for flows. For models, ``to_state``
    turns a flat free vector (any leading dims) into the model's full state NamedTuple (clamped
    fields filled in) and ``from_state`` does the reverse; for functions both are ``None``.
    ``source`` is the model or function and ``clamped`` the validated clamp values.
    """

    fn: Callable[[Array, Array], Array]
    residual: Callable[[Array, Array], Array]
    kind: str
    dim: int | None
    n_in: int | None
    free_fields: tuple[str, ...]
    clamped: dict[str, Array]
    to_state: Callable[[Array], Any] | None
    from_state: Callable[[Any], Array] | None
    dt: float
    source: Any


def is_model(system: Any) -> bool:
    """True for objects with the recurrent-model interface (``step`` and ``initial_state``)."""
    return callable(getattr(system, "step", None)) and callable(getattr(system, "initial_state", None))


class _Parts(NamedTuple):
    fn: Callable
    residual: Callable
    to_state: Callable | None
    from_state: Callable | None
    free: tuple[str, ...]
    dim: int | None
    dt: float


def _build(source: Any, kind: str, clamped: dict[str, Array]) -> _Parts:
    """The system's functions, without validation (traceable: used inside compiled code)."""
    if not is_model(source):
        fn = source
        residual = (lambda x, u: fn(x, u) - x) if kind == "map" else fn
        return _Parts(fn, residual, None, None, (), None, 1.0)
    model = source
    template = model.initial_state(())
    free = tuple(f for f in template._fields if f not in clamped)
    shapes = [tuple(jnp.shape(getattr(template, f))) for f in free]
    sizes = [int(np.prod(s)) for s in shapes]
    splits = np.cumsum(sizes)[:-1].tolist()
    dt = float(getattr(model, "dt", 1.0))
    core = model.materialize() if callable(getattr(model, "materialize", None)) else model

    def to_state(x):
        lead = x.shape[:-1]
        parts = jnp.split(x, splits, axis=-1)
        values = {f: p.reshape(*lead, *s) for f, p, s in zip(free, parts, shapes, strict=True)}
        for name, value in clamped.items():
            values[name] = jnp.broadcast_to(value, (*lead, *jnp.shape(value)))
        return type(template)(**values)

    def from_state(state):
        leaves = [jnp.asarray(getattr(state, f)) for f in free]
        lead = leaves[0].shape[: leaves[0].ndim - len(shapes[0])]
        return jnp.concatenate([a.reshape(*lead, -1) for a in leaves], axis=-1)

    def step_map(x, u):
        return from_state(core.step(to_state(x), u))

    if kind == "map":
        fn = step_map

        def residual(x, u):
            return step_map(x, u) - x
    else:

        def fn(x, u):
            return (step_map(x, u) - x) / dt

        residual = fn
    return _Parts(fn, residual, to_state, from_state, free, int(sum(sizes)), dt)


def make_system(
    system: Any,
    *,
    kind: str = "map",
    clamp: dict[str, Any] | None = None,
) -> System:
    """Wrap a model or a function ``F(x, u)`` as a :class:`System` (see the module docstring).

    Raises ``ValueError`` for an unknown ``kind``, an object that is neither a model with a
    defined ``step`` nor a callable, a model whose ``step`` is not implemented, clamps on a
    function or on unknown fields, clamp values of the wrong shape, or clamping every field.
    """
    check_choice("kind", kind, KINDS)
    if is_model(system):
        clamped = _check_model(system, clamp or {})
        parts = _build(system, kind, clamped)
        return System(
            parts.fn, parts.residual, kind, parts.dim, int(system.n_in), parts.free, clamped,
            parts.to_state, parts.from_state, parts.dt, system,
        )
    if getattr(system, "step", None) is not None or hasattr(system, "initial_state"):
        raise ValueError(
            f"{type(system).__name__} has no usable one-step map: a model needs callable "
            "step(state, u) and initial_state() methods"
        )
    if not callable(system):
        raise ValueError(
            f"system must be a recurrent model (with step(state, u) and initial_state()) or a "
            f"callable F(x, u); got {type(system).__name__}"
        )
    if clamp:
        raise ValueError(
            "clamp applies to model state fields; for a function F(x, u) hold variables fixed "
            "inside the function instead"
        )
    parts = _build(system, kind, {})
    return System(parts.fn, parts.residual, kind, None, None, (), {}, None, None, 1.0, system)


def _check_model(model: Any, clamp: dict[str, Any]) -> dict[str, Array]:
    """Validate a model's state layout and the clamp values; return the clamps as arrays."""
    name = type(model).__name__
    try:
        template = model.initial_state(())
    except NotImplementedError:
        raise ValueError(f"{name} does not define initial_state()") from None
    if not hasattr(template, "_fields"):
        raise ValueError(
            f"{name}.initial_state() must return a NamedTuple of arrays, got {type(template).__name__}"
        )
    fields = tuple(template._fields)
    unknown = sorted(set(clamp) - set(fields))
    if unknown:
        raise ValueError(
            f"cannot clamp {', '.join(map(repr, unknown))}: {name} state fields are {', '.join(fields)}"
        )
    free = tuple(f for f in fields if f not in clamp)
    if not free:
        raise ValueError(f"every state field ({', '.join(fields)}) is clamped; nothing left to solve for")
    clamped = {}
    for field, value in clamp.items():
        ref = jnp.shape(getattr(template, field))
        arr = jnp.asarray(value, dtype=jnp.result_type(getattr(template, field)))
        if arr.ndim == 0:
            arr = jnp.broadcast_to(arr, ref)
        if arr.shape != ref:
            raise ValueError(
                f"clamp value for {field!r} must be a scalar or have shape {tuple(ref)}, got "
                f"shape {tuple(arr.shape)}"
            )
        clamped[field] = arr
    if not hasattr(model, "n_in"):
        raise ValueError(f"{name} has no n_in (its input size)")
    flat0, _ = ravel_pytree(tuple(getattr(template, f) for f in free))
    parts = _build(model, "map", clamped)
    # Refuse a model whose step is not implemented before anything is compiled.
    try:
        jax.eval_shape(parts.fn, flat0, jnp.zeros(int(model.n_in), flat0.dtype))
    except NotImplementedError:
        raise ValueError(f"{name} does not define a one-step map step(state, u)") from None
    return clamped


# ----------------------------------------------------------------------------------------------
# initial states
# ----------------------------------------------------------------------------------------------


def sample_states(
    states: Any,
    n: int,
    *,
    key: PRNGKeyArray,
    noise_scale: float = 0.0,
    valid: Any = None,
) -> Any:
    """Draw ``n`` states from trajectories (with replacement), optionally adding Gaussian noise.

    Args:
        states: trajectories ``(B, T, D)`` (or ``(T, D)``) as an array, or a state NamedTuple
            whose fields are ``(B, T, size)`` (e.g. ``simulate(model, inputs).states``).
        n: number of samples.
        key: PRNG key (same key, same samples).
        noise_scale: standard deviation of i.i.d. Gaussian noise added to every sampled value.
        valid: optional boolean mask ``(B, T)`` of time points to sample from.

    Returns:
        The samples in the form of ``states``, with leading axis ``n`` instead of ``(B, T)``.
        The same ``(trial, time)`` pairs are used for every field.
    """
    n = check_positive_int("n", n)
    noise_scale = check_nonnegative("noise_scale", noise_scale)
    leaves, treedef = jax.tree.flatten(states)
    if not leaves:
        raise ValueError("states is empty")
    shapes = [np.shape(a) for a in leaves]
    if any(len(s) < 2 for s in shapes):
        raise ValueError(f"states must have shape (T, D) or (B, T, D) per field; got shapes {shapes}")
    if any(len(s) == 2 for s in shapes):
        leaves = [jnp.asarray(a)[None] if np.ndim(a) == 2 else jnp.asarray(a) for a in leaves]
    bt = {tuple(np.shape(a)[:2]) for a in leaves}
    if len(bt) != 1:
        raise ValueError(f"state fields disagree on (batch, time): {sorted(bt)}")
    (b, t) = bt.pop()
    if valid is None:
        mask = np.ones((b, t), bool)
    else:
        mask = np.asarray(valid, bool)
        if mask.shape != (b, t):
            raise ValueError(f"valid must have shape (batch, time)=({b}, {t}), got {mask.shape}")
        if not mask.any():
            raise ValueError("valid selects no time point")
    flat_index = jnp.asarray(np.flatnonzero(mask.reshape(-1)))
    flats = tuple(jnp.asarray(a).reshape(b * t, *np.shape(a)[2:]) for a in leaves)
    out = _gather_samples(key, flats, flat_index, n, noise_scale)
    return jax.tree.unflatten(treedef, out)


@eqx.filter_jit
def _gather_samples(key, flats, flat_index, n, noise_scale):
    k_pick, k_noise = jr.split(key)
    pick = flat_index[jr.randint(k_pick, (n,), 0, flat_index.shape[0])]
    out = []
    for a, k in zip(flats, jr.split(k_noise, len(flats)), strict=True):
        sample = a[pick]
        if noise_scale > 0:
            sample = sample + noise_scale * jr.normal(k, sample.shape, sample.dtype)
        out.append(sample)
    return out


# ----------------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------------


class FixedPointReport(NamedTuple):
    """What happened to every candidate (nothing is dropped silently).

    ``not_converged``: candidate indices that ended neither at a fixed point nor at a stationary
    point of q (``max_iters`` reached), with their final ``q`` and state in
    ``not_converged_q`` / ``not_converged_points``. ``distance_outliers``: converged candidates
    dropped as too far from the initial states. ``n_duplicates``: converged, non-outlier
    candidates merged into another point. ``tolerances``: the settings used.
    """

    n_candidates: int
    n_converged: int
    n_fixed: int
    n_slow: int
    not_converged: np.ndarray
    not_converged_q: np.ndarray
    not_converged_points: np.ndarray
    distance_outliers: np.ndarray
    n_duplicates: int
    n_unique: int
    tolerances: dict[str, Any]
    first_pass: FixedPointReport | None = None

    def summary(self) -> str:
        """A one-paragraph account of the search."""
        lines = [
            f"{self.n_candidates} candidates: {self.n_converged} converged "
            f"({self.n_fixed} fixed points with q <= {self.tolerances['tol_q']:.1e}, "
            f"{self.n_slow} slow points), {len(self.not_converged)} did not converge",
            f"{len(self.distance_outliers)} distance outliers dropped, {self.n_duplicates} "
            f"duplicates merged -> {self.n_unique} unique points",
        ]
        if len(self.not_converged):
            worst = float(np.max(self.not_converged_q))
            lines.append(f"not converged: candidates {self.not_converged.tolist()} (max q {worst:.3e})")
        if self.first_pass is not None:
            return (f"first search: {self.first_pass.summary()}; second search, from its points and "
                    f"between its stable points: {'; '.join(lines)}")
        return "; ".join(lines)


class FixedPoints(NamedTuple):
    """Unique fixed / slow points and their linearisations. ``K`` points, state size ``D``,
    ``P`` inputs.

    Attributes:
        points: ``(K, D)`` free-state coordinates.
        states: the model's full state NamedTuple with fields ``(K, size)`` (clamped fields
            included), or ``None`` for a function or when no point was found.
        inputs: ``(K, P)`` the constant input of each point.
        q: ``(K,)`` the speed at the point.
        converged: ``(K,)`` whether the optimisation met a stopping criterion.
        slow: ``(K,)`` converged with ``q > tol_q`` (a slow point, not a fixed point).
        n_iters: ``(K,)`` optimiser iterations.
        initial: ``(K, D)`` the state each point was found from (with ``search="between"``:
            its start in the second search, a first-search point or a point between two).
        jacobians: ``(K, D, D)`` ``dF/dx`` (maps) or ``df/dx`` (flows) at the point.
        input_jacobians: ``(K, D, P)`` ``dF/du`` or ``df/du``.
        eigenvalues: ``(K, D)`` complex, sorted by decreasing real part (flows) or modulus (maps).
        eigenvectors: ``(K, D, D)`` complex, column ``j`` belongs to ``eigenvalues[:, j]``.
        stability: one label per point (see :func:`classify_stability`).
        kind: ``"map"`` or ``"flow"``.
        free_fields: the model state fields searched over (empty for a function).
        report: a :class:`FixedPointReport`.
    """

    points: np.ndarray
    states: Any
    inputs: np.ndarray
    q: np.ndarray
    converged: np.ndarray
    slow: np.ndarray
    n_iters: np.ndarray
    initial: np.ndarray
    jacobians: np.ndarray
    input_jacobians: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    stability: tuple[str, ...]
    kind: str
    free_fields: tuple[str, ...]
    report: FixedPointReport

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])


# ----------------------------------------------------------------------------------------------
# stability
# ----------------------------------------------------------------------------------------------


def stability_margins(eigenvalues: Any, kind: str) -> np.ndarray:
    """``Re(lambda)`` for flows, ``|lambda| - 1`` for maps (positive = unstable direction)."""
    check_choice("kind", kind, KINDS)
    lam = np.asarray(eigenvalues)
    return lam.real if kind == "flow" else np.abs(lam) - 1.0


def classify_stability(eigenvalues: Any, kind: str, tol: float = 1e-7) -> str | tuple[str, ...]:
    """Label ``"stable"``, ``"unstable"``, ``"saddle"`` or ``"marginal"`` from eigenvalues.

    ``eigenvalues``: ``(D,)`` for one point (returns a label) or ``(K, D)`` (returns a tuple).
    ``tol``: margins within ``tol`` of the stability boundary count as marginal.
    """
    lam = np.asarray(eigenvalues)
    if lam.ndim == 2:
        return tuple(classify_stability(row, kind, tol) for row in lam)
    s = stability_margins(lam, kind)
    if np.any(np.abs(s) <= tol):
        return "marginal"
    n_up = int(np.sum(s > tol))
    if n_up == 0:
        return "stable"
    if n_up == s.size:
        return "unstable"
    return "saddle"


def sort_eigen(eigenvalues: np.ndarray, eigenvectors: np.ndarray | None, kind: str):
    """Sort by decreasing real part (flows) or modulus (maps); ties broken by imaginary part."""
    key = eigenvalues.real if kind == "flow" else np.abs(eigenvalues)
    order = np.lexsort((-eigenvalues.imag, -np.round(key, 12)), axis=-1)
    vals = np.take_along_axis(eigenvalues, order, axis=-1)
    if eigenvectors is None:
        return vals, None
    vecs = np.take_along_axis(eigenvectors, order[..., None, :], axis=-1)
    return vals, vecs


def eig_sorted(jacobians: Any, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of ``(..., D, D)`` Jacobians in float64, sorted as :func:`sort_eigen`."""
    J = np.asarray(jacobians, dtype=np.float64)
    vals, vecs = np.linalg.eig(J)
    return sort_eigen(vals.astype(np.complex128), vecs.astype(np.complex128), kind)


def linearize(
    system: Any,
    points: Any,
    inputs: Any = None,
    *,
    kind: str = "map",
    clamp: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Jacobians ``(K, D, D)`` w.r.t. the state and ``(K, D, P)`` w.r.t. the input at ``points``.

    ``system``, ``kind`` and ``clamp`` as in :func:`find_fixed_points`; ``points`` ``(K, D)`` or
    ``(D,)``; ``inputs`` ``(P,)`` or ``(K, P)``.
    """
    sys_ = make_system(system, kind=kind, clamp=clamp)
    x, u = _prepare(sys_, points, inputs)
    jx, ju = _padded(lambda a, b: _jac(sys_.source, sys_.clamped, kind, a, b), x, u)
    return np.asarray(jx), np.asarray(ju)


# ----------------------------------------------------------------------------------------------
# the search
# ----------------------------------------------------------------------------------------------


def _default_tol_q(dtype) -> float:
    return 1e-20 if jnp.dtype(dtype) == jnp.float64 else 1e-10


def _default_tol_grad(dtype) -> float:
    return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 1e-3


def _prepare(sys_: System, initial_states: Any, inputs: Any) -> tuple[Array, Array]:
    """Validate and broadcast initial states to ``(K, D)`` and inputs to ``(K, P)``."""
    if sys_.from_state is not None and hasattr(initial_states, "_fields"):
        missing = [f for f in sys_.free_fields if f not in initial_states._fields]
        if missing:
            raise ValueError(f"initial_states lacks field(s) {missing}")
        x = sys_.from_state(initial_states)
    else:
        x = jnp.asarray(initial_states)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f"initial states must have shape (K, D) or (D,) with K >= 1; got shape {tuple(x.shape)}"
        )
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("initial states contain NaN or inf")
    if sys_.dim is not None and x.shape[1] != sys_.dim:
        raise ValueError(
            f"initial states have {x.shape[1]} coordinates but the free state "
            f"({', '.join(sys_.free_fields)}) has {sys_.dim}"
        )
    k, d = x.shape
    if inputs is None:
        u = jnp.zeros((k, sys_.n_in or 0), x.dtype)
    else:
        u = jnp.asarray(inputs, x.dtype)
        if u.ndim == 0 or u.ndim > 2:
            raise ValueError(f"inputs must have shape (P,) or (K, P); got shape {tuple(u.shape)}")
        if u.ndim == 1:
            u = jnp.broadcast_to(u, (k, u.shape[0]))
        elif u.shape[0] == 1:
            u = jnp.broadcast_to(u, (k, u.shape[1]))
        elif u.shape[0] != k:
            raise ValueError(
                f"inputs have {u.shape[0]} rows but there are {k} initial states; give one input "
                "(P,) for all or one row per initial state (K, P)"
            )
        if sys_.n_in is not None and u.shape[1] != sys_.n_in:
            raise ValueError(f"inputs have {u.shape[1]} channels but the model expects n_in={sys_.n_in}")
    try:
        out = jax.eval_shape(sys_.fn, jax.ShapeDtypeStruct((d,), x.dtype), jax.ShapeDtypeStruct(u.shape[1:], x.dtype))
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"calling the system with a state of shape ({d},) and an input of shape "
            f"{tuple(u.shape[1:])} failed: {err}"
        ) from err
    if tuple(out.shape) != (d,):
        raise ValueError(
            f"the system maps a state of shape ({d},) to shape {tuple(out.shape)}; it must return "
            f"shape ({d},)"
        )
    return x, u


# Compiled entry points. ``source`` (a model: its arrays are traced, its static fields are part of
# the cache key; or a function: static, cached by identity) and ``clamped`` are passed as
# arguments, so a second call on the same model architecture and shapes does not recompile.
# Batches are padded to a bucket size (see ``_bucket``) so that searches with different numbers
# of candidates share compiled code too.


def _bucket(k: int) -> int:
    """Padded batch size: the next power of two (at least 8) up to 64, then a multiple of 64."""
    if k <= 64:
        return max(8, 1 << (k - 1).bit_length())
    return -(-k // 64) * 64


def _padded(fn, *args):
    """Call ``fn`` on ``args`` (arrays or pytrees of arrays, leading axis K) padded to
    ``_bucket(K)`` rows; unpad the result."""
    k = jax.tree.leaves(args[0])[0].shape[0]
    return jax.tree.map(lambda a: a[:k], fn(*_pad_tree(args, _bucket(k))))


@eqx.filter_jit
def _jac(source, clamped, kind, x, u):
    fn = _build(source, kind, clamped).fn
    return jax.vmap(jax.jacfwd(fn, argnums=(0, 1)))(x, u)


@eqx.filter_jit
def _speed(source, clamped, kind, x, u):
    residual = _build(source, kind, clamped).residual

    def qf(xx, uu):
        r = residual(xx, uu)
        return 0.5 * jnp.sum(r * r)

    return jax.vmap(qf)(x, u)


@eqx.filter_jit
def _to_state(source, clamped, x):
    return _build(source, "map", clamped).to_state(x)


class _Solved(NamedTuple):
    x: Array
    q: Array
    rel_grad: Array
    n_iters: Array
    stalled: Array


def _relative_gradient(J, r):
    return jnp.linalg.norm(J.T @ r) / jnp.maximum(jnp.linalg.norm(J) * jnp.linalg.norm(r), 1e-30)


# The optimisers, one candidate at a time, as resumable steppers: ``init(x0, u) -> carry``,
# ``body(carry, u) -> carry``, ``done(carry) -> bool``. The search runs them ``vmap``-ed over the
# candidates in chunks of iterations and drops the finished candidates between chunks
# (:func:`_iterate`), so that a few slow candidates do not keep the whole batch iterating.

_LAM_MAX = 1e10


class _LMCarry(NamedTuple):
    x: Array
    q: Array
    it: Array
    lam: Array


class _AdamCarry(NamedTuple):
    x: Array
    q: Array
    it: Array
    opt: Any


def _qfun(residual):
    def qfun(x, u):
        r = residual(x, u)
        return 0.5 * jnp.sum(r * r)

    return qfun


def _lm_stepper(residual, max_iters: int, tol_q: float):
    """Levenberg-Marquardt on the residual (see the module docstring for the damping rule)."""
    qfun = _qfun(residual)

    def init(x0, u):
        return _LMCarry(x0, qfun(x0, u), jnp.asarray(0), jnp.asarray(1e-3, x0.dtype))

    def body(c, u):
        r = residual(c.x, u)
        J = jax.jacfwd(residual)(c.x, u)
        A = J.T @ J
        mu = c.lam * jnp.maximum(jnp.max(jnp.diagonal(A)), 1e-12)
        x_try = c.x + jnp.linalg.solve(A + mu * jnp.eye(A.shape[0], dtype=A.dtype), -(J.T @ r))
        q_try = qfun(x_try, u)
        accept = jnp.isfinite(q_try) & (q_try < c.q)
        return _LMCarry(
            jnp.where(accept, x_try, c.x),
            jnp.where(accept, q_try, c.q),
            c.it + 1,
            jnp.where(accept, jnp.maximum(c.lam * 0.3, 1e-12), c.lam * 4.0),
        )

    def done(c):
        return (c.q <= tol_q) | (c.lam >= _LAM_MAX) | (c.it >= max_iters)

    return init, body, done


def _adam_stepper(residual, max_iters: int, stop_q: float, lr: float):
    """optax Adam on q; the step size decays geometrically to lr * 1e-4 over max_iters: Adam's
    steps do not shrink with the gradient, so a fixed rate would leave the iterate circling the
    minimum at ~lr. Stops at ``q <= stop_q``."""
    opt = optax.adam(optax.exponential_decay(lr, transition_steps=max_iters, decay_rate=1e-4))
    qfun = _qfun(residual)

    def init(x0, u):
        return _AdamCarry(x0, qfun(x0, u), jnp.asarray(0), opt.init(x0))

    def body(c, u):
        g = jax.grad(qfun)(c.x, u)
        upd, state = opt.update(g, c.opt, c.x)
        x = optax.apply_updates(c.x, upd)
        return _AdamCarry(x, qfun(x, u), c.it + 1, state)

    def done(c):
        return (c.q <= stop_q) | (c.it >= max_iters)

    return init, body, done


def _stepper(source, clamped, kind, which, settings):
    residual = _build(source, kind, clamped).residual
    if which == "lm":
        return _lm_stepper(residual, *settings)
    return _adam_stepper(residual, *settings)


@eqx.filter_jit
def _init_chunk(source, clamped, kind, which, settings, x0, u):
    init, _, done = _stepper(source, clamped, kind, which, settings)
    c = jax.vmap(init)(x0, u)
    return c, jax.vmap(done)(c)


@eqx.filter_jit
def _run_chunk(source, clamped, kind, which, settings, chunk, carry, u):
    _, body, done = _stepper(source, clamped, kind, which, settings)

    def one(c, uu):
        stop = c.it + chunk
        return jax.lax.while_loop(lambda c: ~done(c) & (c.it < stop), lambda c: body(c, uu), c)

    c = jax.vmap(one)(carry, u)
    return c, jax.vmap(done)(c)


@eqx.filter_jit
def _refine(source, clamped, kind, tol_q, carry, u):
    """One more, nearly undamped Levenberg-Marquardt step for every candidate that has reached
    ``q <= tol_q``, kept where it lowers q: a candidate stops as soon as q <= tol_q, and this step
    takes the point from there to the precision of the arithmetic (quadratic convergence)."""
    residual = _build(source, kind, clamped).residual
    _, body, _ = _lm_stepper(residual, 1, 0.0)

    def one(c, uu):
        new = body(c._replace(lam=jnp.asarray(1e-9, c.x.dtype)), uu)
        keep = c.q <= tol_q  # body only accepts a lower q
        return c._replace(x=jnp.where(keep, new.x, c.x), q=jnp.where(keep, new.q, c.q))

    return jax.vmap(one)(carry, u)


@eqx.filter_jit
def _finish(source, clamped, kind, x, u):
    residual = _build(source, kind, clamped).residual
    return jax.vmap(lambda xx, uu: _relative_gradient(jax.jacfwd(residual)(xx, uu), residual(xx, uu)))(x, u)


def _compact_bucket(k: int, full: int) -> int:
    """Padded size of a batch of ``k`` unfinished candidates: 8, 32, 128, 512 ... (few sizes, so
    few compilations), never above the size of the whole batch."""
    size = 8
    while size < k:
        size *= 4
    return min(size, full)


def _pad_tree(tree, size: int):
    """Every leaf (leading axis K) padded to ``size`` rows with copies of its first row, in NumPy
    for NumPy leaves (no device op to compile per new shape), in JAX otherwise."""

    def pad(a):
        xp = np if isinstance(a, np.ndarray) else jnp
        extra = size - a.shape[0]
        return a if extra == 0 else xp.concatenate([a, xp.repeat(a[:1], extra, axis=0)])

    return jax.tree.map(pad, tree)


def _iterate(sys_: System, kind: str, which: str, settings: tuple, chunk: int, x0: Array, u: Array):
    """Run one optimiser on every candidate to its end, ``chunk`` iterations at a time, compacting
    the unfinished ones between chunks. Returns the final carries (leading axis K)."""
    k = x0.shape[0]
    full = _bucket(k)
    src, clamped = sys_.source, sys_.clamped
    carry, done = _init_chunk(src, clamped, kind, which, settings, _pad_tree(x0, full), _pad_tree(u, full))
    # the bookkeeping on the host, in NumPy: indexing device arrays with index arrays of a new
    # length every round would compile a gather and a scatter each time
    carry = jax.tree.map(lambda a: np.array(a[:k]), carry)
    u = np.asarray(u)
    done = np.array(done[:k])
    while not done.all():
        idx = np.flatnonzero(~done)
        size = full if len(idx) == k else _compact_bucket(len(idx), full)
        sub = _pad_tree(jax.tree.map(lambda a, i=idx: a[i], (carry, u)), size)
        new, new_done = _run_chunk(src, clamped, kind, which, settings, chunk, *sub)
        for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(new), strict=True):
            a[idx] = np.asarray(b[: len(idx)])
        done[idx] = np.asarray(new_done[: len(idx)])
    return jax.tree.map(jnp.asarray, carry)


def _solve(sys_: System, kind: str, method: str, x0: Array, u: Array, *, max_iters: int, tol_q: float,
           lr: float, descent_iters: int, polish_q: float) -> _Solved:
    iters = jnp.zeros(x0.shape[0], jnp.int32)
    if method in ("adam", "adam-lm"):
        n, stop = (max_iters, tol_q) if method == "adam" else (descent_iters, polish_q)
        c = _iterate(sys_, kind, "adam", (n, stop, lr), 100, x0, u)
        x0, iters = c.x, c.it
    stalled = jnp.zeros(x0.shape[0], bool)
    if method in ("lm", "adam-lm"):
        c = _iterate(sys_, kind, "lm", (max_iters, tol_q), 5, x0, u)
        iters, stalled = iters + c.it, c.lam >= _LAM_MAX
        better = _padded(lambda a, b: _refine(sys_.source, sys_.clamped, kind, tol_q, a, b), c, u)
        c = c._replace(x=better.x, q=better.q)  # the iteration counts and stall flags stay
    rel = _padded(lambda a, b: _finish(sys_.source, sys_.clamped, kind, a, b), c.x, u)
    return _Solved(c.x, c.q, rel, iters, stalled)


SEARCHES = ("between", "single")
BETWEEN_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)
MAX_BETWEEN_STARTS = 4096


def find_fixed_points(
    system: Any,
    initial_states: Any,
    inputs: Any = None,
    *,
    kind: str = "map",
    clamp: dict[str, Any] | None = None,
    search: str = "between",
    method: str = "lm",
    tol_q: float | None = None,
    tol_grad: float | None = None,
    max_iters: int | None = None,
    lr: float = 1e-2,
    descent_iters: int = 1000,
    polish_q: float | None = None,
    between_fractions: tuple[float, ...] = BETWEEN_FRACTIONS,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float | None = 10.0,
    keep_unconverged: bool = False,
    stability_tol: float = 1e-7,
) -> FixedPoints:
    """Find the fixed and slow points of ``system`` from a batch of initial states.

    Args:
        system: a recurrent model (``step``/``initial_state``) or a function ``F(x, u)``.
        initial_states: ``(K, D)`` free-state vectors (or ``(D,)``), or for a model a state
            NamedTuple with fields ``(K, size)`` (e.g. from :func:`sample_states`); clamped
            fields in it are ignored.
        inputs: the constant input, ``(P,)`` for all candidates or ``(K, P)`` one per candidate;
            ``None`` means zeros (``P = n_in`` for a model, 0 for a function).
        kind: ``"map"`` (minimise ``0.5||F(x)-x||^2``) or ``"flow"`` (``0.5||f(x)||^2``).
        clamp: model state fields held fixed, ``{field: value}`` (scalar or the field's shape).
        search: ``"between"`` (default): after the search from ``initial_states``, a second one
            from its points and from points on the segments between every two of its stable
            points with the same input (``between_fractions`` of the way; nearest pairs first,
            at most 4096 starts) and their centroid, which finds the saddles between attractors
            that starts sampled from trajectories rarely reach; ``"single"``: the first search
            only.
        method: the optimiser of every candidate: ``"lm"`` (default, Levenberg-Marquardt),
            ``"adam-lm"`` (Adam's descent on q as in Golub & Sussillo's FixedPointFinder, then
            Levenberg-Marquardt polishing) or ``"adam"`` (Adam on q only).
            ``benchmarks/bench_fixed_points.py`` compares them.
        tol_q: fixed-point tolerance on q (default: 1e-10 in float32, 1e-20 in float64).
        tol_grad: stationarity tolerance on the relative gradient of q (default: 1e-3 in
            float32, 1e-6 in float64).
        max_iters: iteration cap per candidate (default 200 for LM and the polishing of
            ``"adam-lm"``, 5000 for Adam).
        lr: Adam learning rate (``"adam"``, and the descent of ``"adam-lm"``).
        descent_iters: at most this many Adam iterations before the polishing (``"adam-lm"``).
        polish_q: a candidate's descent ends early once its q is at most this (default
            ``1e4 * tol_q``: close enough for Levenberg-Marquardt's quadratic convergence).
        between_fractions: positions on the segments between stable points (``search="between"``).
        tol_unique: max-abs coordinate difference below which two points are duplicates.
        outlier_distance_scale: drop points farther than this many mean initial-state distances
            from the initial states' centroid; ``None`` keeps all.
        keep_unconverged: also return (flagged, ``converged=False``) non-converged candidates.
        stability_tol: margin for the ``"marginal"`` label.

    Returns:
        A :class:`FixedPoints` (NumPy arrays). ``result.report`` accounts for every candidate
        (with ``search="between"``, ``result.report.first_pass`` for the first search's).
    """
    check_choice("search", search, SEARCHES)
    check_choice("method", method, METHODS)
    check_positive("tol_unique", tol_unique)
    check_positive("lr", lr)
    check_nonnegative("stability_tol", stability_tol)
    sys_ = make_system(system, kind=kind, clamp=clamp)
    if outlier_distance_scale is not None:
        check_positive("outlier_distance_scale", outlier_distance_scale)
    if max_iters is None:
        max_iters = 5000 if method == "adam" else 200
    max_iters = check_positive_int("max_iters", max_iters)
    descent_iters = check_positive_int("descent_iters", descent_iters)
    fractions = tuple(float(f) for f in between_fractions)
    if not fractions or any(not 0.0 < f < 1.0 for f in fractions):
        raise ValueError(f"between_fractions must be non-empty and inside (0, 1), got {between_fractions}")
    x0, u = _prepare(sys_, initial_states, inputs)
    tol_q = _default_tol_q(x0.dtype) if tol_q is None else check_positive("tol_q", tol_q)
    tol_grad = _default_tol_grad(x0.dtype) if tol_grad is None else check_positive("tol_grad", tol_grad)
    polish_q = 1e4 * tol_q if polish_q is None else check_positive("polish_q", polish_q)

    once = dict(
        kind=kind, method=method, max_iters=max_iters, tol_q=float(tol_q), tol_grad=float(tol_grad),
        lr=float(lr), descent_iters=descent_iters, polish_q=float(polish_q), tol_unique=float(tol_unique),
        outlier_distance_scale=outlier_distance_scale, keep_unconverged=keep_unconverged,
        stability_tol=float(stability_tol), reference=np.asarray(x0),
    )
    first = _find_once(sys_, x0, u, **once)
    extra = {"search": search} | ({"between_fractions": fractions} if search == "between" else {})
    first = first._replace(report=first.report._replace(tolerances=first.report.tolerances | extra))
    if search == "single":
        return first
    seeds, seed_u = _between_starts(first, fractions)
    if not len(seeds):  # nothing found: the first search is the result
        return first
    final = _find_once(sys_, jnp.asarray(seeds, x0.dtype), jnp.asarray(seed_u, x0.dtype), **once)
    report = final.report._replace(tolerances=final.report.tolerances | extra, first_pass=first.report)
    return final._replace(report=report)


def _between_starts(first: FixedPoints, fractions: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The second search's starts: the first search's points, and points on the segments between
    every two of its stable points with the same input (nearest pairs first) and their centroid."""
    if first.n_points == 0:
        return np.zeros((0,) + first.points.shape[1:]), np.zeros((0,) + first.inputs.shape[1:])
    starts, inputs = [first.points], [first.inputs]
    stable = np.flatnonzero(np.asarray(first.stability, dtype=object) == "stable")
    budget = MAX_BETWEEN_STARTS
    for row in np.unique(first.inputs[stable], axis=0) if len(stable) else []:
        group = stable[np.all(first.inputs[stable] == row, axis=1)]
        if len(group) < 2:
            continue
        pts = first.points[group]
        pairs = sorted(itertools.combinations(range(len(group)), 2),
                       key=lambda ij: float(np.max(np.abs(pts[ij[0]] - pts[ij[1]]))))
        pairs = pairs[: max(0, (budget - 1) // len(fractions))]
        seg = [(1 - f) * pts[i] + f * pts[j] for i, j in pairs for f in fractions] + [pts.mean(axis=0)]
        budget -= len(seg)
        starts.append(np.asarray(seg))
        inputs.append(np.repeat(row[None], len(seg), axis=0))
        if budget <= 0:
            break
    return np.concatenate(starts), np.concatenate(inputs)


def _find_once(sys_: System, x0: Array, u: Array, *, kind, method, max_iters, tol_q, tol_grad, lr,
               descent_iters, polish_q, tol_unique, outlier_distance_scale, keep_unconverged,
               stability_tol, reference) -> FixedPoints:
    sol = _solve(sys_, kind, method, x0, u, max_iters=max_iters, tol_q=tol_q, lr=lr,
                 descent_iters=descent_iters, polish_q=polish_q)
    x = np.asarray(sol.x)
    q = np.asarray(sol.q, dtype=np.float64)
    rel = np.asarray(sol.rel_grad, dtype=np.float64)
    iters = np.asarray(sol.n_iters)
    x0_np, u_np = np.asarray(x0), np.asarray(u)
    finite = np.isfinite(q) & np.all(np.isfinite(x), axis=1)
    is_fixed = finite & (q <= tol_q)
    stalled = np.asarray(sol.stalled)
    is_slow = finite & ~is_fixed & ((rel <= tol_grad) | stalled)
    converged = is_fixed | is_slow
    not_conv = np.flatnonzero(~converged)

    # distance outliers (Golub & Sussillo): relative to the initial states' centroid
    keep = converged | keep_unconverged
    outliers = np.zeros(len(q), bool)
    if outlier_distance_scale is not None:
        centroid = reference.mean(axis=0)
        scale = np.mean(np.linalg.norm(reference - centroid, axis=1))
        if scale > 0:
            dist = np.linalg.norm(np.where(np.isfinite(x), x, np.inf) - centroid, axis=1) / scale
            outliers = keep & (dist > outlier_distance_scale)
    keep &= ~outliers & finite

    # uniqueness: greedy, lowest q first (converged before unconverged)
    cand = np.flatnonzero(keep)
    order = cand[np.lexsort((q[cand], ~converged[cand]))]
    data = np.concatenate([x, u_np], axis=1)
    chosen: list[int] = []
    for i in order:
        if not chosen or np.min(np.max(np.abs(data[chosen] - data[i]), axis=1)) >= tol_unique:
            chosen.append(int(i))
    idx = np.asarray(chosen, dtype=int)
    n_dup = int(len(cand) - len(idx))

    pts, ups = x[idx], u_np[idx]
    d, p = x.shape[1], u_np.shape[1]
    if len(idx):
        jx, ju = _padded(
            lambda a, b: _jac(sys_.source, sys_.clamped, kind, a, b), jnp.asarray(pts), jnp.asarray(ups)
        )
        jx, ju = np.asarray(jx), np.asarray(ju)
        vals, vecs = eig_sorted(jx, kind)
    else:
        jx, ju = np.zeros((0, d, d)), np.zeros((0, d, p))
        vals, vecs = np.zeros((0, d), complex), np.zeros((0, d, d), complex)
    states = None
    if sys_.to_state is not None and len(idx):
        states = _padded(lambda a: _to_state(sys_.source, sys_.clamped, a), jnp.asarray(pts))
        states = jax.tree.map(np.asarray, states)
    report = FixedPointReport(
        n_candidates=int(len(q)),
        n_converged=int(converged.sum()),
        n_fixed=int(is_fixed.sum()),
        n_slow=int(is_slow.sum()),
        not_converged=not_conv,
        not_converged_q=q[not_conv],
        not_converged_points=x[not_conv],
        distance_outliers=np.flatnonzero(outliers),
        n_duplicates=n_dup,
        n_unique=int(len(idx)),
        tolerances={
            "tol_q": float(tol_q),
            "tol_grad": float(tol_grad),
            "max_iters": int(max_iters),
            "method": method,
            "lr": float(lr),
            "descent_iters": int(descent_iters) if method == "adam-lm" else 0,
            "tol_unique": float(tol_unique),
            "outlier_distance_scale": outlier_distance_scale,
            "stability_tol": float(stability_tol),
        },
    )
    return FixedPoints(
        points=pts,
        states=states,
        inputs=ups,
        q=q[idx],
        converged=converged[idx],
        slow=is_slow[idx],
        n_iters=iters[idx],
        initial=x0_np[idx],
        jacobians=jx,
        input_jacobians=ju,
        eigenvalues=vals,
        eigenvectors=vecs,
        stability=classify_stability(vals, kind, stability_tol) if len(idx) else (),
        kind=kind,
        free_fields=sys_.free_fields,
        report=report,
    )


def speed(
    system: Any,
    states: Float[Array, "K D"],
    inputs: Any = None,
    *,
    kind: str = "map",
    clamp: dict[str, Any] | None = None,
) -> np.ndarray:
    """``q`` at each of ``states`` (``(K, D)`` or ``(D,)``): ``(K,)``. Useful to map slow regions."""
    sys_ = make_system(system, kind=kind, clamp=clamp)
    x, u = _prepare(sys_, states, inputs)
    return np.asarray(_padded(lambda a, b: _speed(sys_.source, sys_.clamped, kind, a, b), x, u))


__all__ = [
    "FixedPointReport",
    "FixedPoints",
    "KINDS",
    "METHODS",
    "SEARCHES",
    "STABILITY_LABELS",
    "System",
    "classify_stability",
    "eig_sorted",
    "find_fixed_points",
    "is_model",
    "linearize",
    "make_system",
    "sample_states",
    "sort_eigen",
    "speed",
    "stability_margins",
]
