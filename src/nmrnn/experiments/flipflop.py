"""T8: the 3-bit flip-flop and its fixed points (Sussillo & Barak 2013), for a vanilla RNN and an
NM-RNN.

A network trained on the N-bit flip-flop (:class:`nmrnn.tasks.FlipFlop`) stores each bit in the
sign of an output. Without input its dynamics should then have ``2^N`` stable fixed points whose
readouts sit at the corners of ``{-1, +1}^N`` (the memories), and between two memories that differ
in one bit a saddle with one unstable direction whose unstable manifold runs into those two
memories (the boundary a pulse has to push the state across). For ``N = 3`` the saddles form the
skeleton of a cube: 12 one-unstable-direction saddles on the edges, typically 6 with two unstable
directions on the faces and one with three at the centre.

What is computed
----------------
* :func:`train_flipflop`: build a model (``"vanilla"``: :class:`~nmrnn.models.LeakyRNN` with
  ``tau = dt``, i.e. the plain discrete tanh RNN ``x_t = W tanh(x_{t-1}) + B u_t``;
  ``"nmrnn"``: :class:`~nmrnn.models.NMRNN` with ``tau_x = dt`` and ``tau_z = 10 dt``, so the
  neuromodulatory network is the slower one), train it with :func:`nmrnn.train.fit` and measure the
  sign accuracy on fresh trials.
* :func:`flipflop_fixed_points`: the fixed points of the input-free map (``u = 0``) in two passes
  of :func:`nmrnn.analysis.find_fixed_points` (Levenberg-Marquardt on
  ``q = 0.5 ||F(x) - x||^2``): (1) from states sampled along the network's own trajectories
  (:func:`nmrnn.analysis.sample_states`, plus Gaussian noise), which finds the memories; (2) from
  the points of pass 1 together with points on the straight lines between every pair of stable
  points (fractions ``interp_fractions``) and their centroid, which finds the saddles between
  them (a trained network visits the saddle region only during the one-step flips, so pass 1
  alone rarely finds them). Every saddle's leading unstable eigenvector ``v`` (unit norm) is then
  followed in both directions: the map is iterated from ``saddle +/- eps v`` for
  ``follow_steps`` steps and each end is assigned to the stable point it reached (max-abs
  distance at most ``end_tol``; ``-1`` if none).
* NM-RNN, two analyses: *z free* (the full state ``(x, z)`` is searched; without input ``z`` relaxes
  to the fixed point ``z*`` of the neuromodulatory network, so the gains at every memory are
  ``s(z*)``), and *z clamped* at its mean ``z_bar`` over the memory periods of the test trials
  (the steps with no input pulse on any channel), which asks whether the x network alone holds the
  eight memories at the gains it actually has while it remembers. The analysis module holds a
  clamped field at ``c`` *before* each step, and the NM-RNN updates ``z`` before gating ``x``, so
  the gains used are ``s(F_z(c, 0))`` (see :mod:`nmrnn.analysis.fixed_points`). To gate with
  exactly ``s(z_bar)`` the clamp value is the pre-image ``c`` with ``F_z(c, 0) = z_bar``
  (:func:`z_clamp_value`, Newton's method); the summary also reports how far ``s(F_z(z_bar, 0))``
  is from ``s(z_bar)``.

Criterion of the reproduction (every check must hold), for the vanilla RNN and for the NM-RNN
(both analyses): sign accuracy on fresh trials at least 95%; exactly 8 stable fixed points; their
readouts' sign patterns cover the 8 corners, each once, with every readout within 0.35 (max-abs)
of its corner; saddles with exactly one unstable direction whose unstable manifolds join, between
them, all 12 pairs of neighbouring corners (memories differing in one bit).

Units: time in steps (``dt = 1``); eigenvalues are those of the one-step map (``|lambda| > 1`` is
unstable).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from ..analysis import (
    STABILITY_LABELS,
    FixedPoints,
    find_fixed_points,
    make_system,
    sample_states,
    stability_margins,
)
from ..models import MODELS, make_model, param_count, simulate
from ..tasks import FlipFlop
from ..train import TrainConfig, fit
from .registry import check

#: Model options used unless overridden (time in steps, ``dt = 1``).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "vanilla": dict(n_hidden=32, tau=1.0, dt=1.0),
    "nmrnn": dict(n_hidden=96, n_nm=5, rank=3, tau_x=1.0, tau_z=10.0, dt=1.0),
}

PROFILES: dict[str, dict[str, Any]] = {
    # Vanilla N = 32 (1219 parameters) against an NM-RNN N = 96, M = 5, K = 3 (1213 parameters).
    "quick": dict(
        models={"vanilla": dict(n_hidden=32), "nmrnn": dict(n_hidden=96, n_nm=5, rank=3)},
        steps={"vanilla": 1500, "nmrnn": 2000},
        batch_size=32,
        lr=1e-2,
        n_test=128,
        n_analysis_trials=64,
        n_samples=256,
        noise_scale=0.02,
        follow_steps=500,
        pca_trajectories=12,
        dpi=90,
    ),
    # Larger networks, longer training: a 128-unit vanilla RNN (17155 parameters; Sussillo &
    # Barak used N = 1000) and an NM-RNN with N = 256, M = 20, K = 3 (3598 parameters). Not
    # parameter-matched: the fixed-point search costs O(D^3) per step in the state size D.
    "paper": dict(
        models={"vanilla": dict(n_hidden=128), "nmrnn": dict(n_hidden=256, n_nm=20, rank=3)},
        steps={"vanilla": 10000, "nmrnn": 10000},
        batch_size=64,
        lr=5e-3,
        n_test=512,
        n_analysis_trials=128,
        n_samples=512,
        noise_scale=0.02,
        follow_steps=1000,
        pca_trajectories=20,
        dpi=150,
    ),
}

ACCURACY_MIN = 0.95
CORNER_TOL = 0.35


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


class FlipFlopTraining(NamedTuple):
    """A trained flip-flop network: ``model``, the per-step training ``losses``, the sign
    ``accuracy`` and masked MSE ``test_loss`` on fresh trials, training ``seconds`` and the
    model ``options`` used (sizes included)."""

    model: Any
    losses: np.ndarray
    accuracy: float
    test_loss: float
    seconds: float
    options: dict[str, Any]


def train_flipflop(
    model_name: str,
    key: PRNGKeyArray,
    steps: int,
    *,
    task: FlipFlop | None = None,
    batch_size: int = 32,
    lr: float = 1e-2,
    n_test: int = 128,
    **options: Any,
) -> FlipFlopTraining:
    """Build ``model_name`` (any name of :data:`nmrnn.models.MODELS`; sizes and time constants
    from :data:`MODEL_DEFAULTS` unless given in ``options``) and train it on ``task`` (default:
    the 3-bit :class:`~nmrnn.tasks.FlipFlop`) for ``steps`` steps of clipped AdamW on fresh
    batches. ``key`` is split into the initialisation, training and test keys.
    """
    check_choice("model_name", model_name, MODELS)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    n_test = check_positive_int("n_test", n_test)
    check_positive("lr", lr)
    task = FlipFlop() if task is None else task
    if not isinstance(task, FlipFlop):
        raise ValueError(f"task must be a FlipFlop, got {type(task).__name__}")
    opts = {**MODEL_DEFAULTS.get(model_name, {}), **options}
    n_hidden = check_positive_int("n_hidden", opts.pop("n_hidden", 32))
    k_init, k_train, k_test = jr.split(key, 3)
    model = make_model(
        model_name, n_in=task.n_in, n_out=task.n_out, n_hidden=n_hidden, key=k_init, **opts
    )
    config = TrainConfig(steps=steps, lr=lr, batch_size=batch_size, noise=False)
    result = fit(model, task, config, key=k_train)
    batch = task.sample(k_test, n_test)
    scores = task.evaluate(simulate(result.model, batch.inputs).outputs, batch)
    return FlipFlopTraining(
        result.model,
        result.losses,
        float(scores["accuracy"]),
        float(scores["loss"]),
        float(result.seconds),
        dict(opts, n_hidden=n_hidden),
    )


# ----------------------------------------------------------------------------------------------
# corners, memory periods and the NM clamp
# ----------------------------------------------------------------------------------------------


def corners(n_bits: int) -> np.ndarray:
    """The ``2^n_bits`` corners of ``{-1, +1}^n_bits``, ``(2^n_bits, n_bits)``; corner ``i`` has
    bit ``j`` (most significant first) of ``i`` set where its coordinate is ``+1``."""
    n_bits = check_positive_int("n_bits", n_bits)
    return np.asarray(list(itertools.product((-1.0, 1.0), repeat=n_bits)))


def corner_index(readouts: Any) -> np.ndarray:
    """Index (as in :func:`corners`) of the corner with the sign pattern of each readout
    ``(K, O)``; a readout of exactly 0 counts as ``+1``. Returns ``(K,)`` integers."""
    r = np.asarray(readouts)
    if r.ndim != 2:
        raise ValueError(f"readouts must have shape (K, n_bits), got {r.shape}")
    bits = (r >= 0).astype(int)
    weights = 2 ** np.arange(r.shape[1] - 1, -1, -1)
    return bits @ weights


def corner_label(index: int, n_bits: int) -> str:
    """``"+-+"``-style name of corner ``index`` (see :func:`corners`)."""
    return "".join("+" if c > 0 else "-" for c in corners(n_bits)[int(index)])


def memory_mask(inputs: Any) -> np.ndarray:
    """``(B, T)``: the steps of a flip-flop batch with no pulse on any channel (``inputs`` ``(B,
    T, P)``)."""
    u = np.asarray(inputs)
    if u.ndim != 3:
        raise ValueError(f"inputs must have shape (B, T, P), got {u.shape}")
    return np.all(u == 0, axis=-1)


@eqx.filter_jit
def _z_newton(model, target, u, n_iters):
    x0 = jnp.zeros(model.n_hidden, target.dtype)
    state_type = type(model.initial_state(()))

    def g(z):
        return model.step(state_type(x0, z), u).z - target

    def body(_, z):
        return z - jnp.linalg.solve(jax.jacfwd(g)(z), g(z))

    z = jax.lax.fori_loop(0, n_iters, body, target)
    return z, g(z)


def z_clamp_value(
    model: Any, z_target: Any, inputs: Any = None, *, n_iters: int = 20
) -> np.ndarray:
    """The clamp value ``c`` for which an NM-RNN step gates ``x`` with ``s(z_target)``.

    :func:`nmrnn.analysis.find_fixed_points` holds a clamped ``z`` at ``c`` *before* each step and
    the NM-RNN updates ``z`` before gating, so the gains used are ``s(F_z(c, u))``. This solves
    ``F_z(c, u) = z_target`` (``(M,)``) by Newton's method from ``c = z_target``; ``inputs``:
    the constant input ``(n_in,)`` (default zeros). Needs an NM-RNN without ``x -> z`` feedback
    (otherwise ``F_z`` depends on ``x`` and no single ``c`` exists). Returns ``c`` ``(M,)``.
    """
    if not (hasattr(model, "gains") and hasattr(model, "n_nm")):
        raise ValueError(f"z_clamp_value needs an NMRNN, got {type(model).__name__}")
    if getattr(model, "B_zx", None) is not None:
        raise ValueError("z_clamp_value needs an NM-RNN without feedback (B_zx is set)")
    z = jnp.asarray(z_target, jnp.result_type(float))
    if z.shape != (model.n_nm,):
        raise ValueError(f"z_target must have shape ({model.n_nm},), got {tuple(z.shape)}")
    u = jnp.zeros(model.n_in, z.dtype) if inputs is None else jnp.asarray(inputs, z.dtype)
    if u.shape != (model.n_in,):
        raise ValueError(f"inputs must have shape ({model.n_in},), got {tuple(u.shape)}")
    n_iters = check_positive_int("n_iters", n_iters)
    c, _ = _z_newton(model, z, u, n_iters)
    return np.asarray(c)


# ----------------------------------------------------------------------------------------------
# fixed points of the flip-flop network
# ----------------------------------------------------------------------------------------------


class FlipFlopFixedPoints(NamedTuple):
    """Fixed points of a flip-flop network without input. ``S`` stable points, ``Q`` saddles,
    free-state size ``D``, ``O`` outputs, ``T`` = ``follow_steps``.

    Attributes:
        fixed_points: every unique point of the final search (:class:`~nmrnn.analysis.FixedPoints`).
        first_pass: the search from trajectory samples only (its ``report`` accounts for them).
        stable_index: ``(S,)`` indices of the stable points in ``fixed_points``.
        saddle_index: ``(Q,)`` indices of the saddles.
        stable_readouts: ``(S, O)`` the readout at each stable point.
        stable_corners: ``(S,)`` index of the corner with the readout's sign pattern.
        corner_errors: ``(S,)`` max-abs distance of each readout from that corner.
        saddle_readouts: ``(Q, O)``.
        n_unstable: ``(Q,)`` number of unstable directions of each saddle.
        unstable_eigenvalues: ``(Q,)`` the leading (largest-modulus) eigenvalue of each saddle.
        saddle_ends: ``(Q, 2)`` index into the stable points (``-1``: none within ``end_tol``)
            reached from ``saddle - eps v`` and ``saddle + eps v``.
        end_distances: ``(Q, 2)`` max-abs distance of each end state from the nearest stable point.
        manifolds: ``(Q, 2, T + 1, D)`` the two followed branches of the unstable manifold.
        manifold_readouts: ``(Q, 2, T + 1, O)`` their readouts.
        clamp: the clamped fields (``{}`` if none).
        settings: the search settings.
    """

    fixed_points: FixedPoints
    first_pass: FixedPoints
    stable_index: np.ndarray
    saddle_index: np.ndarray
    stable_readouts: np.ndarray
    stable_corners: np.ndarray
    corner_errors: np.ndarray
    saddle_readouts: np.ndarray
    n_unstable: np.ndarray
    unstable_eigenvalues: np.ndarray
    saddle_ends: np.ndarray
    end_distances: np.ndarray
    manifolds: np.ndarray
    manifold_readouts: np.ndarray
    clamp: dict[str, np.ndarray]
    settings: dict[str, Any]

    @property
    def n_bits(self) -> int:
        return int(self.stable_readouts.shape[1])

    def end_corners(self) -> np.ndarray:
        """``(Q, 2)``: the corner (index as in :func:`corners`) of the stable point each end of
        each saddle's unstable manifold reached, ``-1`` where it reached none."""
        ends = np.asarray(self.saddle_ends, dtype=int).reshape(-1, 2)
        return np.where(ends >= 0, np.asarray(self.stable_corners)[np.maximum(ends, 0)], -1)

    def joins_neighbours(self) -> np.ndarray:
        """``(Q,)``: the saddle's unstable manifold ends at two stable points whose corners differ
        in exactly one bit."""
        c = self.end_corners()
        xor = np.bitwise_xor(c[:, 0], c[:, 1])
        one_bit = (xor > 0) & ((xor & (xor - 1)) == 0)
        return (c.min(axis=1, initial=0) >= 0) & one_bit

    def edges(self) -> list[tuple[int, int]]:
        """Pairs of neighbouring corners (differing in one bit, as corner indices ``a < b``)
        joined by the unstable manifold of a saddle with exactly one unstable direction."""
        c = np.sort(self.end_corners(), axis=1)
        keep = self.joins_neighbours() & (np.asarray(self.n_unstable) == 1)
        return sorted({(int(a), int(b)) for a, b in c[keep]})


