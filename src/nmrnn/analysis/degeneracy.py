"""Solution degeneracy of a population of trained networks, at three levels: behaviour, neural
dynamics and weights (paper 004, Huang et al., "Measuring and Controlling Solution Degeneracy
across Task-Trained Recurrent Neural Networks"; see docs/references.md).

A *population* is ``S >= 2`` networks trained on one task under one condition. Every measure
below is a *pairwise distance* between two networks of the population, returned as an ``(S, S)``
symmetric matrix with a zero diagonal, and the *degeneracy* of the condition is the mean (and
spread) of the ``S (S - 1) / 2`` distances above the diagonal (:func:`population_degeneracy`). Two
conditions are compared by a bootstrap over networks (:func:`bootstrap_difference`).

Behaviour
---------
:func:`behaviour_distances`: the root-mean-square difference between two networks' outputs on
the same trials (over the scored entries of the mask), divided by the root-mean-square of the
targets, so that 1 means "as different as the target is large". The probe trials of each task
(:func:`probe_batches`) are ``"held_out"`` (fresh trials of the training distribution) and
``"ood"`` (out of distribution; the choice per task, :data:`OOD_PROBES`):

* flip-flop: longer delays, trials twice as long with half the pulse probability (the same
  number of pulses on average, memories held twice as long);
* sine generation: unseen frequencies, the midpoints between consecutive trained frequencies,
  cued on the line through the trained (frequency, cue) pairs
  (:meth:`nmrnn.tasks.SineGeneration.cued_trials`);
* delayed discrimination: longer delays, twice the longest trained delay;
* path integration: larger amplitudes, velocities of twice the trained speed.

Neural dynamics
---------------
The state trajectories of every network on the same probe trials (every state field,
concatenated: :func:`population_states`), compared by

* :func:`dsa_distances`: Dynamical Similarity Analysis (Ostrow et al. 2023) from the maintained
  ``dsa-metric`` package (the ``degeneracy`` extra): a HAVOK model (a linear operator fitted to
  delay embeddings of the trajectories) per network, then a distance between the operators.
  ``score_method="wasserstein"`` (the package's default and ours): the Wasserstein distance
  between the operators' eigenvalue spectra, invariant to any change of basis; ``"angular"``:
  the original Procrustes analysis over vector fields (an optimisation over orthogonal maps per
  pair, about a hundred times slower);
* :func:`procrustes_distances`: the angular Procrustes shape distance of Williams et al. (2021),
  ``arccos ||X_a^T X_b||_*`` for trajectories ``X (samples, units)`` centred and scaled to unit
  Frobenius norm (a metric, in ``[0, pi/2]``; 0 iff one is an orthogonal transform of the
  other); networks of different sizes are compared after zero-padding, which changes nothing;
* :func:`cka_distances`: ``1 - CKA`` with linear centred kernel alignment (Kornblith et al.
  2019), ``CKA = ||X_a^T X_b||_F^2 / (||X_a^T X_a||_F ||X_b^T X_b||_F)``;
* :func:`fixed_point_counts` and :func:`fixed_point_distances`: the fixed-point structure, the
  number of stable points, saddles, unstable points and marginal points of a network's one-step
  map at a constant input (:func:`nmrnn.analysis.find_fixed_points` from states sampled on its
  trajectories), and the L1 distance between two networks' counts.

Weights
-------
:func:`weight_distances`: distances between networks' weights after the best permutation of
their neurons (a network's function is unchanged when its neurons are relabelled). A
:class:`WeightView` lists a model's weight arrays and, for each axis, the *population* that
indexes it (``"neuron"``; ``"nm"`` for the neuromodulatory units of the NM-RNN and the e-nmRNN;
``None`` for input and output channels, which are fixed). :func:`match_weights` finds one
permutation per population that maximises the sum over arrays of the normalised inner products
``<A_k, P(B_k)> / n_k``, ``n_k = (||A_k||^2 + ||B_k||^2) / 2`` (equivalently minimises the
normalised squared distances): the match uses every array, e.g. for the vanilla RNN the rows and
columns of the recurrent ``W``, the rows of the input weights and the columns of the readout.
It starts from a linear assignment (:func:`scipy.optimize.linear_sum_assignment`) on
permutation-invariant features of each unit (its sorted rows and columns, its raw input and
readout weights) and improves it by coordinate ascent: the objective linearised in one
population's permutation is again a linear assignment ("weight matching" of Ainsworth et al.
2023), accepted while it raises the objective. The best permutation is a quadratic assignment
problem, so the ascent also runs from the identity and from a few seeded random permutations and
keeps the best end point (:func:`match_weights`). Two numbers per pair:

* ``recurrent``: ``||W_a - P W_b P^T||_F / sqrt((||W_a||_F^2 + ||W_b||_F^2) / 2)`` on the view's
  recurrent matrix (the effective ``W`` of a vanilla RNN, ``L R^T / N`` of a low-rank RNN or of
  the NM-RNN's output network, ``W`` of the e-nmRNN): 0 for networks that differ by a
  permutation, about ``sqrt(2)`` for independent random matrices of equal scale;
* ``all``: the root mean over the view's arrays of the same normalised squared distance.

The linear assignments are per pair of networks (SciPy has no batched solver); everything else
(behaviour, Procrustes, CKA, fixed-point counts, the bootstrap) is computed for all pairs at once.

Extending: :data:`WEIGHT_VIEWS` maps a model class to its view, :data:`OOD_PROBES` a task class
to its probes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .._validation import check_nonnegative, check_positive_int
from ..models import ENMRNN, NMRNN, LeakyRNN, LowRankRNN, simulate
from ..tasks import DelayedDiscrimination, FlipFlop, PathIntegration, SineGeneration
from ..tasks.base import AbstractTask, Batch
from .fixed_points import STABILITY_LABELS, find_fixed_points, sample_states

#: DSA's score methods (:func:`dsa_distances`).
DSA_METHODS = ("wasserstein", "angular", "euclidean")
#: What each probe set of :func:`probe_batches` is.
PROBE_SETS = ("held_out", "ood")
#: The fewest networks a population may have.
MIN_POPULATION = 2


# ----------------------------------------------------------------------------------------------
# populations: validation, degeneracy of a condition, comparing two conditions
# ----------------------------------------------------------------------------------------------


def _population(n: int, what: str) -> int:
    if n < MIN_POPULATION:
        raise ValueError(f"{what} needs a population of at least {MIN_POPULATION} networks, got {n}")
    return n


def check_distances(distances: Any) -> np.ndarray:
    """``distances`` as a float ``(S, S)`` array with ``S >= 2``, finite, symmetric (to 1e-6
    relative) and non-negative with a zero diagonal; else ``ValueError``."""
    d = np.asarray(distances, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square (S, S) matrix, got shape {d.shape}")
    _population(d.shape[0], "a degeneracy")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances must be finite")
    scale = max(1.0, float(np.abs(d).max()))
    if np.abs(d - d.T).max() > 1e-6 * scale or np.abs(np.diag(d)).max() > 1e-6 * scale or d.min() < -1e-6 * scale:
        raise ValueError("distances must be symmetric and non-negative with a zero diagonal")
    return d


def pairwise_values(distances: Any) -> np.ndarray:
    """The ``S (S - 1) / 2`` distances above the diagonal of an ``(S, S)`` matrix."""
    d = check_distances(distances)
    return d[np.triu_indices(d.shape[0], 1)]


class Degeneracy(NamedTuple):
    """The degeneracy of one population: the ``mean`` and standard deviation (``std``) of its
    pairwise distances, over ``n_pairs`` pairs of ``n_networks`` networks."""

    mean: float
    std: float
    n_networks: int
    n_pairs: int


def population_degeneracy(distances: Any) -> Degeneracy:
    """Mean and spread of the pairwise distances of one population (``(S, S)``, ``S >= 2``)."""
    v = pairwise_values(distances)
    return Degeneracy(float(v.mean()), float(v.std()), int(np.shape(distances)[0]), int(v.size))


class BootstrapDifference(NamedTuple):
    """``difference = mean(second) - mean(first)`` of two populations' pairwise distances, and
    the central ``level`` percentile interval ``[low, high]`` of its bootstrap distribution
    (``n_boot`` resamples of each population's networks)."""

    difference: float
    low: float
    high: float
    level: float
    n_first: int
    n_second: int
    n_boot: int


def _resampled_means(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Mean pairwise distance of ``n_boot`` resamples (networks drawn with replacement), each
    over the pairs of draws that are distinct networks (a network is never compared with its own
    copy, which would add zeros)."""
    s = d.shape[0]
    idx = rng.integers(0, s, size=(n_boot, s))
    sub = d[idx[:, :, None], idx[:, None, :]]  # (n_boot, s, s)
    upper = np.triu(np.ones((s, s), bool), 1)[None]
    keep = upper & (idx[:, :, None] != idx[:, None, :])
    n = keep.sum(axis=(1, 2))
    total = np.where(keep, sub, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def bootstrap_difference(
    first: Any, second: Any, *, seed: int, n_boot: int = 2000, level: float = 0.90
) -> BootstrapDifference:
    """Bootstrap the difference of two populations' degeneracies (``mean(second) -
    mean(first)`` of their pairwise distances).

    The networks of each population are resampled with replacement (the pairs of one network are
    not independent, so the unit of resampling is the network), and each resample's mean runs
    over the pairs of distinct networks drawn. Resamples that draw one network only are dropped.
    ``level`` is the coverage of the central percentile interval; with ``level=0.90`` each
    end is a one-sided 95% bound. ``seed`` seeds NumPy's generator (same seed, same interval).
    """
    a, b = check_distances(first), check_distances(second)
    n_boot = check_positive_int("n_boot", n_boot)
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    diff = _resampled_means(b, n_boot, rng) - _resampled_means(a, n_boot, rng)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        raise ValueError("no bootstrap resample drew two distinct networks in both populations")
    tail = (1.0 - float(level)) / 2.0
    low, high = np.quantile(diff, [tail, 1.0 - tail])
    observed = pairwise_values(b).mean() - pairwise_values(a).mean()
    return BootstrapDifference(float(observed), float(low), float(high), float(level), a.shape[0], b.shape[0], int(diff.size))


# ----------------------------------------------------------------------------------------------
# behaviour
# ----------------------------------------------------------------------------------------------


def behaviour_distances(outputs: Any, mask: Any = None, *, targets: Any = None) -> np.ndarray:
    """Pairwise behavioural distances: RMS difference of the outputs over the scored entries.

    Args:
        outputs: ``(S, B, T, O)``, every network's outputs on the same trials.
        mask: ``(B, T, O)`` (or broadcastable) weights of the entries; ``None``: all 1.
        targets: ``(B, T, O)``; when given, distances are divided by the RMS of the targets over
            the same entries (1 = as large as the target).

    Returns ``(S, S)``. Computed one row of pairs at a time, each row vectorised over the
    population, so the result is exact (no Gram-matrix cancellation): identical outputs give 0.
    """
    y = np.asarray(outputs, dtype=np.float64)
    if y.ndim != 4:
        raise ValueError(f"outputs must have shape (S, B, T, O), got {y.shape}")
    s = _population(y.shape[0], "behaviour_distances")
    w = np.ones(y.shape[1:]) if mask is None else np.broadcast_to(np.asarray(mask, dtype=np.float64), y.shape[1:])
    if np.shape(w) != y.shape[1:]:
        raise ValueError(f"mask must broadcast to {y.shape[1:]}, got {np.shape(mask)}")
    total = w.sum()
    if total <= 0:
        raise ValueError("the mask scores no entry")
    scale = 1.0
    if targets is not None:
        t = np.asarray(targets, dtype=np.float64)
        if t.shape != y.shape[1:]:
            raise ValueError(f"targets must have shape {y.shape[1:]}, got {t.shape}")
        scale = float(np.sqrt((w * t**2).sum() / total))
        if scale == 0:
            raise ValueError("the targets are zero on every scored entry; no scale to divide by")
    flat = y.reshape(s, -1)
    wf = w.reshape(-1)
    out = np.zeros((s, s))
    for i in range(s - 1):
        diff = flat[i + 1 :] - flat[i]
        out[i, i + 1 :] = np.sqrt((diff**2 * wf).sum(axis=1) / total) / scale
    return out + out.T


def _flipflop_probes(task: FlipFlop, key, n_trials: int) -> dict[str, Batch]:
    k1, k2 = jr.split(key)
    longer = FlipFlop(n_bits=task.n_bits, n_steps=2 * task.n_steps, pulse_prob=task.pulse_prob / 2,
                      pulse_steps=task.pulse_steps, pulse_amplitude=task.pulse_amplitude,
                      initial_pulse=task.initial_pulse)
    return {"held_out": task.sample(k1, n_trials), "ood": longer.sample(k2, n_trials)}


def _sine_probes(task: SineGeneration, key, n_trials: int) -> dict[str, Batch]:
    if task.n_freqs < 2:
        raise ValueError("the sine-generation probes need n_freqs >= 2 (unseen frequencies lie between trained ones)")
    w = np.asarray(task.omegas(), dtype=float)
    held = task.trials(np.arange(1, task.n_freqs + 1))
    return {"held_out": held, "ood": task.cued_trials((w[:-1] + w[1:]) / 2)}


def _romo_probes(task: DelayedDiscrimination, key, n_trials: int) -> dict[str, Batch]:
    k1, k2 = jr.split(key)
    dt = task.dt
    longer = DelayedDiscrimination(
        pairs=task.pairs, dt=dt, fixation=task.fixation_steps * dt, stimulus=task.stimulus_steps * dt,
        delay=2 * task.delay_steps[1] * dt, decision=task.decision_steps * dt, input_noise=task.input_noise,
    )
    return {"held_out": task.sample(k1, n_trials), "ood": longer.sample(k2, n_trials)}


def _path_probes(task: PathIntegration, key, n_trials: int) -> dict[str, Batch]:
    k1, k2 = jr.split(key)
    faster = PathIntegration(n_dims=task.n_dims, n_steps=task.n_steps, dt=task.dt, speed=2 * task.speed,
                             velocity_timescale=task.velocity_timescale, boundary=task.boundary,
                             box_size=task.box_size)
    return {"held_out": task.sample(k1, n_trials), "ood": faster.sample(k2, n_trials)}


#: Task class -> ``(probe function, description of its out-of-distribution set)``.
OOD_PROBES: dict[type, tuple[Callable[..., dict[str, Batch]], str]] = {
    FlipFlop: (_flipflop_probes, "longer delays: trials twice as long with half the pulse probability"),
    SineGeneration: (_sine_probes, "unseen frequencies: the midpoints between consecutive trained frequencies"),
    DelayedDiscrimination: (_romo_probes, "longer delays: twice the longest trained delay"),
    PathIntegration: (_path_probes, "larger amplitudes: velocities of twice the trained speed"),
}


def _probe_entry(task: AbstractTask):
    entry = OOD_PROBES.get(type(task))
    if entry is None:
        names = ", ".join(sorted(c.__name__ for c in OOD_PROBES))
        raise ValueError(f"no degeneracy probes for task {type(task).__name__}; defined for {names}")
    return entry


def ood_description(task: AbstractTask) -> str:
    """What the out-of-distribution probe of ``task`` is."""
    return _probe_entry(task)[1]


def probe_batches(task: AbstractTask, key: PRNGKeyArray, n_trials: int = 32) -> dict[str, Batch]:
    """The probe trials of ``task``: ``"held_out"`` (``n_trials`` fresh trials of the training
    distribution; sine generation: one trial per trained frequency) and ``"ood"`` (see the module
    docstring and :data:`OOD_PROBES`). Pure function of ``key``."""
    check_positive_int("n_trials", n_trials)
    return _probe_entry(task)[0](task, key, n_trials)


# ----------------------------------------------------------------------------------------------
# neural dynamics: trajectories
# ----------------------------------------------------------------------------------------------


def state_matrix(states: Any) -> np.ndarray:
    """Every field of a state NamedTuple ``(B, T, size)`` concatenated: ``(B, T, D)``."""
    leaves = [np.asarray(a) for a in jax.tree.leaves(states)]
    if not leaves:
        raise ValueError("states is empty")
    return np.concatenate(leaves, axis=-1)


def population_states(models: Sequence[Any], inputs: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Each model's states ``(B, T, D)`` (every state field concatenated) and outputs on the same
    ``inputs`` ``(B, T, P)``: returns ``(states, outputs)`` with ``outputs`` ``(S, B, T, O)``."""
    states, outputs = [], []
    for m in models:
        traj = simulate(m, inputs)
        states.append(state_matrix(traj.states))
        outputs.append(np.asarray(traj.outputs))
    return states, np.stack(outputs)


def _samples(states: Sequence[Any], what: str) -> np.ndarray:
    """Trajectories as ``(S, K, D)`` float64, centred over the K samples, unit Frobenius norm,
    zero-padded to the largest D."""
    mats = [np.asarray(x, dtype=np.float64) for x in states]
    _population(len(mats), what)
    mats = [x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else None for x in mats]
    if any(m is None for m in mats):
        raise ValueError(f"{what}: every trajectory must have shape (..., samples, units)")
    k = {m.shape[0] for m in mats}
    if len(k) != 1:
        raise ValueError(f"{what}: trajectories must have the same number of samples, got {sorted(k)}")
    d = max(m.shape[1] for m in mats)
    out = np.zeros((len(mats), k.pop(), d))
    for i, m in enumerate(mats):
        c = m - m.mean(axis=0)
        norm = np.linalg.norm(c)
        if norm == 0:
            raise ValueError(f"{what}: trajectory {i} is constant (no variance to compare)")
        out[i, :, : m.shape[1]] = c / norm
    return out


def _cross_blocks(x: np.ndarray) -> np.ndarray:
    """``X_a^T X_b`` for all pairs, ``(S, S, D, D)``, from one matrix product of the stacked
    trajectories."""
    s, k, d = x.shape
    stacked = x.transpose(1, 0, 2).reshape(k, s * d)
    gram = stacked.T @ stacked
    return gram.reshape(s, d, s, d).transpose(0, 2, 1, 3)


def procrustes_distances(states: Sequence[Any]) -> np.ndarray:
    """Angular Procrustes distances ``arccos ||X_a^T X_b||_*`` between trajectories (``S``
    arrays ``(..., samples, units)`` with equal numbers of samples; see the module docstring).
    All pairs from one product of the stacked trajectories and one batched SVD; ``(S, S)``."""
    x = _samples(states, "procrustes_distances")
    nuclear = np.linalg.svd(_cross_blocks(x), compute_uv=False).sum(-1)
    out = np.arccos(np.clip(nuclear, -1.0, 1.0))
    np.fill_diagonal(out, 0.0)
    return (out + out.T) / 2


def cka_distances(states: Sequence[Any]) -> np.ndarray:
    """``1 - CKA`` (linear, centred) between trajectories, all pairs at once; ``(S, S)``."""
    x = _samples(states, "cka_distances")
    blocks = _cross_blocks(x)
    fro2 = (blocks**2).sum(axis=(-2, -1))
    self_norm = np.sqrt(np.diag(fro2))
    out = 1.0 - fro2 / np.outer(self_norm, self_norm)
    out = np.clip(out, 0.0, None)
    np.fill_diagonal(out, 0.0)
    return (out + out.T) / 2


def _import_dsa():
    try:
        from DSA import DSA
    except ImportError as err:
        raise ImportError(
            "Dynamical Similarity Analysis needs the 'dsa-metric' package; install the extra: "
            "pip install 'nmrnn[degeneracy]'"
        ) from err
    return DSA


@contextlib.contextmanager
def _torch_threads(n: int | None):
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def dsa_distances(
    states: Sequence[Any],
    *,
    n_delays: int = 5,
    rank: int = 10,
    delay_interval: int = 1,
    score_method: str = "wasserstein",
    iters: int = 1000,
    lr: float = 1e-2,
    torch_threads: int | None = 1,
) -> np.ndarray:
    """Dynamical Similarity Analysis between trajectories, all pairs (``dsa-metric``'s ``DSA``).

    Args:
        states: ``S >= 2`` trajectories ``(B, T, D)`` (trials, time, units; D may differ).
        n_delays, delay_interval, rank: the HAVOK model (delay embedding and its rank; ``rank``
            at most ``n_delays`` times the smallest D).
        score_method: ``"wasserstein"`` (eigenvalue spectra; default), ``"angular"`` or
            ``"euclidean"`` (Procrustes over vector fields, optimised ``iters`` steps at ``lr``).
        torch_threads: PyTorch threads while DSA runs (restored after; ``None`` leaves them):
            one thread measured faster than two for these small matrices on a 2-core CPU.

    Returns ``(S, S)``. Raises ``ImportError`` naming the ``degeneracy`` extra when the package
    is missing.
    """
    from .._validation import check_choice

    check_choice("score_method", score_method, DSA_METHODS)
    n_delays = check_positive_int("n_delays", n_delays)
    rank = check_positive_int("rank", rank)
    delay_interval = check_positive_int("delay_interval", delay_interval)
    mats = [np.asarray(x, dtype=np.float32) for x in states]
    _population(len(mats), "dsa_distances")
    bad = [x.shape for x in mats if x.ndim != 3]
    if bad:
        raise ValueError(f"dsa_distances needs trajectories of shape (B, T, D), got {bad[0]}")
    if len({x.shape[:2] for x in mats}) != 1:
        raise ValueError(f"dsa_distances needs the same (B, T) for every network, got {sorted({x.shape[:2] for x in mats})}")
    if rank > n_delays * min(x.shape[2] for x in mats):
        raise ValueError(f"rank={rank} exceeds n_delays x the smallest state size ({n_delays} x {min(x.shape[2] for x in mats)})")
    if mats[0].shape[1] <= (n_delays - 1) * delay_interval + 1:
        raise ValueError(f"trajectories of {mats[0].shape[1]} steps are too short for {n_delays} delays")
    DSA = _import_dsa()
    with _torch_threads(torch_threads):
        dsa = DSA(mats, n_delays=n_delays, rank=rank, delay_interval=delay_interval,
                  score_method=score_method, iters=iters, lr=lr)
        sims = np.asarray(dsa.fit_score(), dtype=float).reshape(len(mats), len(mats))
    sims = np.clip((sims + sims.T) / 2, 0.0, None)
    np.fill_diagonal(sims, 0.0)
    return sims


# ----------------------------------------------------------------------------------------------
# neural dynamics: fixed-point structure
# ----------------------------------------------------------------------------------------------


def fixed_point_counts(
    model: Any,
    states: Any,
    inputs: Any = None,
    *,
    key: PRNGKeyArray,
    n_samples: int = 128,
    noise_scale: float = 0.02,
    **options: Any,
) -> np.ndarray:
    """The fixed-point structure of ``model`` at the constant input ``inputs`` (default zeros):
    ``(4,)`` counts of fixed points labelled as :data:`nmrnn.analysis.STABILITY_LABELS`
    (stable, unstable, saddle, marginal). Slow points (``q`` above the tolerance) are not
    counted. Starts: ``n_samples`` states drawn from ``states`` (the model's trajectories, a
    state NamedTuple ``(B, T, size)``) with Gaussian noise ``noise_scale``; ``options`` go to
    :func:`nmrnn.analysis.find_fixed_points`."""
    check_nonnegative("noise_scale", noise_scale)
    inits = sample_states(states, n_samples, key=key, noise_scale=noise_scale)
    fps = find_fixed_points(model, inits, inputs, **options)
    labels = np.asarray(fps.stability, dtype=object)
    fixed = ~np.asarray(fps.slow, bool)
    return np.asarray([int(np.sum((labels == lab) & fixed)) for lab in STABILITY_LABELS])


def fixed_point_distances(counts: Any) -> np.ndarray:
    """L1 distances between fixed-point structures, ``(S, S)`` from counts ``(S, L)``."""
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"counts must have shape (S, labels), got {c.shape}")
    _population(c.shape[0], "fixed_point_distances")
    return np.abs(c[:, None, :] - c[None, :, :]).sum(-1)


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------


