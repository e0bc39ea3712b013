"""Continuation of fixed points along a parameter, with Hopf and fold (saddle-node) detection.

The system is ``f(x, p)`` with a state ``x (D,)`` and a scalar parameter ``p``: ``dx/dt`` for
``kind="flow"`` or the next state for ``kind="map"``. Its fixed points form curves
``G(x, p) = 0`` with ``G = f`` (flows) or ``G = f - x`` (maps). :func:`continue_fixed_point`
follows one curve from a starting point:

* ``method="arclength"`` (default, pseudo-arclength): the curve is parametrised by its arclength
  in ``(x, p)`` space. From a point ``y = (x, p)`` with unit tangent ``t`` (the null vector of
  ``dG/dy``, oriented like the previous tangent), the predictor is ``y + ds t`` and Newton's
  method corrects it on the hyperplane ``t . (y' - y - ds t) = 0``. This passes folds, where
  the curve turns back in ``p``.
* ``method="natural"``: ``p`` is stepped by ``ds`` and Newton corrects ``x`` at fixed ``p``
  (predictor: the tangent). Simpler, but it cannot pass a fold; the branch then stops with a
  status saying so.

The step ``ds`` adapts: halved after a failed correction (down to ``ds_min``), grown x1.3 after
an easy one (up to ``ds_max``). A correction counts as converged when ``max|G| <= ftol``
(default 1e-6 in float32, 1e-12 in float64) and the corrected point lies within ``2 ds`` of the
previous one (so that the curve does not jump to another branch).

Bifurcations are detected between consecutive points where the number of unstable eigenvalues
changes, and classified by which eigenvalue crossed the stability boundary:

* ``"hopf"``: a complex pair crosses ``Re = 0`` (flows) or ``|lambda| = 1`` (maps; the map case
  is the Neimark-Sacker bifurcation, called Hopf here);
* ``"fold"`` (saddle-node): a real eigenvalue crosses 0 (flows) or +1 (maps) where the curve
  turns back in ``p`` (the ``p`` component of the tangent changes sign);
* ``"branch_point"``: a real eigenvalue crosses 0 / +1 but the curve goes on in ``p``
  (transcritical or pitchfork);
* ``"period_doubling"``: a real eigenvalue of a map crosses -1.

Each is located by bisection along the chord between the two points: for ``theta`` in [0, 1]
the point ``y_i + theta (y_{i+1} - y_i)`` is corrected onto the curve (on the hyperplane normal
to the chord) and the signed margin of the critical eigenvalue (``Re lambda``, or
``|lambda| - 1``, ``lambda - 1``, ``-lambda - 1`` for maps) is driven to zero, until the
bracket in ``p`` is below ``locate_tol``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._validation import check_choice, check_positive, check_positive_int
from .fixed_points import (
    KINDS,
    _build,
    classify_stability,
    eig_sorted,
    is_model,
    make_system,
    stability_margins,
)

CONTINUATION_METHODS = ("arclength", "natural")
BIFURCATION_KINDS = ("hopf", "fold", "branch_point", "period_doubling")


class Bifurcation(NamedTuple):
    """A located bifurcation.

    ``kind``: one of ``BIFURCATION_KINDS``; ``param``, ``point (D,)``: where it is;
    ``eigenvalues (D,)`` there; ``step``: it lies between branch points ``step`` and
    ``step + 1``; ``frequency``: ``|Im lambda|`` of the critical pair for a flow Hopf (radians per
    time unit), ``|arg lambda|`` for a map (radians per step), NaN for real crossings;
    ``margin``: the critical eigenvalue's distance to the boundary at the located point.
    """

    kind: str
    param: float
    point: np.ndarray
    eigenvalues: np.ndarray
    step: int
    frequency: float
    margin: float


class Branch(NamedTuple):
    """A continued curve of fixed points, ``S`` points, state size ``D``.

    ``params (S,)``, ``points (S, D)``, ``eigenvalues (S, D)`` (sorted as in
    :func:`nmrnn.analysis.eig_sorted`), ``stability`` (one label per point), ``n_unstable (S,)``
    (eigenvalues beyond the stability boundary), ``tangents (S, D+1)`` (unit tangent in
    ``(x, p)``), ``residuals (S,)`` (``max|G|``), ``bifurcations``, ``kind``, ``method``, and
    ``status``: why the continuation stopped.
    """

    params: np.ndarray
    points: np.ndarray
    eigenvalues: np.ndarray
    stability: tuple[str, ...]
    n_unstable: np.ndarray
    tangents: np.ndarray
    residuals: np.ndarray
    bifurcations: tuple[Bifurcation, ...]
    kind: str
    method: str
    status: str

    def of_kind(self, kind: str) -> tuple[Bifurcation, ...]:
        """The bifurcations of one kind."""
        check_choice("bifurcation kind", kind, BIFURCATION_KINDS)
        return tuple(b for b in self.bifurcations if b.kind == kind)


# Compiled pieces. ``f`` is an argument: a plain function is static (cached by identity); an
# ``equinox.Module`` with array fields (a parametrised family, a model) is traced, so curves of the
# same family with other fixed values reuse the compiled code.


def _G(f, kind, y):
    d = y.shape[0] - 1
    x, p = y[:d], y[d]
    out = f(x, p)
    return out - x if kind == "map" else out


@eqx.filter_jit
def _correct(f, kind, ftol, max_newton, y_pred, t):
    """Newton on [G(y); t.(y - y_pred)] = 0. Returns (y, converged, iterations, max|G|)."""

    def H(y):
        return jnp.concatenate([_G(f, kind, y), jnp.atleast_1d(jnp.dot(t, y - y_pred))])

    def cond(c):
        _, it, res = c
        return (it < max_newton) & ~(res <= ftol) & jnp.isfinite(res)

    def body(c):
        y, it, _ = c
        y = y - jnp.linalg.solve(jax.jacfwd(H)(y), H(y))
        return y, it + 1, jnp.max(jnp.abs(_G(f, kind, y)))

    res0 = jnp.max(jnp.abs(_G(f, kind, y_pred)))
    y, it, res = jax.lax.while_loop(cond, body, (y_pred, jnp.asarray(0), res0))
    ok = (res <= ftol) & jnp.all(jnp.isfinite(y))
    return y, ok, it, res


@eqx.filter_jit
def _tangent(f, kind, y, t_prev):
    d = y.shape[0] - 1
    A = jnp.concatenate([jax.jacfwd(lambda yy: _G(f, kind, yy))(y), t_prev[None, :]], axis=0)
    rhs = jnp.zeros(d + 1, y.dtype).at[d].set(1.0)
    t = jnp.linalg.solve(A, rhs)
    t = t / jnp.linalg.norm(t)
    return jnp.where(jnp.dot(t, t_prev) < 0, -t, t)


@eqx.filter_jit
def _jac_x(f, y):
    d = y.shape[0] - 1
    return jax.jacfwd(lambda x: f(x, y[d]))(y[:d])


class _Tools(NamedTuple):
    correct: Callable
    tangent: Callable
    jac_x: Callable


def _tools(f: Callable, kind: str, ftol: float, max_newton: int) -> _Tools:
    return _Tools(
        lambda y_pred, t: _correct(f, kind, ftol, max_newton, y_pred, t),
        lambda y, t_prev: _tangent(f, kind, y, t_prev),
        lambda y: _jac_x(f, y),
    )


def _eig(tools: _Tools, y, kind: str) -> np.ndarray:
    vals, _ = eig_sorted(np.asarray(tools.jac_x(y))[None], kind)
    return vals[0]


def _n_unstable(eigs: np.ndarray, kind: str, tol: float) -> int:
    return int(np.sum(stability_margins(eigs, kind) > tol))


def _critical_margin(eigs: np.ndarray, kind: str, crossing: str, imag_tol: float) -> float:
    """Signed margin of the eigenvalue nearest the boundary, among those of one crossing type.

    ``crossing``: ``"complex"`` (a pair: Hopf), ``"real_plus"`` (0 for flows / +1 for maps) or
    ``"real_minus"`` (-1, maps only). NaN when no eigenvalue of that type exists.
    """
    is_complex = np.abs(eigs.imag) > imag_tol
    if crossing == "complex":
        sel = eigs[is_complex]
        m = stability_margins(sel, kind)
    elif crossing == "real_plus":
        sel = eigs[~is_complex].real
        sel = sel if kind == "flow" else sel[sel > 0]
        m = sel if kind == "flow" else sel - 1.0
    else:
        sel = eigs[~is_complex].real
        sel = sel[sel < 0]
        m = -sel - 1.0
    if m.size == 0:
        return float("nan")
    return float(m[np.argmin(np.abs(m))])


def _crossings(kind: str) -> tuple[str, ...]:
    return ("complex", "real_plus") if kind == "flow" else ("complex", "real_plus", "real_minus")


def continue_fixed_point(
    f: Callable,
    x0,
    p0: float,
    p_end: float,
    *,
    kind: str = "flow",
    method: str = "arclength",
    ds: float = 0.01,
    ds_min: float = 1e-6,
    ds_max: float = 0.1,
    max_steps: int = 2000,
    p_bounds: tuple[float, float] | None = None,
    ftol: float | None = None,
    max_newton: int = 12,
    locate: bool = True,
    locate_tol: float = 1e-9,
    stability_tol: float = 1e-7,
    imag_tol: float = 1e-7,
) -> Branch:
    """Follow the fixed point near ``x0`` at ``p = p0`` as ``p`` moves towards ``p_end``.

    Args:
        f: ``f(x, p) -> (D,)``: ``dx/dt`` (``kind="flow"``) or the next state (``kind="map"``).
        x0: ``(D,)`` a guess of the fixed point at ``p0`` (corrected by Newton first).
        p0, p_end: start and target parameter values (``p_end != p0``).
        method: ``"arclength"`` or ``"natural"``.
        ds: initial step (arclength in ``(x, p)``, or the ``p`` step for ``"natural"``, which
            keeps it fixed unless a correction fails).
        ds_min, ds_max: step bounds.
        max_steps: cap on accepted steps.
        p_bounds: stop when ``p`` leaves this interval (default: between ``p0`` and ``p_end``).
        ftol: Newton tolerance on ``max|G|`` (default 1e-6 float32, 1e-12 float64).
        locate: locate detected bifurcations by bisection.
        locate_tol: bisection stops when the bracket in ``p`` (or in the chord) is below this.
        stability_tol, imag_tol: margins counted as zero; imaginary parts counted as real.

    Returns:
        A :class:`Branch`. The branch ends exactly at ``p_end`` when it gets there.
    """
    if not callable(f):
        raise ValueError(f"f must be a callable f(x, p); got {type(f).__name__}")
    check_choice("kind", kind, KINDS)
    check_choice("method", method, CONTINUATION_METHODS)
    ds, ds_min, ds_max = check_positive("ds", ds), check_positive("ds_min", ds_min), check_positive("ds_max", ds_max)
    if not ds_min <= ds <= ds_max:
        raise ValueError(f"need ds_min <= ds <= ds_max, got {ds_min}, {ds}, {ds_max}")
    max_steps = check_positive_int("max_steps", max_steps)
    max_newton = check_positive_int("max_newton", max_newton)
    p0, p_end = float(p0), float(p_end)
    if not (np.isfinite(p0) and np.isfinite(p_end)) or p0 == p_end:
        raise ValueError(f"p0 and p_end must be finite and different, got p0={p0}, p_end={p_end}")
    lo, hi = (min(p0, p_end), max(p0, p_end)) if p_bounds is None else map(float, p_bounds)
    if not lo <= p0 <= hi:
        raise ValueError(f"p0={p0} lies outside p_bounds=({lo}, {hi})")
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    if x0.ndim != 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a state vector of shape (D,), got shape {tuple(x0.shape)}")
    d = int(x0.shape[0])
    try:
        out = jax.eval_shape(f, x0, jnp.asarray(p0, x0.dtype))
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"calling f(x, p) with x of shape ({d},) and a scalar p failed: {err}") from err
    if tuple(out.shape) != (d,):
        raise ValueError(f"f(x, p) must return shape ({d},) like x, got {tuple(out.shape)}")
    dtype = x0.dtype
    if ftol is None:
        ftol = 1e-12 if dtype == jnp.float64 else 1e-6
    tools = _tools(f, kind, float(ftol), max_newton)
    direction = 1.0 if p_end > p0 else -1.0
    e_p = jnp.zeros(d + 1, dtype).at[d].set(1.0)

    y, ok, _, res = tools.correct(jnp.concatenate([x0, jnp.array([p0], dtype)]), e_p)
    if not bool(ok):
        raise ValueError(
            f"no fixed point found near x0 at p0={p0}: Newton ended with max|G| = {float(res):.3e} "
            f"(ftol {ftol:.1e}); give a better x0"
        )
    t = tools.tangent(y, direction * e_p)
    ys, ts, rs = [y], [t], [float(res)]
    status = f"stopped after max_steps={max_steps} steps"
    step = ds
    n_acc = 0
    while n_acc < max_steps:
        if method == "arclength":
            y_pred = y + step * t
            y_new, ok, it, res = tools.correct(y_pred, t)
        else:
            slope = t / t[d]  # dy/dp along the curve
            y_pred = y + direction * step * slope
            y_new, ok, it, res = tools.correct(y_pred, e_p)
        ok = bool(ok) and float(jnp.linalg.norm(y_new - y)) <= 2.0 * step * (
            1.0 if method == "arclength" else float(jnp.linalg.norm(slope))
        )
        if not ok:
            step /= 2.0
            if step < ds_min:
                p_here = float(y[d])
                status = f"correction failed at p={p_here:.6g} with the step below ds_min={ds_min}"
                if method == "natural":
                    status += " (a fold? method='arclength' can pass it)"
                break
            continue
        p_new = float(y_new[d])
        t_new = tools.tangent(y_new, t)
        crossed = (p_new - p_end) * direction >= 0 and (float(y[d]) - p_end) * direction < 0
        if crossed:
            # end exactly at p_end: correct the chord's point at p_end with p held fixed
            w = (p_end - float(y[d])) / (p_new - float(y[d]))
            y_end, ok_end, _, res_end = tools.correct(y + w * (y_new - y), e_p)
            if bool(ok_end):
                ys.append(y_end)
                ts.append(tools.tangent(y_end, t))
                rs.append(float(res_end))
                status = f"reached p_end={p_end}"
            else:
                status = f"the point at p_end={p_end} could not be corrected (max|G| = {float(res_end):.2e})"
            break
        if not lo <= p_new <= hi:
            status = f"left p_bounds=({lo}, {hi}) after p={float(y[d]):.6g}"
            break
        y, t = y_new, t_new
        ys.append(y)
        ts.append(t)
        rs.append(float(res))
        n_acc += 1
        if method == "arclength" and int(it) <= 4:
            step = min(step * 1.3, ds_max)

    Y = np.asarray(jnp.stack(ys))
    T = np.asarray(jnp.stack(ts))
    eigs = np.stack([_eig(tools, jnp.asarray(yy), kind) for yy in Y])
    n_unst = np.array([_n_unstable(e, kind, stability_tol) for e in eigs])
    bifs = []
    for i in range(len(Y) - 1):
        if n_unst[i] == n_unst[i + 1]:
            continue
        for crossing in _crossings(kind):
            a = _critical_margin(eigs[i], kind, crossing, imag_tol)
            b = _critical_margin(eigs[i + 1], kind, crossing, imag_tol)
            if not (np.isfinite(a) and np.isfinite(b)) or np.sign(a) == np.sign(b):
                continue
            if crossing == "complex":
                bkind = "hopf"
            elif crossing == "real_minus":
                bkind = "period_doubling"
            else:
                bkind = "fold" if np.sign(T[i, d]) != np.sign(T[i + 1, d]) else "branch_point"
            bifs.append(
                _locate(tools, Y[i], Y[i + 1], i, bkind, crossing, kind, a, locate, locate_tol, imag_tol)
            )
    return Branch(
        params=Y[:, d].copy(),
        points=Y[:, :d].copy(),
        eigenvalues=eigs,
        stability=classify_stability(eigs, kind, stability_tol),
        n_unstable=n_unst,
        tangents=T,
        residuals=np.asarray(rs),
        bifurcations=tuple(bifs),
        kind=kind,
        method=method,
        status=status,
    )


def _locate(tools, ya, yb, i, bkind, crossing, kind, g_a, locate, tol, imag_tol) -> Bifurcation:
    d = ya.shape[0] - 1
    ya_j, yb_j = jnp.asarray(ya), jnp.asarray(yb)
    chord = yb_j - ya_j
    normal = chord / jnp.linalg.norm(chord)
    lo, hi = 0.0, 1.0
    best_y, best_e = ya, _eig(tools, ya_j, kind)
    best_g = g_a
    length = float(jnp.linalg.norm(chord))
    if locate:
        for _ in range(60):
            if (hi - lo) * length <= tol:
                break
            mid = 0.5 * (lo + hi)
            y, ok, _, _ = tools.correct(ya_j + mid * chord, normal)
            if not bool(ok):
                break
            e = _eig(tools, y, kind)
            g = _critical_margin(e, kind, crossing, imag_tol)
            if not np.isfinite(g):
                break
            best_y, best_e, best_g = np.asarray(y), e, g
            if np.sign(g) == np.sign(g_a):
                lo = mid
            else:
                hi = mid
    freq = float("nan")
    if crossing == "complex":
        sel = best_e[np.abs(best_e.imag) > imag_tol]
        if sel.size:
            j = np.argmin(np.abs(stability_margins(sel, kind)))
            freq = float(abs(sel[j].imag) if kind == "flow" else abs(np.angle(sel[j])))
    return Bifurcation(
        kind=bkind,
        param=float(best_y[d]),
        point=np.asarray(best_y[:d]),
        eigenvalues=best_e,
        step=int(i),
        frequency=freq,
        margin=float(best_g),
    )


class ModelFamily(eqx.Module):
    """A recurrent model as a one-parameter family ``f(x, p)`` for :func:`continue_fixed_point`.

    The parameter moves the constant input and/or clamped state fields along lines:
    ``u = inputs + p * input_direction`` and ``field = clamp[field] + p * clamp_direction[field]``
    (e.g. the e-nmRNN's neuromodulator levels ``n``, clamped, scaled by ``p``). ``x`` is the free
    state, flattened as in :func:`nmrnn.analysis.find_fixed_points`; ``kind`` as there. The model
    is an array field, so families of the same architecture share compiled code.

    Example: ``ModelFamily(model, inputs=u, clamp={"n": n0}, clamp_direction={"n": n0})`` follows
    the fixed points as the neuromodulators are scaled by ``1 + p``.
    """

    model: Any
    inputs: Array
    input_direction: Array
    clamp: dict[str, Array]
    clamp_direction: dict[str, Array]
    kind: str = eqx.field(static=True)

    def __init__(self, model, *, inputs=None, input_direction=None, clamp=None, clamp_direction=None,
                 kind: str = "flow"):
        if not is_model(model):
            raise ValueError(f"ModelFamily needs a recurrent model, got {type(model).__name__}")
        clamp = dict(clamp or {})
        clamp_direction = dict(clamp_direction or {})
        extra = sorted(set(clamp_direction) - set(clamp))
        if extra:
            raise ValueError(f"clamp_direction names field(s) {extra} that are not clamped")
        sys_ = make_system(model, kind=kind, clamp=clamp)  # validates kind, fields and shapes
        dtype = jnp.result_type(float)
        u0 = jnp.zeros(model.n_in, dtype) if inputs is None else jnp.asarray(inputs, dtype)
        du = jnp.zeros(model.n_in, dtype) if input_direction is None else jnp.asarray(input_direction, dtype)
        for name, v in (("inputs", u0), ("input_direction", du)):
            if v.shape != (model.n_in,):
                raise ValueError(f"{name} must have shape ({model.n_in},), got {tuple(v.shape)}")
        directions = {}
        for field, value in sys_.clamped.items():
            d = jnp.asarray(clamp_direction.get(field, 0.0), dtype)
            d = jnp.broadcast_to(d, value.shape) if d.ndim == 0 else d
            if d.shape != value.shape:
                raise ValueError(f"clamp_direction[{field!r}] must have shape {value.shape}, got {d.shape}")
            directions[field] = d
        self.model, self.kind = model, kind
        self.inputs, self.input_direction = u0, du
        self.clamp, self.clamp_direction = dict(sys_.clamped), directions

    def __call__(self, x, p):
        clamped = {f: v + p * self.clamp_direction[f] for f, v in self.clamp.items()}
        return _build(self.model, self.kind, clamped).fn(x, self.inputs + p * self.input_direction)


__all__ = [
    "BIFURCATION_KINDS",
    "Bifurcation",
    "Branch",
    "CONTINUATION_METHODS",
    "ModelFamily",
    "continue_fixed_point",
]