def _readouts(model, system, points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros((0, model.n_out))
    state = system.to_state(jnp.asarray(points))
    return np.asarray(model.readout(state))


def follow_unstable_manifolds(
    model: Any,
    saddles: Any,
    directions: Any,
    *,
    inputs: Any = None,
    clamp: dict[str, Any] | None = None,
    eps: float = 1e-2,
    n_steps: int = 500,
) -> np.ndarray:
    """Iterate the one-step map from ``saddles -/+ eps * directions`` for ``n_steps`` steps.

    ``saddles``, ``directions``: ``(Q, D)`` free-state coordinates (as in
    :func:`nmrnn.analysis.find_fixed_points`); ``directions`` are normalised to unit length;
    ``inputs``: the constant input ``(n_in,)`` (default zeros); ``clamp`` as in the analysis.
    Returns ``(Q, 2, n_steps + 1, D)``: branch 0 starts at ``saddle - eps v``, branch 1 at
    ``saddle + eps v``; entry 0 is the starting point.
    """
    check_positive("eps", eps)
    n_steps = check_positive_int("n_steps", n_steps)
    system = make_system(model, kind="map", clamp=clamp)
    s = jnp.asarray(saddles, jnp.result_type(float))
    v = jnp.asarray(directions, s.dtype)
    if s.ndim != 2 or s.shape != v.shape or s.shape[1] != system.dim:
        raise ValueError(
            f"saddles and directions must both have shape (Q, {system.dim}); got "
            f"{tuple(s.shape)} and {tuple(v.shape)}"
        )
    if s.shape[0] == 0:
        return np.zeros((0, 2, n_steps + 1, system.dim))
    u = jnp.zeros(model.n_in, s.dtype) if inputs is None else jnp.asarray(inputs, s.dtype)
    if u.shape != (model.n_in,):
        raise ValueError(f"inputs must have shape ({model.n_in},), got {tuple(u.shape)}")
    v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
    starts = jnp.stack([s - eps * v, s + eps * v], axis=1).reshape(-1, s.shape[1])
    fn = jax.vmap(system.fn, in_axes=(0, None))

    def body(x, _):
        new = fn(x, u)
        return new, new

    @jax.jit
    def run(x0):
        _, path = jax.lax.scan(body, x0, None, length=n_steps)
        return jnp.concatenate([x0[None], path], axis=0)

    path = np.asarray(run(starts))  # (T + 1, 2Q, D)
    return np.moveaxis(path, 0, 1).reshape(s.shape[0], 2, n_steps + 1, s.shape[1])


def flipflop_fixed_points(
    model: Any,
    states: Any,
    *,
    key: PRNGKeyArray,
    clamp: dict[str, Any] | None = None,
    n_samples: int = 256,
    noise_scale: float = 0.02,
    interp_fractions: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7),
    eps: float = 1e-2,
    follow_steps: int = 500,
    end_tol: float = 1e-2,
    **find_options: Any,
) -> FlipFlopFixedPoints:
    """The memories, the saddles between them and the saddles' unstable manifolds of a flip-flop
    network without input (see the module docstring for the method).

    Args:
        model: a trained recurrent model.
        states: its trajectories on flip-flop trials: the state NamedTuple with fields
            ``(B, T, size)`` (e.g. ``simulate(model, batch.inputs).states``).
        key: PRNG key (trajectory samples and the noise on the initial states).
        clamp: state fields held fixed, ``{field: value}`` (see
            :func:`nmrnn.analysis.find_fixed_points`).
        n_samples: initial states drawn from ``states`` for the first pass.
        noise_scale: standard deviation of the Gaussian noise added to every initial state.
        interp_fractions: positions on the segment between two stable points used as initial
            states of the second pass (0 and 1 are the end points).
        eps: distance from a saddle along its unstable eigenvector where the manifold is started.
        follow_steps: steps of the map iterated from each start.
        end_tol: max-abs distance within which an end state counts as having reached a stable
            point.
        **find_options: passed to :func:`nmrnn.analysis.find_fixed_points` (``tol_q``,
            ``max_iters``, ``method``, ``tol_unique``, ``stability_tol``, ...).
    """
    n_samples = check_positive_int("n_samples", n_samples)
    noise_scale = check_nonnegative("noise_scale", noise_scale)
    end_tol = check_positive("end_tol", end_tol)
    fractions = tuple(float(f) for f in interp_fractions)
    if not fractions or any(not 0.0 < f < 1.0 for f in fractions):
        raise ValueError(
            f"interp_fractions must be non-empty and inside (0, 1), got {interp_fractions}"
        )
    bad = {"kind", "clamp", "inputs"} & set(find_options)
    if bad:
        raise ValueError(
            f"{sorted(bad)} cannot be set: the search is on the input-free map (kind='map', zero "
            "input); pass clamped fields as clamp="
        )
    system = make_system(model, kind="map", clamp=clamp)
    u = jnp.zeros(model.n_in)
    k_sample, k_noise = jr.split(key)

    inits = sample_states(states, n_samples, key=k_sample, noise_scale=noise_scale)
    first = find_fixed_points(model, inits, u, clamp=clamp, **find_options)
    stable1 = first.points[[i for i, s in enumerate(first.stability) if s == "stable"]]
    # pass 2: pass 1's points (its initial states if it found none) and the segments between
    # every pair of its stable points
    seeds = [first.points if first.n_points else np.asarray(system.from_state(inits))]
    if len(stable1) >= 2:
        pairs = list(itertools.combinations(range(len(stable1)), 2))
        seg = np.asarray(
            [(1 - f) * stable1[i] + f * stable1[j] for i, j in pairs for f in fractions]
        )
        seg = np.concatenate([seg, stable1.mean(axis=0, keepdims=True)])
        seg = seg + noise_scale * np.asarray(jr.normal(k_noise, seg.shape))
        seeds.append(seg)
    final = find_fixed_points(model, np.concatenate(seeds), u, clamp=clamp, **find_options)

    labels = np.asarray(final.stability, dtype=object)
    stable_idx = np.flatnonzero(labels == "stable")
    saddle_idx = np.flatnonzero(labels == "saddle")
    readouts = _readouts(model, system, final.points)
    stable_ro = readouts[stable_idx]
    st_corner = corner_index(stable_ro)
    corner_err = np.max(np.abs(stable_ro - corners(model.n_out)[st_corner]), axis=1, initial=0.0)

    tol = final.report.tolerances["stability_tol"]
    # eigenvalues (and their eigenvector columns) are sorted by decreasing modulus
    margins = stability_margins(final.eigenvalues[saddle_idx], "map").reshape(len(saddle_idx), -1)
    n_unstable = np.sum(margins > tol, axis=1).astype(int)
    vals = final.eigenvalues[saddle_idx, 0]
    vecs = np.real(final.eigenvectors[saddle_idx, :, 0])
    paths = follow_unstable_manifolds(
        model, final.points[saddle_idx], vecs, inputs=u, clamp=clamp, eps=eps, n_steps=follow_steps
    )
    stable_pts = final.points[stable_idx]
    ends = np.full((len(saddle_idx), 2), -1, dtype=int)
    end_dist = np.full((len(saddle_idx), 2), np.inf)
    if len(saddle_idx) and len(stable_idx):
        last = paths[:, :, -1]  # (Q, 2, D)
        dist = np.max(np.abs(last[:, :, None, :] - stable_pts[None, None]), axis=-1)  # (Q, 2, S)
        nearest = np.argmin(dist, axis=-1)
        end_dist = np.take_along_axis(dist, nearest[..., None], axis=-1)[..., 0]
        ends = np.where(end_dist <= end_tol, nearest, -1)
    flat = paths.reshape(-1, paths.shape[-1])
    path_ro = _readouts(model, system, flat).reshape(*paths.shape[:3], model.n_out)
    settings = dict(
        n_samples=n_samples, noise_scale=noise_scale, interp_fractions=fractions, eps=float(eps),
        follow_steps=int(follow_steps), end_tol=end_tol, **final.report.tolerances,
    )
    return FlipFlopFixedPoints(
        fixed_points=final,
        first_pass=first,
        stable_index=stable_idx,
        saddle_index=saddle_idx,
        stable_readouts=stable_ro,
        stable_corners=st_corner,
        corner_errors=corner_err,
        saddle_readouts=readouts[saddle_idx],
        n_unstable=n_unstable,
        unstable_eigenvalues=vals,
        saddle_ends=ends,
        end_distances=end_dist,
        manifolds=paths,
        manifold_readouts=path_ro,
        clamp={k: np.asarray(v) for k, v in system.clamped.items()},
        settings=settings,
    )