class WeightView(NamedTuple):
    """A model's weights for permutation matching: ``arrays`` (name -> array), ``axes`` (name ->
    the population of each axis, ``None`` for a fixed axis), and the name of the ``recurrent``
    matrix (the distance reported on its own)."""

    arrays: dict[str, np.ndarray]
    axes: dict[str, tuple[str | None, ...]]
    recurrent: str

    def sizes(self) -> dict[str, int]:
        """``{population: number of units}`` (checked consistent across arrays)."""
        out: dict[str, int] = {}
        for name, axes in self.axes.items():
            shape = np.shape(self.arrays[name])
            if len(shape) != len(axes):
                raise ValueError(f"weight array {name!r} has shape {shape} but {len(axes)} axis labels")
            for n, p in zip(shape, axes, strict=True):
                if p is not None and out.setdefault(p, n) != n:
                    raise ValueError(f"population {p!r} has {out[p]} units in one array and {n} in {name!r}")
        return out


def _view(arrays: dict[str, Any], axes: dict[str, tuple], recurrent: str = "W") -> WeightView:
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}
    return WeightView(arrays, {k: tuple(axes[k]) for k in arrays}, recurrent)


def _leaky_view(m: LeakyRNN) -> WeightView:
    return _view({"W": m.recurrent_weights(), "B": m.B, "C": m.C, "b": m.b},
                 {"W": ("neuron", "neuron"), "B": ("neuron", None), "C": (None, "neuron"), "b": ("neuron",)})


