"""Small analytic dynamical systems, an ODE integrator, and limit-cycle measurements.

The 2-neuron system of paper 000 (section 5, eq. 22-25)::

    dr_i/dt = -r_i + tanh( n (W r)_i + r_3 ),     W = [[2, -1], [1, 2]]

``n`` is a multiplicative (gain, neuromodulator-like) factor and ``r_3`` an additive (input-like)
one. With ``r_3 = 0`` the origin is a fixed point for every ``n``; its Jacobian is ``n W - I``
with eigenvalues ``n mu_W - 1`` for the eigenvalues ``mu_W = 2 +/- i`` of W, i.e.
``(2n - 1) +/- i n``: a Hopf bifurcation at ``n = 1/2``. An additive ``r_3 != 0`` moves the fixed
point away from the origin. Time is in units of the neurons' time constant.

Also here, for tests and examples: the saddle-node normal form ``dx/dt = mu - x^2``, the cubic
``dx/dt = x - x^3`` and a damped pendulum, each with its closed-form fixed points and
eigenvalues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validation import check_choice, check_positive, check_positive_int

#: The recurrent weights of the paper's 2-neuron example.
TWO_NEURON_W = np.array([[2.0, -1.0], [1.0, 2.0]])


def two_neuron_field(
    r: Float[Array, "*batch 2"], n=1.0, r3=0.0, W=TWO_NEURON_W
) -> Float[Array, "*batch 2"]:
    """``dr/dt = -r + tanh(n W r + r3)`` (rows of ``r`` are states; ``n``, ``r3`` broadcast)."""
    W = jnp.asarray(W, dtype=jnp.result_type(r, float))
    return -r + jnp.tanh(n * (r @ W.T) + r3)


def two_neuron_jacobian(r, n=1.0, r3=0.0, W=TWO_NEURON_W) -> np.ndarray:
    """Closed-form Jacobian ``n diag(1 - tanh(a)^2) W - I`` at ``r (2,)``, ``a = n W r + r3``.

    At a fixed point ``tanh(a) = r``, so this is the paper's ``n diag(1 - r^2) W - I``.
    """
    W = np.asarray(W, dtype=np.float64)
    a = n * W @ np.asarray(r, np.float64) + r3
    return n * (1.0 - np.tanh(a) ** 2)[:, None] * W - np.eye(W.shape[0])


def two_neuron_origin_eigenvalues(n, W=TWO_NEURON_W) -> np.ndarray:
    """Eigenvalues of ``n W - I`` at the origin (``r3 = 0``), sorted by decreasing imaginary part.

    For the paper's W this is ``(2n - 1) +/- i n``. ``n`` scalar -> ``(2,)``; array -> ``(..., 2)``.
    """
    n = np.asarray(n, dtype=np.float64)
    mu = np.linalg.eigvals(np.asarray(W, np.float64)).astype(np.complex128)
    mu = mu[np.argsort(-mu.imag)]
    return n[..., None] * mu - 1.0


def two_neuron_hopf_n(W=TWO_NEURON_W) -> float:
    """The gain at which the origin's complex pair crosses ``Re = 0``: ``1 / Re(mu_W)`` (1/2)."""
    mu = np.linalg.eigvals(np.asarray(W, np.float64))
    complex_mu = mu[np.abs(mu.imag) > 0]
    if complex_mu.size == 0:
        raise ValueError("W has no complex eigenvalues: the origin has no Hopf bifurcation")
    re = float(complex_mu[0].real)
    if re <= 0:
        raise ValueError(f"W's complex eigenvalues have Re = {re} <= 0: no Hopf at positive gain")
    return 1.0 / re


class TwoNeuronFamily(eqx.Module):
    """The 2-neuron field as a one-parameter family ``f(r, p)`` for continuation.

    ``vary="n"``: ``p`` is the gain and ``r3 = fixed``; ``vary="r3"``: ``p`` is the additive input
    and ``n = fixed``. Internally the family is the line ``(n, r3) = base + p * direction`` in the
    parameter plane, all arrays, so every family (either parameter, any fixed value, any W) shares
    the compiled code of :func:`nmrnn.analysis.continue_fixed_point`.
    """

    W: Array
    base: Array
    direction: Array

    def __init__(self, vary: str, fixed: float, W=TWO_NEURON_W):
        check_choice("vary", vary, ("n", "r3"))
        dtype = jnp.result_type(float)
        self.W = jnp.asarray(W, dtype=dtype)
        if self.W.shape != (2, 2):
            raise ValueError(f"W must be 2 x 2, got shape {self.W.shape}")
        if vary == "n":
            self.base, self.direction = jnp.asarray([0.0, fixed], dtype), jnp.asarray([1.0, 0.0], dtype)
        else:
            self.base, self.direction = jnp.asarray([fixed, 0.0], dtype), jnp.asarray([0.0, 1.0], dtype)

    def __call__(self, r, p):
        n, r3 = self.base + p * self.direction
        return two_neuron_field(r, n, r3, self.W)