def free_trajectories(model: Any, states: Any, clamp: dict[str, Any] | None = None) -> np.ndarray:
    """The free-state coordinates ``(B, T, D)`` of trajectories (state NamedTuple ``(B, T, .)``)."""
    return np.asarray(make_system(model, kind="map", clamp=clamp).from_state(states))


def summarize(analysis: FlipFlopFixedPoints) -> dict[str, Any]:
    """The numbers of an analysis (JSON-able): counts, corners, saddle structure, connections."""
    n_bits = analysis.n_bits
    n_corners = 2**n_bits
    labels = [corner_label(c, n_bits) for c in analysis.stable_corners]
    n_unstable = np.asarray(analysis.n_unstable)
    by_dim = {str(k): int(np.sum(n_unstable == k)) for k in range(1, n_bits + 1)}
    if np.any(n_unstable > n_bits):
        by_dim[f">{n_bits}"] = int(np.sum(n_unstable > n_bits))
    one = n_unstable == 1
    ends = analysis.end_corners()[one]
    conns = [
        " to ".join(corner_label(c, n_bits) if c >= 0 else "none" for c in pair) for pair in ends
    ]
    fp = analysis.fixed_points
    return {
        "n_bits": n_bits,
        "n_corners": n_corners,
        "n_fixed_points": fp.n_points,
        "n_stable": len(analysis.stable_index),
        "n_saddles": len(analysis.saddle_index),
        "labels": {lab: int(sum(s == lab for s in fp.stability)) for lab in STABILITY_LABELS},
        "stable_corners": labels,
        "n_distinct_corners": len(set(labels)),
        "all_corners_once": len(labels) == n_corners and len(set(labels)) == n_corners,
        "max_corner_error": float(np.max(analysis.corner_errors)) if len(labels) else None,
        "saddles_by_unstable_dims": by_dim,
        "one_unstable_saddle_connections": conns,
        "one_unstable_saddles_joining_neighbours": int(np.sum(analysis.joins_neighbours()[one])),
        "edges_joined": len(analysis.edges()),
        "n_edges": n_bits * 2 ** (n_bits - 1),
        "edge_saddle_eigenvalue_modulus": np.abs(analysis.unstable_eigenvalues[one]),
        "max_q": float(np.max(fp.q)) if fp.n_points else None,
        "n_slow_points": int(np.sum(fp.slow)),
        "search": {"first_pass": fp_report(analysis.first_pass), "second_pass": fp_report(fp)},
    }