def _lowrank_view(m: LowRankRNN) -> WeightView:
    return _view({"W": m.recurrent_weights(), "B": m.B, "C": m.C, "b": m.b},
                 {"W": ("neuron", "neuron"), "B": ("neuron", None), "C": (None, "neuron"), "b": ("neuron",)})


def _nmrnn_view(m: NMRNN) -> WeightView:
    L, R = m.factors()
    W = L @ R.T
    if m.scale_by_n:
        W = W / m.n_hidden
    return _view(
        {"W": W, "B_x": m.B_x, "C": m.C, "W_z": m.W_z, "B_z": m.B_z, "A_z": m.A_z, "B_zx": m.B_zx},
        {"W": ("neuron", "neuron"), "B_x": ("neuron", None), "C": (None, "neuron"), "W_z": ("nm", "nm"),
         "B_z": ("nm", None), "A_z": (None, "nm"), "B_zx": ("nm", "neuron")},
    )


def _enmrnn_view(m: ENMRNN) -> WeightView:
    return _view(
        {"W": m.recurrent_weights(), "U": m.U, "b": m.b, "D": m.D, "T": m.full_T(), "R": m.release_matrix(),
         "Z": m.Z, "E": m.E, "e": m.e},
        {"W": ("neuron", "neuron"), "U": ("neuron", None), "b": ("neuron",), "D": (None, "neuron"),
         "T": ("nm", "neuron", "neuron"), "R": ("nm", "neuron"), "Z": ("nm", "nm"), "E": ("neuron",),
         "e": ("neuron",)},
    )