def two_neuron_cycle_radius(n, W=TWO_NEURON_W) -> np.ndarray:
    """Leading-order radius of the limit cycle born at the Hopf point (``r3 = 0``).

    For ``W = [[a, -b], [b, a]]`` (a scaled rotation; the paper's W has a = 2, b = 1) the
    linearisation at the origin is ``(n a - 1) I + n b R`` with ``R`` the 90-degree rotation.
    Averaging the cubic term of ``tanh(y) = y - y^3 / 3 + ...`` over one turn gives the radial
    equation ``d rho / dt = (n a - 1) rho - (n^3 a (a^2 + b^2) / 4) rho^3``, hence

        rho^2 = 4 (n a - 1) / (n^3 a (a^2 + b^2))        (2.5 n^3 in the denominator for the paper's W)

    valid for ``0 < n a - 1 << 1``; NaN where ``n a <= 1`` (no cycle). Raises ``ValueError`` if
    ``W`` is not a scaled rotation.
    """
    a, b = _rotation_parts(W)
    n = np.asarray(n, dtype=np.float64)
    sigma = n * a - 1.0
    with np.errstate(invalid="ignore"):
        return np.where(sigma > 0, np.sqrt(4 * sigma / (n**3 * a * (a**2 + b**2))), np.nan)


def two_neuron_cycle_frequency(W=TWO_NEURON_W) -> float:
    """Leading-order angular frequency on the limit cycle near onset: ``b / a`` (1/2 here).

    The tangential part of the averaged cubic term is ``-(n^3 b (a^2 + b^2) / 4) rho^2``; on the
    cycle (radius from :func:`two_neuron_cycle_radius`) the angular speed ``n b - (n a - 1) b / a``
    equals ``b / a`` for every ``n`` near onset -- the linear frequency ``n b`` at ``n_H = 1/a``.
    The period is ``2 pi a / b`` (``4 pi`` for the paper's W).
    """
    a, b = _rotation_parts(W)
    return float(b / a)


def _rotation_parts(W) -> tuple[float, float]:
    W = np.asarray(W, dtype=np.float64)
    if W.shape != (2, 2):
        raise ValueError(f"W must be 2 x 2, got shape {W.shape}")
    a, b = W[0, 0], W[1, 0]
    if not np.allclose(W, [[a, -b], [b, a]]) or a <= 0:
        raise ValueError(f"W must have the form [[a, -b], [b, a]] with a > 0, got {W.tolist()}")
    return float(a), float(b)


# -- normal forms and textbook systems (closed forms given in the docstrings) --------------------


def saddle_node_field(x, mu):
    """``dx/dt = mu - x^2``: fixed points ``+/- sqrt(mu)`` for ``mu > 0`` (``+``: stable,
    eigenvalue ``-2 sqrt(mu)``; ``-``: unstable), a fold at ``mu = 0, x = 0``."""
    return mu - x**2


def cubic_field(x, u=None):
    """``dx/dt = x - x^3``: fixed points 0 (eigenvalue 1) and ``+/- 1`` (eigenvalue -2)."""
    return x - x**3


def pendulum_field(x, u=None, damping: float = 0.5):
    """Damped pendulum ``theta'' = -sin(theta) - damping theta'`` as ``x = (theta, omega)``.

    Fixed points ``(k pi, 0)``: eigenvalues ``(-g +/- sqrt(g^2 - 4 cos(k pi))) / 2`` with
    ``g = damping``: a stable focus at ``k`` even, a saddle at ``k`` odd.
    """
    theta, omega = x[..., 0], x[..., 1]
    return jnp.stack([omega, -jnp.sin(theta) - damping * omega], axis=-1)