def fp_report(fp: FixedPoints) -> dict[str, int]:
    """The counts of a search's :class:`~nmrnn.analysis.FixedPointReport`."""
    r = fp.report
    return {
        "candidates": r.n_candidates,
        "converged": r.n_converged,
        "fixed": r.n_fixed,
        "slow": r.n_slow,
        "not_converged": len(r.not_converged),
        "outliers": len(r.distance_outliers),
        "unique": r.n_unique,
    }


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def plot_flipflop(
    model: Any,
    analysis: FlipFlopFixedPoints,
    trajectories: Any,
    outputs: Any,
    path: str | Path,
    *,
    title: str = "",
    max_trajectories: int = 12,
    dpi: int = 120,
) -> Path:
    """Three panels: (a) the top-2 PC plane of the fixed points (stable points and saddles;
    of the trajectories if there are fewer than 4 points) over the projected input-free field,
    with trajectories ``(B, T, D)`` (free coordinates); (b) the top-3 PCs; (c) readout space
    (``outputs`` ``(B, T, O)``, first three outputs). Each shows the stable points, the saddles and
    the saddles' followed unstable manifolds (one-unstable-direction saddles in colour, the others
    dotted red). The view is framed on the fixed points and manifolds; trajectory excursions
    beyond it (the pulses' transients) are cut. Saved as a PNG; returns the path."""
    from ..plotting._common import plt, save
    from ..plotting.phase import (
        draw_field,
        draw_fixed_points,
        draw_trajectories,
        pca_field,
        pca_plane,
    )

    x = np.asarray(trajectories)
    y = np.asarray(outputs)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"trajectories (B, T, D) and outputs (B, T, O) must agree on (B, T); got {x.shape} and "
            f"{y.shape}"
        )
    if x.shape[-1] < 3 or y.shape[-1] < 3:
        raise ValueError(
            f"the 3-D panels need at least 3 state coordinates and 3 outputs; got {x.shape[-1]} "
            f"and {y.shape[-1]}"
        )
    fp = analysis.fixed_points
    one = analysis.n_unstable == 1
    colors = plt.cm.tab20(np.linspace(0, 1, max(int(one.sum()), 1)))
    rank = np.cumsum(one) - 1
    styles = [
        dict(color=colors[rank[q]], lw=1.8) if one[q] else dict(color="tab:red", lw=0.8, ls=":")
        for q in range(len(analysis.saddle_index))
    ]
    keep = np.concatenate([analysis.stable_index, analysis.saddle_index]).astype(int)
    basis = fp.points[keep] if len(keep) >= 4 else x.reshape(-1, x.shape[-1])
    frame = np.concatenate([basis, analysis.manifolds.reshape(-1, x.shape[-1])])
    fig = plt.figure(figsize=(15.5, 4.8))

    def limits(points, margin=0.25):
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = margin * np.maximum(hi - lo, 1e-6)
        return lo - pad, hi + pad

    def inside(paths, lo, hi):
        """Paths with the points outside the box [lo, hi] replaced by NaN (not drawn)."""
        ok = np.all((paths >= lo) & (paths <= hi), axis=-1, keepdims=True)
        return np.where(ok, paths, np.nan)

    # (a) top-2 PC plane with the field
    plane = pca_plane(basis)
    lo, hi = limits(plane.project(frame))
    xlim, ylim = (lo[0], hi[0]), (lo[1], hi[1])
    ax = fig.add_subplot(1, 3, 1)
    clamp = analysis.clamp or None
    grid = pca_field(model, plane, xlim, ylim, resolution=20, kind="map", clamp=clamp)
    draw_field(ax, grid, color_by="speed", density=0.9)
    draw_trajectories(ax, plane.project(x[:max_trajectories]), color="0.35", lw=0.6, alpha=0.5)
    for q, style in enumerate(styles):
        for branch in plane.project(analysis.manifolds[q]):
            ax.plot(branch[:, 0], branch[:, 1], **style)
    draw_fixed_points(ax, plane.project(fp.points[keep]), [fp.stability[i] for i in keep])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(f"PC1 of the fixed points ({100 * plane.explained[0]:.0f}% var.)")
    ax.set_ylabel(f"PC2 ({100 * plane.explained[1]:.0f}% var.)")
    ax.set_title(f"{title}: PC plane, field at u = 0", fontsize=9)

    # (b) top-3 PCs of the same points
    mean = basis.mean(axis=0)
    pcs = np.linalg.svd(np.asarray(basis, np.float64) - mean, full_matrices=False)[2][:3]

    def p3(a):
        return (np.asarray(a) - mean) @ pcs.T

    lo3, hi3 = limits(p3(frame))
    ylo, yhi = limits(np.concatenate(
        [analysis.stable_readouts[:, :3], analysis.manifold_readouts[..., :3].reshape(-1, 3)]
    ))
    panels = [
        (fig.add_subplot(1, 3, 2, projection="3d"), inside(p3(x[:max_trajectories]), lo3, hi3),
         p3(analysis.manifolds), p3(fp.points[analysis.stable_index]),
         p3(fp.points[analysis.saddle_index]), "top-3 PCs of the fixed points", (lo3, hi3)),
        (fig.add_subplot(1, 3, 3, projection="3d"),
         inside(y[:max_trajectories, :, :3], ylo, yhi), analysis.manifold_readouts[..., :3],
         analysis.stable_readouts[:, :3], analysis.saddle_readouts[:, :3], "readout space",
         (ylo, yhi)),
    ]
    for ax3, trs, mans, stab, sad, name, (blo, bhi) in panels:
        ax3.set_xlim(blo[0], bhi[0])
        ax3.set_ylim(blo[1], bhi[1])
        ax3.set_zlim(blo[2], bhi[2])
        ax3.set_box_aspect(None, zoom=0.85)
        for tr in trs:
            ax3.plot(*tr.T, color="0.6", lw=0.5, alpha=0.5)
        for q, style in enumerate(styles):
            for branch in mans[q]:
                ax3.plot(*branch.T, **style)
        if len(stab):
            ax3.scatter(*stab.T, s=50, c="tab:blue", edgecolors="k", depthshade=False,
                        label="stable")
        if len(sad):
            ax3.scatter(*sad.T, s=50, c="tab:orange", marker="X", edgecolors="k", depthshade=False,
                        label="saddle")
        labels = ("out 1", "out 2", "out 3") if name == "readout space" else ("PC1", "PC2", "PC3")
        ax3.set_xlabel(labels[0])
        ax3.set_ylabel(labels[1])
        ax3.set_zlabel(labels[2])
        ax3.legend(loc="upper left", fontsize=7)
        ax3.set_title(f"{title}: {name}", fontsize=9)
    return save(fig, path, dpi=dpi)


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def memory_z_clamp(model: Any, states: Any, inputs: Any) -> dict[str, Any]:
    """The NM-RNN clamp of the z-clamped analysis, from trajectories on flip-flop trials.

    ``states``: the NM-RNN's state NamedTuple ``(B, T, .)``; ``inputs``: the trials' inputs
    ``(B, T, P)``. ``z_bar`` is the mean of ``z`` over the memory periods (:func:`memory_mask`);
    the clamp value ``c`` is its pre-image (:func:`z_clamp_value`), so the clamped network gates
    ``x`` with ``s(z_bar)``. Returns ``z_bar (M,)``, ``clamp_value (M,)``, the gains ``s(z_bar)``
    and ``s(F_z(z_bar, 0))`` (what clamping at ``z_bar`` itself would give), the pre-image
    residual ``max |F_z(c, 0) - z_bar|``, the fraction of memory steps, and how much ``z`` and
    the gains move over the memory steps (standard deviation of ``z``, range of ``s``).
    """
    mem = memory_mask(inputs)
    z = np.asarray(states.z)
    if z.shape[:2] != mem.shape:
        raise ValueError(f"states.z has (B, T) = {z.shape[:2]} but inputs have {mem.shape}")
    z_mem = z[mem]
    z_bar = z_mem.mean(axis=0)
    s_mem = np.asarray(model.gains(jnp.asarray(z_mem)))
    c = z_clamp_value(model, z_bar)
    u = jnp.zeros(model.n_in)
    x0 = jnp.zeros(model.n_hidden)
    state_type = type(model.initial_state(()))

    def f_z(z0):
        return np.asarray(model.step(state_type(x0, jnp.asarray(z0, x0.dtype)), u).z)

    return {
        "z_bar": z_bar,
        "clamp_value": c,
        "preimage_residual": float(np.max(np.abs(f_z(c) - z_bar))),
        "gains_at_z_bar": np.asarray(model.gains(jnp.asarray(z_bar))),
        "gains_if_clamped_at_z_bar": np.asarray(model.gains(jnp.asarray(f_z(z_bar)))),
        "memory_steps_fraction": float(mem.mean()),
        "z_std_over_memory_steps": z_mem.std(axis=0),
        "gains_min_over_memory_steps": s_mem.min(axis=0),
        "gains_max_over_memory_steps": s_mem.max(axis=0),
    }