#: Model class -> its :class:`WeightView`. The NM-RNN's view holds the output network's
#: ungated recurrent matrix ``L R^T (/N)``, its input and readout weights, and the NM network's
#: ``W_z``, ``B_z``, gain readout ``A_z`` (rank components as fixed axes) and feedback; the
#: e-nmRNN's holds ``W``, ``U``, ``b``, ``D``, the full modulatory tensor ``T``, the release
#: matrix ``R``, ``Z`` and the excitability ``E``, ``e``.
WEIGHT_VIEWS: dict[type, Callable[[Any], WeightView]] = {
    LeakyRNN: _leaky_view,
    LowRankRNN: _lowrank_view,
    NMRNN: _nmrnn_view,
    ENMRNN: _enmrnn_view,
}


def weight_view(model: Any) -> WeightView:
    """The :class:`WeightView` of ``model`` (:data:`WEIGHT_VIEWS`)."""
    fn = WEIGHT_VIEWS.get(type(model))
    if fn is None:
        names = ", ".join(sorted(c.__name__ for c in WEIGHT_VIEWS))
        raise ValueError(f"no weight view for {type(model).__name__}; defined for {names}")
    return fn(model)


class WeightMatch(NamedTuple):
    """The result of :func:`match_weights`: ``permutations`` (population -> ``sigma``, unit
    ``u`` of the first network matched to unit ``sigma[u]`` of the second), the distances
    ``recurrent`` and ``all`` (see the module docstring), per-array normalised distances
    ``per_array`` and the coordinate-ascent ``rounds``."""

    permutations: dict[str, np.ndarray]
    recurrent: float
    all: float
    per_array: dict[str, float]
    rounds: int


