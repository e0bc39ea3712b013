"""T8: the 3-bit flip-flop and its fixed points (Sussillo & Barak 2013; docs/references.md), for a
vanilla RNN and an NM-RNN.

A network trained on the N-bit flip-flop (:class:`nmrnn.tasks.FlipFlop`) stores each bit in the
sign of an output. Without input its dynamics should then have ``2^N`` stable fixed points whose
readouts sit at the corners of ``{-1, +1}^N`` (the memories), and between two memories that differ
in one bit a saddle with one unstable direction whose unstable manifold runs into those two
memories (the boundary a pulse has to push the state across). For ``N = 3`` the saddles form the
skeleton of a cube: 12 one-unstable-direction saddles on the edges, typically 6 with two unstable
directions on the faces and one with three at the centre.

What is computed (this module only wires; the pieces live in the library)
-------------------------------------------------------------------------
* Training: each network of the profile (:data:`PROFILES`; ``"vanilla"``:
  :class:`~nmrnn.models.LeakyRNN` with ``tau = dt``, i.e. the plain discrete tanh RNN
  ``x_t = W tanh(x_{t-1}) + B u_t``; ``"nmrnn"``: :class:`~nmrnn.models.NMRNN` with
  ``tau_x = dt`` and ``tau_z = 10 dt``, so the neuromodulatory network is the slower one) is
  trained through a run directory ``out_dir/runs/<name>`` (:func:`nmrnn.train.run.ensure_run`:
  ``config.json``, checkpoints, resume), and its sign accuracy is the task's metric on the task's
  evaluation set (``metrics.json``).
* Fixed points of the input-free map (``u = 0``): :func:`nmrnn.analysis.find_saddles` (two-pass
  search, then the saddles' unstable manifolds followed to the stable points they reach), from
  the network's own trajectories on fresh trials. :func:`match_corners` maps the stable points
  to the corners of the cube (a fact of the task) and the saddles' manifolds to corner pairs.
* Every network is analysed with its whole state free. A network with neuromodulatory state
  fields (``model.modulatory_fields``: the NM-RNN's ``z``) is analysed once more per such field,
  with the field *clamped* at its mean over the memory periods of the trials (the steps with no
  input pulse on any channel, :func:`memory_mask`): does the rest of the network alone hold the
  memories at the modulation it actually has while it remembers? The analysis holds a clamped
  field at ``c`` *before* each step and the NM-RNN updates ``z`` before gating ``x``, so the
  clamp value is the pre-image ``c`` with ``F_z(c, 0) = z_bar``
  (:func:`nmrnn.analysis.clamp_preimage`); the summary also reports the modulation clamping at
  ``z_bar`` itself would give (:func:`memory_clamp`). With ``z`` free, ``z`` relaxes to the fixed
  point ``z*`` of the neuromodulatory network, so the gains at every memory are ``s(z*)``.

Criterion of the reproduction (every check must hold), for each network and each analysis: sign
accuracy on the evaluation set at least 95% (free analysis); exactly 8 stable fixed points; their
readouts' sign patterns cover the 8 corners, each once, with every readout within 0.35 (max-abs)
of its corner; saddles with exactly one unstable direction whose unstable manifolds join, between
them, all 12 pairs of neighbouring corners (memories differing in one bit).

Units: time in steps (``dt = 1``); eigenvalues are those of the one-step map (``|lambda| > 1`` is
unstable).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_positive_int, seed_key
from ..analysis.clamping import clamp_preimage, field_after_step
from ..analysis.saddles import (
    SaddleAnalysis,
    find_saddles,
    free_coordinates,
    summarize_saddles,
)
from ..models import param_count, simulate
from ..plotting.flipflop import plot_flipflop
from ..train import TrainConfig
from ..train.run import RunSpec, ensure_run
from .grid import GridJob, GridOptions, run_grid
from .profiles import Profiles
from .registry import check

ACCURACY_MIN = 0.95
CORNER_TOL = 0.35


# ----------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlipFlopNetwork:
    """One network of the reproduction: ``label`` (for checks and figures), the registry name
    ``model``, ``n_hidden``, the training ``steps`` and the model ``options`` (time in steps)."""

    label: str
    model: str
    n_hidden: int
    steps: int
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FlipFlopSettings:
    """The settings of one profile.

    ``networks``: ``{name: FlipFlopNetwork}`` (``name`` names the run directory, the metrics entry
    and the figures); training: ``batch_size``, ``lr`` (clipped AdamW on fresh batches, no
    recurrent noise), ``steps_per_call``, ``checkpoint_every``; analysis: ``n_analysis_trials``
    fresh trials whose trajectories seed the search, ``n_samples`` initial states with
    ``noise_scale``, ``follow_steps`` of each unstable manifold; figures: ``pca_trajectories``
    drawn, ``field_resolution`` grid points per axis, ``dpi``; ``task_options`` of the
    ``"flipflop"`` task (default: 3 bits, 100 steps).
    """

    networks: dict
    batch_size: int
    lr: float
    n_analysis_trials: int
    n_samples: int
    noise_scale: float
    follow_steps: int
    pca_trajectories: int
    field_resolution: int
    dpi: int
    steps_per_call: int = 100
    checkpoint_every: int = 1000
    task_options: dict = dataclasses.field(default_factory=dict)

    def run_spec(self, name: str, seed: int) -> RunSpec:
        """The :class:`~nmrnn.train.run.RunSpec` of network ``name``."""
        net = self.networks[name]
        train = TrainConfig(
            steps=net.steps, lr=self.lr, batch_size=self.batch_size, noise=False,
            steps_per_call=self.steps_per_call, checkpoint_every=self.checkpoint_every,
        )  # fmt: skip
        return RunSpec(
            model=net.model, n_hidden=net.n_hidden, task="flipflop", train=train, seed=seed,
            model_options=dict(net.options), task_options=dict(self.task_options),
        )  # fmt: skip


_VANILLA = dict(tau=1.0, dt=1.0)
_NMRNN = dict(tau_x=1.0, tau_z=10.0, dt=1.0)

PROFILES: Profiles[FlipFlopSettings] = Profiles(
    # Seconds: tiny networks, a few hundred steps, a small search; exercises every output.
    smoke=FlipFlopSettings(
        networks={
            "vanilla": FlipFlopNetwork("vanilla RNN", "vanilla", 8, 200, _VANILLA),
            "nmrnn": FlipFlopNetwork("NM-RNN", "nmrnn", 12, 200, dict(_NMRNN, n_nm=2, rank=3)),
        },
        batch_size=16, lr=1e-2, n_analysis_trials=8, n_samples=32, noise_scale=0.02,
        follow_steps=50, pca_trajectories=4, field_resolution=8, dpi=40, steps_per_call=50,
        checkpoint_every=50,
    ),
    # Vanilla N = 32 (1219 parameters) against an NM-RNN N = 96, M = 5, K = 3 (1213 parameters).
    quick=FlipFlopSettings(
        networks={
            "vanilla": FlipFlopNetwork("vanilla RNN", "vanilla", 32, 1500, _VANILLA),
            "nmrnn": FlipFlopNetwork("NM-RNN", "nmrnn", 96, 2000, dict(_NMRNN, n_nm=5, rank=3)),
        },
        batch_size=32, lr=1e-2, n_analysis_trials=64, n_samples=256, noise_scale=0.02,
        follow_steps=500, pca_trajectories=12, field_resolution=20, dpi=90,
    ),
    # Larger networks, longer training: a 128-unit vanilla RNN (17155 parameters; Sussillo &
    # Barak used N = 1000) and an NM-RNN with N = 256, M = 20, K = 3 (3598 parameters). Not
    # parameter-matched: the fixed-point search costs O(D^3) per step in the state size D.
    paper=FlipFlopSettings(
        networks={
            "vanilla": FlipFlopNetwork("vanilla RNN", "vanilla", 128, 10000, _VANILLA),
            "nmrnn": FlipFlopNetwork("NM-RNN", "nmrnn", 256, 10000, dict(_NMRNN, n_nm=20, rank=3)),
        },
        batch_size=64, lr=5e-3, n_analysis_trials=128, n_samples=512, noise_scale=0.02,
        follow_steps=1000, pca_trajectories=20, field_resolution=20, dpi=150,
    ),
)


# ----------------------------------------------------------------------------------------------
# task facts: corners and memory periods
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


class CornerMatch(NamedTuple):
    """The stable points and saddle manifolds of a :class:`~nmrnn.analysis.SaddleAnalysis` in
    terms of the cube's corners (``S`` stable points, ``Q`` saddles).

    Attributes:
        stable_corners: ``(S,)`` index of the corner with each stable readout's sign pattern.
        corner_errors: ``(S,)`` max-abs distance of each stable readout from that corner.
        end_corners: ``(Q, 2)`` the corner of the stable point each end of each saddle's unstable
            manifold reached, ``-1`` where it reached none.
        joins_neighbours: ``(Q,)`` the two ends are corners differing in exactly one bit.
        edges: pairs ``(a, b)``, ``a < b``, of neighbouring corners joined by the unstable
            manifold of a saddle with exactly one unstable direction.
    """

    stable_corners: np.ndarray
    corner_errors: np.ndarray
    end_corners: np.ndarray
    joins_neighbours: np.ndarray
    edges: list[tuple[int, int]]


def match_corners(analysis: SaddleAnalysis) -> CornerMatch:
    """Map an analysis of a flip-flop network onto the corners (see :class:`CornerMatch`)."""
    readouts = np.asarray(analysis.stable_readouts)
    n_bits = readouts.shape[1]
    st = corner_index(readouts)
    err = np.max(np.abs(readouts - corners(n_bits)[st]), axis=1, initial=0.0)
    ends = np.asarray(analysis.saddle_ends, dtype=int).reshape(-1, 2)
    if len(st):
        end_c = np.where(ends >= 0, st[np.maximum(ends, 0)], -1)
    else:
        end_c = np.full_like(ends, -1)
    xor = np.bitwise_xor(end_c[:, 0], end_c[:, 1])
    one_bit = (xor > 0) & ((xor & (xor - 1)) == 0)
    joins = (end_c.min(axis=1, initial=0) >= 0) & one_bit
    keep = joins & (np.asarray(analysis.n_unstable) == 1)
    edges = sorted({(int(a), int(b)) for a, b in np.sort(end_c, axis=1)[keep]})
    return CornerMatch(st, err, end_c, joins, edges)


def summarize(analysis: SaddleAnalysis) -> dict[str, Any]:
    """The numbers of a flip-flop analysis (JSON-able): the generic counts
    (:func:`nmrnn.analysis.summarize_saddles`) plus corners and the edges of the cube joined."""
    n_bits = int(np.asarray(analysis.stable_readouts).shape[1])
    n_corners = 2**n_bits
    match = match_corners(analysis)
    labels = [corner_label(c, n_bits) for c in match.stable_corners]
    one = np.asarray(analysis.n_unstable) == 1
    conns = [
        " to ".join(corner_label(c, n_bits) if c >= 0 else "none" for c in pair)
        for pair in match.end_corners[one]
    ]
    out = summarize_saddles(analysis, max_unstable_dims=n_bits)
    out.update(
        n_bits=n_bits,
        n_corners=n_corners,
        stable_corners=labels,
        n_distinct_corners=len(set(labels)),
        all_corners_once=len(labels) == n_corners and len(set(labels)) == n_corners,
        max_corner_error=float(np.max(match.corner_errors)) if len(labels) else None,
        one_unstable_saddle_connections=conns,
        one_unstable_saddles_joining_neighbours=int(np.sum(match.joins_neighbours[one])),
        edges_joined=len(match.edges),
        n_edges=n_bits * 2 ** (n_bits - 1),
    )
    return out


def memory_clamp(model: Any, field: str, states: Any, inputs: Any) -> dict[str, Any]:
    """The clamp of state field ``field`` for the clamped analysis, from trajectories on
    flip-flop trials.

    ``states``: the model's state NamedTuple ``(B, T, .)``; ``inputs``: the trials' inputs
    ``(B, T, P)``. The level is the mean of the field over the memory periods
    (:func:`memory_mask`); the clamp value ``c`` is its pre-image
    (:func:`nmrnn.analysis.clamp_preimage`), so the clamped network runs at that level. Returns
    ``memory_mean (size,)``, ``clamp_value (size,)``, the pre-image residual
    ``max |F(c, 0) - memory_mean|``, the modulation (``model.modulation``) at the mean and what
    clamping at the mean itself would give (``modulation_if_clamped_at_memory_mean``), the
    fraction of memory steps, and how much the field and the modulation move over the memory
    steps (standard deviation of the field, range of the modulation).
    """
    mem = memory_mask(inputs)
    values = np.asarray(getattr(states, field))
    if values.shape[:2] != mem.shape:
        raise ValueError(f"states.{field} has (B, T) = {values.shape[:2]} but inputs have {mem.shape}")
    v_mem = values[mem]
    mean = v_mem.mean(axis=0)
    c = clamp_preimage(model, field, mean)

    def modulation_at(level):
        return np.asarray(model.modulation(model.make_state(**{field: jnp.asarray(level)})))

    mod_mem = np.asarray(model.modulation(states))[mem]
    return {
        "memory_mean": mean,
        "clamp_value": c,
        "preimage_residual": float(np.max(np.abs(field_after_step(model, field, c) - mean))),
        "modulation_at_memory_mean": modulation_at(mean),
        "modulation_if_clamped_at_memory_mean": modulation_at(field_after_step(model, field, mean)),
        "memory_steps_fraction": float(mem.mean()),
        "std_over_memory_steps": v_mem.std(axis=0),
        "modulation_min_over_memory_steps": mod_mem.min(axis=0),
        "modulation_max_over_memory_steps": mod_mem.max(axis=0),
    }


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def _model_checks(label: str, accuracy: float | None, summary: dict[str, Any]) -> list[dict]:
    n_corners = summary["n_corners"]
    out = []
    if accuracy is not None:
        out.append(check(
            f"{label}: sign accuracy", accuracy, accuracy >= ACCURACY_MIN,
            f">= {ACCURACY_MIN:.0%} of scored (trial, step, bit) entries on the task's evaluation set",
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


def _analyse(model, states, outputs, *, key, cfg: FlipFlopSettings, path, title, clamp=None):
    t0 = time.perf_counter()
    analysis = find_saddles(
        model, states, key=key, clamp=clamp, n_samples=cfg.n_samples,
        noise_scale=cfg.noise_scale, follow_steps=cfg.follow_steps,
    )  # fmt: skip
    summary = summarize(analysis)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    plot_flipflop(
        model, analysis, free_coordinates(model, states, clamp), outputs, path, title=title,
        max_trajectories=cfg.pca_trajectories, resolution=cfg.field_resolution, dpi=cfg.dpi,
    )  # fmt: skip
    return analysis, summary


def run(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """T8 flip-flop reproduction (registry format): train, find fixed points, check, plot.

    The networks are trained first, as a grid of runs (``grid``: workers, shared storage)."""
    cfg = PROFILES[profile]
    out_dir = Path(out_dir)
    checks: list[dict] = []
    metrics: dict[str, Any] = {}
    figures: list[str] = []
    task = None
    jobs = [GridJob(f"runs/{name}", cfg.run_spec(name, seed)) for name in cfg.networks]
    run_grid(jobs, out_dir, **(grid or GridOptions()).kwargs(), log=None)
    keys = dict(zip(cfg.networks, jr.split(seed_key(seed), len(cfg.networks)), strict=True))
    for name, net in cfg.networks.items():
        _, k_data, k_fp, k_clamp = jr.split(keys[name], 4)
        outcome = ensure_run(out_dir / "runs" / name, cfg.run_spec(name, seed), progress=False)
        model, task = outcome.model, outcome.task
        batch = task.sample(k_data, cfg.n_analysis_trials)
        traj = simulate(model, batch.inputs)
        scores = outcome.metrics["test"]
        m: dict[str, Any] = {
            "parameters": param_count(model),
            "accuracy": float(scores["accuracy"]),
            "test_loss": float(scores["loss"]),
            "final_train_loss": float(np.mean(outcome.losses[-50:])),
            "train_seconds": outcome.metrics.get("train_seconds"),
        }
        fields = tuple(model.modulatory_fields)
        tag = "_".join(fields)
        free_key = f"fixed_points_{tag}_free" if fields else "fixed_points"
        free_fig = f"figures/{name}_{tag}_free.png" if fields else f"figures/{name}.png"
        free_label = f"{net.label}, {', '.join(fields)} free" if fields else net.label
        free_title = f"{net.label} ({', '.join(fields)} free)" if fields else net.label
        free, m[free_key] = _analyse(
            model, traj.states, traj.outputs, key=k_fp, cfg=cfg, path=out_dir / free_fig,
            title=free_title,
        )  # fmt: skip
        checks += _model_checks(free_label, m["accuracy"], m[free_key])
        figures.append(free_fig)
        for j, field in enumerate(fields):
            info = memory_clamp(model, field, traj.states, batch.inputs)
            fig = f"figures/{name}_{field}_clamped.png"
            _, m[f"fixed_points_{field}_clamped"] = _analyse(
                model, traj.states, traj.outputs, key=jr.fold_in(k_clamp, j), cfg=cfg,
                clamp={field: info["clamp_value"]}, path=out_dir / fig,
                title=f"{net.label} ({field} clamped)",
            )  # fmt: skip
            _compare_free_memories(model, field, free, info)
            m[f"{field}_clamp"] = info
            checks += _model_checks(f"{net.label}, {field} clamped", None,
                                    m[f"fixed_points_{field}_clamped"])
            figures.append(fig)
        metrics[name] = m
    settings = {
        "task": {"n_bits": task.n_bits, "n_steps": task.n_steps, "pulse_prob": task.pulse_prob},
        "networks": {
            name: {"label": net.label, "model": net.model, "n_hidden": net.n_hidden,
                   "steps": net.steps, **net.options}
            for name, net in cfg.networks.items()
        },
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "networks"},
        "run_dirs": {name: f"runs/{name}" for name in cfg.networks},
        "evaluation": "the task's evaluation set (each run's metrics.json)",
        "corner_tol": CORNER_TOL,
        "accuracy_min": ACCURACY_MIN,
    }
    return {
        "checks": checks,
        "metrics": metrics,
        "settings": settings,
        "figures": figures,
        "notes": _notes(metrics, cfg),
        "criterion": (
            "for each network (and, for each neuromodulatory field, with it clamped at its "
            f"memory-period mean): sign accuracy >= {ACCURACY_MIN:.0%}, exactly 8 stable fixed "
            f"points at u = 0 whose readouts match the 8 corners once each (within {CORNER_TOL}), "
            "and all 12 neighbouring corner pairs joined by saddles with one unstable direction"
        ),
    }


def _compare_free_memories(model, field: str, free: SaddleAnalysis, info: dict[str, Any]) -> None:
    """Add to ``info`` the modulation at the memories of the free analysis (where the field sits
    at its own fixed point) and how far it is from the modulation at the memory-period mean."""
    states = free.fixed_points.states
    if states is None or not len(free.stable_index):
        return
    values = np.asarray(getattr(states, field))[free.stable_index]
    mods = np.asarray(model.modulation(model.make_state((len(values),), **{field: jnp.asarray(values)})))
    info["modulation_at_free_memories"] = mods.mean(axis=0)
    info["free_memories_spread"] = float(np.ptp(values, axis=0).max())
    info["max_modulation_difference_free_vs_memory_mean"] = float(
        np.max(np.abs(mods - info["modulation_at_memory_mean"]))
    )


def _notes(metrics: dict[str, Any], cfg: FlipFlopSettings) -> str:
    lines = [
        "Fixed points of the input-free one-step map, found by Levenberg-Marquardt from "
        "trajectory samples, then from points between every pair of stable points. Each "
        "saddle's leading unstable eigenvector is followed both ways (iterating the map from "
        "saddle +/- eps v) to the stable points it reaches.",
        "",
    ]
    for name, m in metrics.items():
        label = cfg.networks[name].label
        for key, s in m.items():
            if key.startswith("fixed_points"):
                suffix = key[len("fixed_points"):].strip("_").replace("_", " ")
                lines.append(
                    f"- {label}{', ' + suffix if suffix else ''}: {s['n_stable']} stable points, "
                    f"saddles by number of unstable directions {s['saddles_by_unstable_dims']}, "
                    f"{s['edges_joined']}/{s['n_edges']} neighbouring pairs joined."
                )

    def fmt(v):
        return "n/a" if v is None else np.round(np.asarray(v, np.float64), 4).tolist()

    for name, m in metrics.items():
        label = cfg.networks[name].label
        for key, info in m.items():
            if not key.endswith("_clamp"):
                continue
            field = key[: -len("_clamp")]
            lines += [
                "",
                f"{label}: modulation at the memories with {field} free (at its own fixed "
                f"point): {fmt(info.get('modulation_at_free_memories'))}; at the mean {field} "
                f"over the memory periods (the clamped analysis): "
                f"{fmt(info['modulation_at_memory_mean'])}; its range over the memory steps: "
                f"{fmt(info['modulation_min_over_memory_steps'])} to "
                f"{fmt(info['modulation_max_over_memory_steps'])}. Pulses of either sign are "
                f"equally likely, so the mean can lie close to the free fixed point even where "
                f"{field} moves with every pulse. The clamped analysis holds {field} at the "
                f"pre-image of its mean (one step from it lands on the mean; "
                f"nmrnn.analysis.clamp_preimage), the level the network's step then uses.",
            ]
    return "\n".join(lines)


__all__ = [
    "ACCURACY_MIN",
    "CORNER_TOL",
    "CornerMatch",
    "FlipFlopNetwork",
    "FlipFlopSettings",
    "PROFILES",
    "corner_index",
    "corner_label",
    "corners",
    "match_corners",
    "memory_clamp",
    "memory_mask",
    "run",
    "summarize",
]