def _model_checks(label: str, accuracy: float | None, summary: dict[str, Any]) -> list[dict]:
    n_corners = summary["n_corners"]
    out = []
    if accuracy is not None:
        out.append(check(
            f"{label}: sign accuracy", accuracy, accuracy >= ACCURACY_MIN,
            f">= {ACCURACY_MIN:.0%} of scored (trial, step, bit) entries on fresh trials",
        ))
    err = summary["max_corner_error"]
    out += [
        check(f"{label}: stable fixed points", summary["n_stable"],
              summary["n_stable"] == n_corners, f"exactly {n_corners}"),
        check(f"{label}: corners matched once", summary["n_distinct_corners"],
              summary["all_corners_once"],
              f"the stable readouts' sign patterns are the {n_corners} corners, each once"),
        check(f"{label}: max corner error", err, err is not None and err <= CORNER_TOL,
              f"every stable readout within {CORNER_TOL} (max-abs) of its corner"),
        check(f"{label}: neighbouring corners joined by 1-unstable saddles",
              summary["edges_joined"], summary["edges_joined"] == summary["n_edges"],
              f"all {summary['n_edges']} one-bit pairs joined by the unstable manifold of a "
              "saddle with one unstable direction"),
    ]
    return out


def _analyse(training, states, outputs, *, key, cfg, path, title, clamp=None):
    t0 = time.perf_counter()
    analysis = flipflop_fixed_points(
        training.model, states, key=key, clamp=clamp, n_samples=cfg["n_samples"],
        noise_scale=cfg["noise_scale"], follow_steps=cfg["follow_steps"],
    )
    summary = summarize(analysis)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    plot_flipflop(
        training.model, analysis, free_trajectories(training.model, states, clamp), outputs, path,
        title=title, max_trajectories=cfg["pca_trajectories"], dpi=cfg["dpi"],
    )
    return analysis, summary