def _align(arr: np.ndarray, axes: tuple, perms: dict[str, np.ndarray], skip: int | None = None) -> np.ndarray:
    for i, p in enumerate(axes):
        if p is not None and i != skip:
            arr = np.take(arr, perms[p], axis=i)
    return arr


def _check_pair(a: WeightView, b: WeightView) -> dict[str, int]:
    if set(a.arrays) != set(b.arrays) or a.axes != b.axes or a.recurrent != b.recurrent:
        raise ValueError("weight views of different models cannot be matched (arrays or axes differ)")
    for k in a.arrays:
        if a.arrays[k].shape != b.arrays[k].shape:
            raise ValueError(f"weight array {k!r} has shape {a.arrays[k].shape} in one network and {b.arrays[k].shape} in the other")
    if a.recurrent not in a.arrays:
        raise ValueError(f"the recurrent matrix {a.recurrent!r} is not among the view's arrays")
    return a.sizes()


def _objective(a, b, weights, perms) -> float:
    return float(sum(w * np.vdot(a.arrays[k], _align(b.arrays[k], a.axes[k], perms)) for k, w in weights.items()))


def _slices(arr: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)


def _initial_permutation(a: WeightView, b: WeightView, weights, pop: str, n: int) -> np.ndarray:
    """Linear assignment on permutation-invariant unit features: each slice through the unit,
    sorted when another population indexes it, raw when only fixed axes do."""
    fa, fb = [], []
    for k, w in weights.items():
        for i, p in enumerate(a.axes[k]):
            if p != pop:
                continue
            sa, sb = _slices(a.arrays[k], i), _slices(b.arrays[k], i)
            if any(q is not None for j, q in enumerate(a.axes[k]) if j != i):
                sa, sb = np.sort(sa, axis=1), np.sort(sb, axis=1)
            fa.append(np.sqrt(w) * sa)
            fb.append(np.sqrt(w) * sb)
    if not fa:
        return np.arange(n)
    _, col = linear_sum_assignment(cdist(np.concatenate(fa, 1), np.concatenate(fb, 1), "sqeuclidean"))
    return col