def pendulum_eigenvalues(k: int, damping: float = 0.5) -> np.ndarray:
    """Closed-form eigenvalues at ``(k pi, 0)``, sorted by decreasing real part."""
    c = np.cos(k * np.pi)
    disc = np.sqrt(np.complex128(damping**2 - 4 * c))
    vals = np.array([(-damping + disc) / 2, (-damping - disc) / 2])
    return vals[np.lexsort((-vals.imag, -vals.real))]


# -- integration and limit cycles -------------------------------------------------------------


def integrate(
    f: Callable,
    x0: Float[Array, "*batch D"],
    *,
    dt: float,
    n_steps: int,
    save_every: int = 1,
    args: tuple = (),
) -> Float[Array, "*batch T D"]:
    """Integrate ``dx/dt = f(x, *args)`` with classical RK4 (fixed step ``dt``) from ``x0``.

    Returns the states at times ``dt * save_every * (1..n_steps // save_every)``, batch-major
    ``(*batch, T, D)``; ``f`` must broadcast over leading dims of ``x`` (or use ``jax.vmap``).
    Compiled as one ``lax.scan``; ``jax.vmap`` it over parameters in ``args``.
    """
    dt = check_positive("dt", dt)
    n_steps = check_positive_int("n_steps", n_steps)
    save_every = check_positive_int("save_every", save_every)
    if n_steps % save_every:
        raise ValueError(f"n_steps={n_steps} must be a multiple of save_every={save_every}")

    def rk4(x, _):
        k1 = f(x, *args)
        k2 = f(x + 0.5 * dt * k1, *args)
        k3 = f(x + 0.5 * dt * k2, *args)
        k4 = f(x + dt * k3, *args)
        return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4), None

    def chunk(x, _):
        x, _ = jax.lax.scan(rk4, x, None, length=save_every)
        return x, x

    _, xs = jax.lax.scan(chunk, jnp.asarray(x0), None, length=n_steps // save_every)
    return jnp.moveaxis(xs, 0, -2)


class CycleStats(NamedTuple):
    """Attractor measurements from the tail of a trajectory ``(T, D)``.

    ``mean (D,)``: time-averaged state (the operating point / mean activity; over whole cycles
    when oscillating); ``amplitude (D,)``:
    half the peak-to-peak range per coordinate; ``radius``: max distance from ``mean``;
    ``period``: mean interval between upward crossings of coordinate 0 through its mean
    (NaN if fewer than two crossings); ``oscillating``: ``max(amplitude) > tol``.
    """

    mean: np.ndarray
    amplitude: np.ndarray
    radius: float
    period: float
    oscillating: bool


def cycle_stats(traj, dt: float, *, tol: float = 1e-3) -> CycleStats:
    """Measure the attractor reached by a trajectory ``(T, D)`` sampled every ``dt``.

    Pass only the part after the transient. ``tol`` is the amplitude below which the trajectory
    counts as resting at a fixed point.
    """
    x = np.asarray(traj, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"traj must have shape (T, D) with T >= 3, got {x.shape}")
    mean = x.mean(axis=0)
    amp = 0.5 * (x.max(axis=0) - x.min(axis=0))
    radius = float(np.max(np.linalg.norm(x - mean, axis=1)))
    s = x[:, 0] - mean[0]
    up = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
    period = float("nan")
    if up.size >= 2 and amp.max() > tol:
        frac = s[up] / (s[up] - s[up + 1])  # linear interpolation of the crossing time
        times = (up + frac) * dt
        period = float(np.mean(np.diff(times)))
        # average over whole cycles only, so the mean is not biased by a partial cycle
        mean = x[up[0] + 1 : up[-1] + 1].mean(axis=0)
        radius = float(np.max(np.linalg.norm(x - mean, axis=1)))
    return CycleStats(mean, amp, radius, period, bool(amp.max() > tol))


__all__ = [
    "CycleStats",
    "TWO_NEURON_W",
    "TwoNeuronFamily",
    "cubic_field",
    "cycle_stats",
    "integrate",
    "pendulum_eigenvalues",
    "pendulum_field",
    "saddle_node_field",
    "two_neuron_cycle_frequency",
    "two_neuron_cycle_radius",
    "two_neuron_field",
    "two_neuron_hopf_n",
    "two_neuron_jacobian",
    "two_neuron_origin_eigenvalues",
]