def run(out_dir: Path, profile: str, seed: int) -> dict[str, Any]:
    """T8 flip-flop reproduction (registry format): train, find fixed points, check, plot."""
    cfg = PROFILES[check_choice("profile", profile, PROFILES)]
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    task = FlipFlop()
    checks: list[dict] = []
    metrics: dict[str, Any] = {}
    figures: list[str] = []
    keys = dict(zip(("vanilla", "nmrnn"), jr.split(jr.PRNGKey(seed), 2), strict=True))
    for name, label in (("vanilla", "vanilla RNN"), ("nmrnn", "NM-RNN")):
        k_train, k_data, k_fp, k_fp2 = jr.split(keys[name], 4)
        training = train_flipflop(
            name, k_train, cfg["steps"][name], task=task, batch_size=cfg["batch_size"],
            lr=cfg["lr"], n_test=cfg["n_test"], **cfg["models"][name],
        )
        batch = task.sample(k_data, cfg["n_analysis_trials"])
        traj = simulate(training.model, batch.inputs)
        m: dict[str, Any] = {
            "parameters": param_count(training.model),
            "accuracy": training.accuracy,
            "test_loss": training.test_loss,
            "final_train_loss": float(np.mean(training.losses[-50:])),
            "train_seconds": round(training.seconds, 2),
        }
        common = dict(cfg=cfg)
        if name == "vanilla":
            _, m["fixed_points"] = _analyse(
                training, traj.states, traj.outputs, key=k_fp, path=fig_dir / "vanilla.png",
                title=label, **common,
            )
            checks += _model_checks(label, training.accuracy, m["fixed_points"])
            figures.append("figures/vanilla.png")
        else:
            free, m["fixed_points_z_free"] = _analyse(
                training, traj.states, traj.outputs, key=k_fp, path=fig_dir / "nmrnn_z_free.png",
                title=f"{label} (z free)", **common,
            )
            zc = memory_z_clamp(training.model, traj.states, batch.inputs)
            _, m["fixed_points_z_clamped"] = _analyse(
                training, traj.states, traj.outputs, key=k_fp2, clamp={"z": zc["clamp_value"]},
                path=fig_dir / "nmrnn_z_clamped.png", title=f"{label} (z clamped)", **common,
            )
            z_star = np.asarray(free.fixed_points.states.z)[free.stable_index]
            if len(z_star):
                s_star = np.asarray(training.model.gains(jnp.asarray(z_star)))
                zc["gains_at_z_star"] = s_star.mean(axis=0)
                zc["z_star_spread"] = float(np.ptp(z_star, axis=0).max())
                zc["max_gain_difference_z_star_vs_z_bar"] = float(
                    np.max(np.abs(s_star - zc["gains_at_z_bar"]))
                )
            m["z_clamp"] = zc
            checks += _model_checks(f"{label}, z free", training.accuracy, m["fixed_points_z_free"])
            checks += _model_checks(f"{label}, z clamped", None, m["fixed_points_z_clamped"])
            figures += ["figures/nmrnn_z_free.png", "figures/nmrnn_z_clamped.png"]
        metrics[name] = m
    settings = {
        "task": {"n_bits": task.n_bits, "n_steps": task.n_steps, "pulse_prob": task.pulse_prob},
        "models": {k: {**MODEL_DEFAULTS[k], **v} for k, v in cfg["models"].items()},
        **{k: v for k, v in cfg.items() if k != "models"},
        "corner_tol": CORNER_TOL,
        "accuracy_min": ACCURACY_MIN,
    }
    return {
        "checks": checks,
        "metrics": metrics,
        "settings": settings,
        "figures": figures,
        "notes": _notes(metrics),
        "criterion": (
            "for each model (NM-RNN: z free and z clamped at its memory-period mean): sign "
            f"accuracy >= {ACCURACY_MIN:.0%}, exactly 8 stable fixed points at u = 0 whose "
            f"readouts match the 8 corners once each (within {CORNER_TOL}), and all 12 "
            "neighbouring corner pairs joined by saddles with one unstable direction"
        ),
    }