def _gain(a: WeightView, b: WeightView, weights, perms, pop: str, n: int) -> np.ndarray:
    """The objective linearised in population ``pop``'s permutation: ``G[u, v]`` is the gain of
    matching unit ``u`` of ``a`` with unit ``v`` of ``b`` (other axes aligned by ``perms``)."""
    g = np.zeros((n, n))
    for k, w in weights.items():
        axes = a.axes[k]
        for i, p in enumerate(axes):
            if p == pop:
                g += w * _slices(a.arrays[k], i) @ _slices(_align(b.arrays[k], axes, perms, skip=i), i).T
    return g


def _ascend(a, b, weights, perms, sizes, max_rounds):
    """Coordinate ascent from ``perms``: one linear assignment per population on the objective
    linearised in its permutation, kept while it raises the objective."""
    best = _objective(a, b, weights, perms)
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        improved = False
        for p, n in sizes.items():
            _, col = linear_sum_assignment(_gain(a, b, weights, perms, p, n), maximize=True)
            if np.array_equal(col, perms[p]):
                continue
            trial = dict(perms, **{p: col})
            value = _objective(a, b, weights, trial)
            if value > best + 1e-12 * max(1.0, abs(best)):
                perms, best, improved = trial, value, True
        if not improved:
            break
    return perms, best, rounds


def match_weights(a: WeightView, b: WeightView, *, seed: int, restarts: int = 8, max_rounds: int = 50) -> WeightMatch:
    """Match the units of network ``b`` to those of ``a`` (one permutation per population) and
    return the distances after matching (see the module docstring for the objective).

    Finding the best permutation is a quadratic assignment problem (NP-hard); the coordinate
    ascent runs from the feature-based assignment, from the identity and from ``restarts``
    random permutations (NumPy generator seeded with ``seed``), and the best end point is kept.
    Networks that differ by a permutation are matched exactly (the feature-based start is
    already the answer); on random 6-neuron networks, where brute force over all 720
    permutations is feasible, 8 restarts reached the optimum in most pairs and stayed within 3%
    of it in all pairs tried (``tests/analysis/test_degeneracy.py``).
    """
    sizes = _check_pair(a, b)
    max_rounds = check_positive_int("max_rounds", max_rounds)
    if isinstance(restarts, bool) or not isinstance(restarts, int | np.integer) or restarts < 0:
        raise ValueError(f"restarts must be a non-negative integer, got {restarts!r}")
    weights = {}
    for k in a.arrays:
        n2 = (np.sum(a.arrays[k] ** 2) + np.sum(b.arrays[k] ** 2)) / 2
        if n2 > 0:
            weights[k] = 1.0 / n2
    rng = np.random.default_rng(seed)
    starts = [{p: _initial_permutation(a, b, weights, p, n) for p, n in sizes.items()},
              {p: np.arange(n) for p, n in sizes.items()}]
    starts += [{p: rng.permutation(n) for p, n in sizes.items()} for _ in range(int(restarts))]
    perms, best, rounds = _ascend(a, b, weights, starts[0], sizes, max_rounds)
    for start in starts[1:]:
        if 2 * len(weights) - 2 * best <= 1e-12 * max(1, len(weights)):
            break  # a perfect match (the sum of normalised squared distances is 2 K - 2 objective)
        cand, value, r = _ascend(a, b, weights, start, sizes, max_rounds)
        rounds += r
        if value > best:
            perms, best = cand, value
    per_array = {}
    for k in a.arrays:
        diff2 = np.sum((a.arrays[k] - _align(b.arrays[k], a.axes[k], perms)) ** 2)
        per_array[k] = float(np.sqrt(diff2 * weights[k])) if k in weights else 0.0
    return WeightMatch(
        perms, per_array[a.recurrent], float(np.sqrt(np.mean([v**2 for v in per_array.values()]))), per_array, rounds
    )