def _notes(metrics: dict[str, Any]) -> str:
    lines = [
        "Fixed points of the input-free one-step map, found by Levenberg-Marquardt from "
        "trajectory samples, then from points between every pair of stable points. Each "
        "saddle's leading unstable eigenvector is followed both ways (iterating the map from "
        "saddle +/- eps v) to the stable points it reaches.",
        "",
    ]
    names = {"fixed_points": "", "fixed_points_z_free": ", z free",
             "fixed_points_z_clamped": ", z clamped"}
    for model, m in metrics.items():
        for key, suffix in names.items():
            if key in m:
                s = m[key]
                lines.append(
                    f"- {model}{suffix}: {s['n_stable']} stable points, saddles by number of "
                    f"unstable directions {s['saddles_by_unstable_dims']}, "
                    f"{s['edges_joined']}/{s['n_edges']} neighbouring pairs joined."
                )
    zc = metrics.get("nmrnn", {}).get("z_clamp")
    if zc is not None:

        def fmt(v):
            return "n/a" if v is None else np.round(np.asarray(v, np.float64), 4).tolist()

        lines += [
            "",
            f"NM-RNN gains s at the memories with z free (z = z*): "
            f"{fmt(zc.get('gains_at_z_star'))}; at the mean z over the memory periods (the "
            f"clamped analysis): {fmt(zc['gains_at_z_bar'])}; their range over the memory "
            f"steps: {fmt(zc['gains_min_over_memory_steps'])} to "
            f"{fmt(zc['gains_max_over_memory_steps'])}. Pulses of either sign are equally "
            "likely, so z_bar can lie close to z* even where z moves with every pulse. The "
            "z-clamped analysis holds z at the pre-image c of z_bar (one step from c lands on "
            "z_bar), because the NM-RNN updates z before gating x.",
        ]
    return "\n".join(lines)


__all__ = [
    "FlipFlopFixedPoints",
    "FlipFlopTraining",
    "MODEL_DEFAULTS",
    "PROFILES",
    "corner_index",
    "corner_label",
    "corners",
    "flipflop_fixed_points",
    "follow_unstable_manifolds",
    "fp_report",
    "free_trajectories",
    "memory_mask",
    "memory_z_clamp",
    "plot_flipflop",
    "run",
    "summarize",
    "train_flipflop",
    "z_clamp_value",
]