class WeightDistances(NamedTuple):
    """Pairwise weight distances after matching, ``(S, S)`` each: ``recurrent`` and ``all``."""

    recurrent: np.ndarray
    all: np.ndarray


def weight_distances(
    views: Sequence[WeightView], *, seed: int, restarts: int = 8, max_rounds: int = 50
) -> WeightDistances:
    """:func:`match_weights` for every pair ``a < b`` of a population's views (symmetrised;
    pair ``(i, j)`` uses the seed ``seed + i * S + j``)."""
    views = list(views)
    s = _population(len(views), "weight_distances")
    rec, full = np.zeros((s, s)), np.zeros((s, s))
    for i in range(s):
        for j in range(i + 1, s):
            m = match_weights(views[i], views[j], seed=seed + i * s + j, restarts=restarts, max_rounds=max_rounds)
            rec[i, j] = rec[j, i] = m.recurrent
            full[i, j] = full[j, i] = m.all
    return WeightDistances(rec, full)


def relative_weight_change(initial: WeightView, final: WeightView) -> float:
    """``||W_final - W_initial||_F / ||W_initial||_F`` on the recurrent matrix (no matching: the
    same network before and after training), a measure of how far training moved the weights."""
    _check_pair(initial, final)
    w0, w1 = initial.arrays[initial.recurrent], final.arrays[final.recurrent]
    n0 = np.linalg.norm(w0)
    if n0 == 0:
        raise ValueError("the initial recurrent matrix is zero; its relative change is undefined")
    return float(np.linalg.norm(w1 - w0) / n0)


__all__ = [
    "BootstrapDifference",
    "DSA_METHODS",
    "Degeneracy",
    "MIN_POPULATION",
    "OOD_PROBES",
    "PROBE_SETS",
    "WEIGHT_VIEWS",
    "WeightDistances",
    "WeightMatch",
    "WeightView",
    "behaviour_distances",
    "bootstrap_difference",
    "check_distances",
    "cka_distances",
    "population_degeneracy",
    "dsa_distances",
    "fixed_point_counts",
    "fixed_point_distances",
    "match_weights",
    "ood_description",
    "pairwise_values",
    "population_states",
    "probe_batches",
    "procrustes_distances",
    "relative_weight_change",
    "state_matrix",
    "weight_distances",
    "weight_view",
]
