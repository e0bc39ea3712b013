"""R6: the 2-neuron bifurcation study of paper 000, section 5 (multiplicative vs additive).

System (eq. 22-25): ``dr_i/dt = -r_i + tanh(n (W r)_i + r3)``, ``W = [[2, -1], [1, 2]]``; time in
units of the neurons' time constant.

What is computed
----------------
*Multiplicative (n, with r3 = 0).* The fixed point at the origin is followed by pseudo-arclength
continuation over ``n``; the Hopf point is detected from the eigenvalues and located by bisection.
On a uniform grid of ``n`` the fixed point is searched from random initial states near the origin
with :func:`nmrnn.analysis.find_fixed_points`, and its eigenvalues are compared with the closed
form ``(2n - 1) +/- i n``. Trajectories are integrated (RK4) over a grid of ``n``; after a
transient the attractor's amplitude (half peak-to-peak), mean activity and period are measured.
Near onset a supercritical Hopf gives an amplitude ``~ (n - n_H)^(1/2)``; the exponent is fitted
(:func:`fit_amplitude_law`).

*Additive (r3, at fixed n).* The fixed point is followed from ``r3 = 0`` over ``r3``; its
displacement ``dr*/dr3`` at ``r3 = 0`` is compared with the closed form ``(I - n W)^{-1} 1``
(multiplicatively, ``dr*/dn = 0``). Every bifurcation on the curve is located, with its operating
point. The main additive setting is ``n = 0.6``, where the oscillation of ``r3 = 0`` ends in a
Hopf bifurcation at a shifted operating point as ``r3`` grows; the paper's own example ``n = 1`` is
continued too and its bifurcations reported. Trajectories over ``r3`` measure the attractor's
amplitude and mean activity, to contrast the operating-point shift with the multiplicative case.

Criterion (all must hold): the Hopf along ``n`` within 1e-3 of 1/2, at the origin, with frequency
``n_H``; eigenvalues within 1e-4 of the closed form over the grid; the fixed point at the origin
(``|r*| < 1e-5``) for every ``n``; no oscillation below ``n_H`` and a limit cycle above it with
amplitude exponent in [0.45, 0.55], amplitude within 3% of the weakly nonlinear prediction
(:func:`nmrnn.analysis.two_neuron_cycle_radius`) and period within 2% of its prediction ``4 pi``
(:func:`nmrnn.analysis.two_neuron_cycle_frequency`; also ``2 pi / Im lambda`` at ``n_H``) at onset,
centred on the origin (``|mean| < 0.02``); additively, ``dr*/dr3`` within 1e-3 of the closed form, every
bifurcation at a non-zero operating point (``|r*| > 0.1``), and the attractor's mean activity
shifting by more than 0.1 across the additive Hopf; at every located additive Hopf the trace, and
at every fold the determinant, of the closed-form Jacobian ``n diag(1 - r*^2) W - I`` below 1e-4.

The study is deterministic except for the random initial states of the fixed-point searches
(drawn from ``seed``), which do not change the points found.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import seed_key
from ..analysis import (
    TWO_NEURON_W,
    Branch,
    TwoNeuronFamily,
    continue_fixed_point,
    cycle_stats,
    find_fixed_points,
    integrate,
    two_neuron_cycle_frequency,
    two_neuron_cycle_radius,
    two_neuron_field,
    two_neuron_hopf_n,
    two_neuron_jacobian,
    two_neuron_origin_eigenvalues,
)
from .profiles import Profiles
from .registry import check

PROFILES: Profiles[dict[str, Any]] = Profiles(
    # Seconds: coarse grids, short runs, small figures (the verdict says nothing at this scale).
    smoke=dict(
        n_range=(0.1, 1.0),
        ds_max=0.1,
        n_grid=7,
        sim_dt=0.1,
        sim_time=400.0,
        sim_n=(0.3, 0.6, 0.9),
        fit_offsets=(0.01, 0.02, 0.04),
        additive_n=0.6,
        paper_additive_n=1.0,
        r3_range=(0.0, 1.0),
        sim_r3=(0.0, 0.2, 0.4),
        portrait_n=(0.35, 0.6, 0.9),
        portrait_r3=(0.0, 0.15, 0.35),
        portrait_resolution=8,
        stream_density=0.5,
        portrait_grid=3,
        dpi=40,
        n_inits=4,
    ),
    quick=dict(
        n_range=(0.1, 1.0),
        ds_max=0.05,
        n_grid=19,
        sim_dt=0.1,
        sim_time=1200.0,
        sim_n=(0.3, 0.4, 0.45, 0.48, 0.52, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0),
        fit_offsets=(0.005, 0.01, 0.02, 0.04),
        additive_n=0.6,
        paper_additive_n=1.0,
        r3_range=(0.0, 1.0),
        sim_r3=(0.0, 0.05, 0.1, 0.15, 0.2, 0.22, 0.26, 0.3, 0.4, 0.6),
        portrait_n=(0.35, 0.6, 0.9),
        portrait_r3=(0.0, 0.15, 0.35),
        portrait_resolution=18,
        stream_density=0.8,
        portrait_grid=6,
        dpi=80,
        n_inits=12,
    ),
    paper=dict(
        n_range=(0.05, 1.5),
        ds_max=0.01,
        n_grid=146,
        sim_dt=0.02,
        sim_time=4000.0,
        sim_n=tuple(np.round(np.linspace(0.3, 1.5, 49), 4)),
        fit_offsets=(0.0025, 0.005, 0.01, 0.02, 0.03, 0.04),
        additive_n=0.6,
        paper_additive_n=1.0,
        r3_range=(0.0, 1.5),
        sim_r3=tuple(np.round(np.linspace(0.0, 0.6, 31), 4)),
        portrait_n=(0.35, 0.6, 0.9),
        portrait_r3=(0.0, 0.15, 0.35),
        portrait_resolution=60,
        stream_density=1.4,
        portrait_grid=12,
        dpi=150,
        n_inits=64,
    ),
)

_TOL = dict(hopf=1e-3, eig=1e-4, origin=1e-5, rest_amplitude=1e-3, cycle_amplitude=0.05,
            exponent=(0.45, 0.55), theory_rel=0.03, period_rel=0.02, centred=0.02, slope=1e-3, operating_point=0.1,
            mean_shift=0.1, bif_closed_form=1e-4)


_BUCKET = 32


def _field_nu(x, u):
    """The 2-neuron field with ``u = (n, r3)`` as the input, for the fixed-point finder."""
    return two_neuron_field(x, u[0], u[1])


@partial(jax.jit, static_argnames=("dt", "n_steps", "save"))
def _runs(n_values, r3_values, x0, *, dt, n_steps, save):
    def one(n, r3):
        return integrate(lambda x, a, b: two_neuron_field(x, a, b), x0, dt=dt, n_steps=n_steps,
                         save_every=save, args=(n, r3))

    return jax.vmap(one)(n_values, r3_values)


def simulate_attractors(n_values, r3_values, *, dt: float, total_time: float, x0=(0.05, 0.0)):
    """Integrate from ``x0`` for each ``(n, r3)`` pair and measure the attractor over the second
    half of the run. Returns a list of :class:`nmrnn.analysis.CycleStats` and the tails
    ``(K, T, 2)`` (sampled every ``10 dt``)."""
    n_values = np.asarray(n_values, dtype=float)
    r3_values = np.asarray(r3_values, dtype=float)
    k = len(n_values)
    pad = -k % _BUCKET  # pad the batch to a fixed size: one compilation serves every call
    save = 10
    n_steps = int(round(total_time / dt / save)) * save
    trajs = _runs(
        jnp.asarray(np.concatenate([n_values, np.zeros(pad)]), dtype=jnp.result_type(float)),
        jnp.asarray(np.concatenate([r3_values, np.zeros(pad)]), dtype=jnp.result_type(float)),
        jnp.asarray(x0, dtype=jnp.result_type(float)),
        dt=float(dt), n_steps=n_steps, save=save,
    )
    trajs = np.asarray(trajs)[:k]
    tails = trajs[:, trajs.shape[1] // 2 :]
    return [cycle_stats(t, dt * save, tol=_TOL["rest_amplitude"]) for t in tails], tails


def fit_amplitude_law(eps, amplitude) -> tuple[float, float, float]:
    """Fit ``A = c eps^beta (1 + k eps)`` near onset as ``log A = log c + beta log eps + k eps``.

    The linear term absorbs the first correction to the normal form, without which the log-log
    slope over ``eps`` up to 0.1 is biased low (about 0.43 instead of 1/2 here).
    Returns ``(beta, c, k)``.
    """
    eps, amplitude = np.asarray(eps, float), np.asarray(amplitude, float)
    X = np.stack([np.log(eps), eps, np.ones_like(eps)], axis=1)
    (beta, k, logc), *_ = np.linalg.lstsq(X, np.log(amplitude), rcond=None)
    return float(beta), float(np.exp(logc)), float(k)


def multiplicative_study(cfg: dict, key) -> dict[str, Any]:
    """Continuation over n (r3 = 0), eigenvalues on a grid, and attractor measurements."""
    n_lo, n_hi = cfg["n_range"]
    branch = continue_fixed_point(
        TwoNeuronFamily("n", 0.0), jnp.zeros(2), n_lo, n_hi, ds=0.01, ds_max=cfg["ds_max"]
    )
    hopfs = branch.of_kind("hopf")
    n_grid = np.linspace(n_lo, n_hi, cfg["n_grid"])
    inits = 0.05 * jr.normal(key, (cfg["n_grid"] * cfg["n_inits"], 2))
    u = np.repeat(np.stack([n_grid, np.zeros_like(n_grid)], 1), cfg["n_inits"], axis=0)
    fps = find_fixed_points(_field_nu, inits, u, kind="flow")
    # the point found for each n: the one nearest the origin
    per_n_points, per_n_eigs = [], []
    for n in n_grid:
        sel = np.flatnonzero(np.isclose(fps.inputs[:, 0], n) & ~fps.slow)
        if sel.size == 0:
            per_n_points.append(np.full(2, np.nan))
            per_n_eigs.append(np.full(2, np.nan + 0j))
            continue
        j = sel[np.argmin(np.linalg.norm(fps.points[sel], axis=1))]
        per_n_points.append(fps.points[j])
        ev = fps.eigenvalues[j]
        per_n_eigs.append(ev[np.argsort(-ev.imag)])
    per_n_points, per_n_eigs = np.asarray(per_n_points), np.asarray(per_n_eigs)
    closed = two_neuron_origin_eigenvalues(n_grid)
    eig_err = np.abs(per_n_eigs - closed)
    n_h = hopfs[0].param if hopfs else float("nan")
    sim_n = np.concatenate([np.asarray(cfg["sim_n"], float), n_h + np.asarray(cfg["fit_offsets"])])
    stats, tails = simulate_attractors(sim_n, np.zeros_like(sim_n), dt=cfg["sim_dt"], total_time=cfg["sim_time"])
    amp = np.array([s.amplitude.max() for s in stats])
    means = np.array([s.mean for s in stats])
    periods = np.array([s.period for s in stats])
    fit_idx = np.arange(len(cfg["sim_n"]), len(sim_n))
    exponent, prefactor, correction = fit_amplitude_law(sim_n[fit_idx] - n_h, amp[fit_idx])
    return dict(
        branch=branch, hopfs=hopfs, n_grid=n_grid, points=per_n_points, eigs=per_n_eigs,
        closed=closed, eig_err=eig_err, fps_report=fps.report, sim_n=sim_n, amplitude=amp,
        mean=means, period=periods, tails=tails, fit_idx=fit_idx, exponent=exponent,
        prefactor=prefactor, correction=correction, n_hopf=n_h,
    )


def additive_study(cfg: dict) -> dict[str, Any]:
    """Continuation over r3 at fixed n, the fixed point's displacement, and attractors."""
    n_add = cfg["additive_n"]
    lo, hi = cfg["r3_range"]
    branches = {}
    for n in (n_add, cfg["paper_additive_n"]):
        branches[n] = continue_fixed_point(
            TwoNeuronFamily("r3", n), jnp.zeros(2), lo, hi, ds=0.01, ds_max=cfg["ds_max"]
        )
    main = branches[n_add]
    # displacement of the fixed point per unit r3 at r3 = 0, from the curve's tangent
    t0 = main.tangents[0]
    slope_num = t0[:2] / t0[2]
    W = np.asarray(TWO_NEURON_W)
    slope_closed = np.linalg.solve(np.eye(2) - n_add * W, np.ones(2))
    sim_r3 = np.asarray(cfg["sim_r3"], float)
    stats, tails = simulate_attractors(np.full_like(sim_r3, n_add), sim_r3, dt=cfg["sim_dt"], total_time=cfg["sim_time"])
    return dict(
        branches=branches, n_add=n_add, slope_num=slope_num, slope_closed=slope_closed,
        sim_r3=sim_r3, amplitude=np.array([s.amplitude.max() for s in stats]),
        mean=np.array([s.mean for s in stats]), period=np.array([s.period for s in stats]), tails=tails,
    )


def _bif_rows(branch: Branch) -> list[dict[str, Any]]:
    return [
        dict(kind=b.kind, param=b.param, point=b.point, operating_point_norm=float(np.linalg.norm(b.point)),
             frequency=b.frequency)
        for b in branch.bifurcations
    ]


def run(out_dir: Path, profile: str, seed: int) -> dict[str, Any]:
    """Run the study at ``profile`` (a name of :data:`~nmrnn.experiments.profiles.PROFILE_NAMES`);
    figures go to ``out_dir/figures``."""
    cfg = PROFILES[profile]
    key = seed_key(seed)
    k_mult, k_fig = jr.split(key)
    mult = multiplicative_study(cfg, k_mult)
    add = additive_study(cfg)
    n_h = mult["n_hopf"]
    hopf_expected = two_neuron_hopf_n()

    # -- multiplicative checks
    hopf = mult["hopfs"][0] if mult["hopfs"] else None
    below = mult["sim_n"] < n_h - 0.015
    above = mult["sim_n"] > n_h + 0.015
    onset = int(mult["fit_idx"][0])
    period_onset = float(mult["period"][onset])
    amp_onset = float(mult["amplitude"][onset])
    amp_theory = float(two_neuron_cycle_radius(mult["sim_n"][onset]))
    period_expected = 2 * np.pi / two_neuron_cycle_frequency()
    origin_dev = float(np.nanmax(np.linalg.norm(mult["points"], axis=1)))
    branch_dev = float(np.max(np.linalg.norm(mult["branch"].points, axis=1)))
    mult_mean = float(np.max(np.linalg.norm(mult["mean"][above], axis=1)))

    # -- additive checks
    main = add["branches"][add["n_add"]]
    add_hopfs = main.of_kind("hopf")
    all_add_bifs = [b for br in add["branches"].values() for b in br.bifurcations]
    op_norms = [float(np.linalg.norm(b.point)) for b in all_add_bifs]
    r3_h = add_hopfs[0].param if add_hopfs else float("nan")
    osc = add["amplitude"] > _TOL["rest_amplitude"]
    rest_after = add["sim_r3"] > r3_h
    mean_shift = float(np.linalg.norm(add["mean"][rest_after][0] - add["mean"][0])) if rest_after.any() else 0.0
    slope_err = float(np.max(np.abs(add["slope_num"] - add["slope_closed"])))
    # closed forms at the located bifurcations: trace J = 0 at a Hopf (for this W: |r*|^2 = 2 - 1/n),
    # det J = 0 at a fold
    trace_err = max((abs(float(np.trace(two_neuron_jacobian(b.point, n, b.param))))
                     for n, br in add["branches"].items() for b in br.of_kind("hopf")), default=float("nan"))
    det_err = max((abs(float(np.linalg.det(two_neuron_jacobian(b.point, n, b.param))))
                   for n, br in add["branches"].items() for b in br.of_kind("fold")), default=float("nan"))

    checks = [
        check("Hopf along n located", len(mult["hopfs"]), len(mult["hopfs"]) == 1,
              "exactly one Hopf bifurcation on the origin's branch for n in the range"),
        check("Hopf gain n_H", n_h, abs(n_h - hopf_expected) < _TOL["hopf"], f"|n_H - 1/2| < {_TOL['hopf']}"),
        check("Hopf frequency Im(lambda) at n_H", hopf.frequency if hopf else None,
              bool(hopf) and abs(hopf.frequency - n_h) < _TOL["hopf"], f"|omega - n_H| < {_TOL['hopf']} (closed form: Im = n)"),
        check("eigenvalue error vs (2n-1) +/- i n", float(np.nanmax(mult["eig_err"])),
              bool(np.all(mult["eig_err"] < _TOL["eig"])), f"max over {cfg['n_grid']} values of n < {_TOL['eig']}"),
        check("fixed point stays at the origin under n", max(origin_dev, branch_dev),
              max(origin_dev, branch_dev) < _TOL["origin"], f"max |r*| over the n grid and the branch < {_TOL['origin']}"),
        check("no oscillation below n_H", float(mult["amplitude"][below].max()),
              bool(np.all(mult["amplitude"][below] < _TOL["rest_amplitude"])), f"amplitude < {_TOL['rest_amplitude']} for n < n_H - 0.015"),
        check("limit cycle above n_H", float(mult["amplitude"][above].min()),
              bool(np.all(mult["amplitude"][above] > _TOL["cycle_amplitude"])), f"amplitude > {_TOL['cycle_amplitude']} for n > n_H + 0.015"),
        check("amplitude exponent (supercritical: 1/2)", mult["exponent"],
              _TOL["exponent"][0] <= mult["exponent"] <= _TOL["exponent"][1], f"fitted exponent in {list(_TOL['exponent'])}"),
        check("amplitude near onset vs weakly nonlinear theory", amp_onset / amp_theory,
              abs(amp_onset / amp_theory - 1) < _TOL["theory_rel"],
              f"measured / predicted radius at n = n_H + {cfg['fit_offsets'][0]} within {100 * _TOL['theory_rel']:.0f}% of 1 "
              "(rho^2 = (2n - 1) / (2.5 n^3), cubic term of tanh averaged over a turn)"),
        check("period near onset vs weakly nonlinear theory", period_onset,
              abs(period_onset / period_expected - 1) < _TOL["period_rel"],
              f"within {100 * _TOL['period_rel']:.0f}% of 2 pi / (b / a) = {period_expected:.4f} (= 2 pi / Im lambda at n_H)"),
        check("limit cycle centred on the origin (multiplicative)", mult_mean, mult_mean < _TOL["centred"],
              f"|time-averaged r| < {_TOL['centred']} for every n above n_H"),
        check("fixed point moves under r3: dr*/dr3 at r3 = 0", slope_err, slope_err < _TOL["slope"],
              f"max |numeric - (I - n W)^-1 1| < {_TOL['slope']} (n = {add['n_add']})"),
        check("r3-induced bifurcations at non-zero operating points", min(op_norms) if op_norms else None,
              bool(op_norms) and min(op_norms) > _TOL["operating_point"],
              f"at least one, and every |r*| > {_TOL['operating_point']} (n = {add['n_add']} and {cfg['paper_additive_n']})"),
        check("additive Hopf: trace of the closed-form Jacobian", trace_err, trace_err < _TOL["bif_closed_form"],
              f"|tr J(r*)| < {_TOL['bif_closed_form']} at every located Hopf (J = n diag(1 - r*^2) W - I)"),
        check("additive folds: determinant of the closed-form Jacobian", det_err, det_err < _TOL["bif_closed_form"],
              f"|det J(r*)| < {_TOL['bif_closed_form']} at every located fold"),
        check("Hopf along r3 (n = 0.6) ends the oscillation", r3_h,
              bool(add_hopfs) and bool(osc[add["sim_r3"] < r3_h - 0.015].all()) and not bool(osc[add["sim_r3"] > r3_h + 0.015].any()),
              "oscillation for r3 < r3_H - 0.015, rest for r3 > r3_H + 0.015"),
        check("mean activity shifts across the additive Hopf", mean_shift, mean_shift > _TOL["mean_shift"],
              f"|mean r (first r3 past r3_H) - mean r (r3 = 0)| > {_TOL['mean_shift']}"),
    ]

    figures = make_figures(out_dir / "figures", mult, add, cfg, key=k_fig)
    figures = [str(Path(f).relative_to(out_dir)) for f in figures]

    metrics = {
        "multiplicative": {
            "hopf_n": n_h,
            "hopf_n_error": abs(n_h - hopf_expected),
            "hopf_point": hopf.point if hopf else None,
            "hopf_eigenvalues": hopf.eigenvalues if hopf else None,
            "hopf_frequency": hopf.frequency if hopf else None,
            "max_eigenvalue_error": float(np.nanmax(mult["eig_err"])),
            "max_fixed_point_norm": max(origin_dev, branch_dev),
            "amplitude_exponent": mult["exponent"],
            "amplitude_prefactor": mult["prefactor"],
            "amplitude_correction": mult["correction"],
            "amplitude_at_onset": amp_onset,
            "amplitude_at_onset_theory": amp_theory,
            "period_at_onset": period_onset,
            "period_expected": period_expected,
            "simulated_n": mult["sim_n"],
            "amplitude": mult["amplitude"],
            "mean_activity_norm": np.linalg.norm(mult["mean"], axis=1),
            "period": mult["period"],
            "branch_bifurcations": _bif_rows(mult["branch"]),
            "fixed_point_search": mult["fps_report"].summary(),
        },
        "additive": {
            "n": add["n_add"],
            "hopf_r3": r3_h,
            "hopf_point": add_hopfs[0].point if add_hopfs else None,
            "dr_dr3_numeric": add["slope_num"],
            "dr_dr3_closed_form": add["slope_closed"],
            "bifurcations": {f"n={n}": _bif_rows(br) for n, br in add["branches"].items()},
            "simulated_r3": add["sim_r3"],
            "amplitude": add["amplitude"],
            "mean_activity": add["mean"],
            "mean_shift_across_hopf": mean_shift,
            "max_abs_trace_at_hopf": trace_err,
            "max_abs_det_at_fold": det_err,
        },
    }
    settings = dict(cfg, W=TWO_NEURON_W, tolerances=_TOL, seed=seed,
                    integrator="RK4, attractor measured over the second half of each run",
                    continuation="pseudo-arclength, Newton corrector, bisection on the critical eigenvalue")
    notes = _notes(mult, add, cfg)
    return dict(checks=checks, metrics=metrics, settings=settings, figures=figures, notes=notes,
                criterion="every check passes")


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def _field_np(X, Y, n, r3):
    """The field on a grid in NumPy (no compilation needed for drawing)."""
    W = np.asarray(TWO_NEURON_W)
    a1 = n * (W[0, 0] * X + W[0, 1] * Y) + r3
    a2 = n * (W[1, 0] * X + W[1, 1] * Y) + r3
    return -X + np.tanh(a1), -Y + np.tanh(a2)


def make_figures(fig_dir: Path, mult: dict, add: dict, cfg: dict, *, key) -> list[Path]:
    """Phase portraits, eigenvalues along n, and the bifurcation diagrams. Returns the PNG paths."""
    from ..plotting._common import plt, save
    from ..plotting.phase import (
        FieldGrid,
        draw_field,
        draw_fixed_points,
        draw_trajectories,
        point_labels,
    )

    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    lim = (-1.15, 1.15)

    # 1. phase portraits: top row n (r3 = 0), bottom row r3 (n fixed)
    panels = [(n, 0.0) for n in cfg["portrait_n"]] + [(add["n_add"], r3) for r3 in cfg["portrait_r3"]]
    g = np.linspace(-1.1, 1.1, cfg["portrait_grid"])
    grid_inits = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    grid_inits = grid_inits + 0.01 * np.asarray(jr.normal(key, grid_inits.shape))
    inits = np.tile(grid_inits, (len(panels), 1))
    u = np.repeat(np.asarray(panels), len(grid_inits), axis=0)
    fps = find_fixed_points(_field_nu, inits, u, kind="flow", outlier_distance_scale=None)
    stats, tails = simulate_attractors([p[0] for p in panels], [p[1] for p in panels],
                                       dt=cfg["sim_dt"], total_time=cfg["sim_time"])
    res = cfg["portrait_resolution"]
    xs = np.linspace(*lim, res)
    X, Y = np.meshgrid(xs, xs)
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 8.4))
    for ax, (n, r3), st, tail in zip(axes.ravel(), panels, stats, tails, strict=True):
        U, V = _field_np(X, Y, n, r3)
        draw_field(ax, FieldGrid(X, Y, U, V), color_by="direction", density=cfg["stream_density"])
        if st.oscillating:
            draw_trajectories(ax, tail, color="k", lw=2.2)
        sel = np.flatnonzero(np.all(np.isclose(fps.inputs, [n, r3]), axis=1))
        labels = point_labels(fps)
        draw_fixed_points(ax, fps.points[sel], [labels[i] for i in sel], legend=False)
        ax.plot(*st.mean, marker="+", color="magenta", ms=14, mew=2.5, zorder=6)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_xlabel("$r_1$")
        ax.set_ylabel("$r_2$")
        state = "limit cycle" if st.oscillating else "fixed point"
        ax.set_title(f"n = {n:g}, $r_3$ = {r3:g}: {state}", fontsize=10)
    handles = [
        plt.Line2D([], [], ls="", marker=FP_MARK[k][0], markerfacecolor=FP_MARK[k][1], markeredgecolor="k", ms=8, label=k)
        for k in FP_MARK
    ] + [plt.Line2D([], [], color="k", lw=2.2, label="limit cycle"),
         plt.Line2D([], [], ls="", marker="+", color="magenta", ms=12, mew=2.5, label="mean activity")]
    fig.legend(handles=handles, loc="lower center", ncol=7, frameon=False)
    fig.suptitle(
        "2-neuron RNN, dr/dt = -r + tanh(n W r + $r_3$). Top: multiplicative n ($r_3$ = 0), Hopf at the "
        f"origin at n = {mult['n_hopf']:.4f}.\nBottom: additive $r_3$ (n = {add['n_add']:g}): the fixed point "
        "and the oscillation's centre move. Streamline colour = flow direction.",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    paths.append(save(fig, fig_dir / "phase_portraits.png", dpi=cfg["dpi"]))

    # 2. eigenvalues of the origin along n
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    n_fine = np.linspace(*cfg["n_range"], 200)
    closed = two_neuron_origin_eigenvalues(n_fine)
    ax.plot(n_fine, closed[:, 0].real, "k-", lw=1, label="closed form Re = 2n - 1")
    ax.plot(n_fine, closed[:, 0].imag, "k--", lw=1, label="closed form Im = +/- n")
    ax.plot(n_fine, closed[:, 1].imag, "k--", lw=1)
    ax.plot(mult["n_grid"], mult["eigs"][:, 0].real, "o", color="tab:blue", ms=4, label="numerical Re")
    ax.plot(mult["n_grid"], mult["eigs"][:, 0].imag, "s", color="tab:orange", ms=4, label="numerical Im")
    ax.plot(mult["n_grid"], mult["eigs"][:, 1].imag, "s", color="tab:orange", ms=4)
    ax.axvline(mult["n_hopf"], color="tab:red", lw=1, label=f"Hopf (continuation) n = {mult['n_hopf']:.5f}")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_xlabel("gain n")
    ax.set_ylabel("eigenvalue of the origin")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Origin (r3 = 0): eigenvalues (2n - 1) +/- i n")
    paths.append(save(fig, fig_dir / "eigenvalues.png", dpi=cfg["dpi"]))

    # 3. bifurcation diagrams
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    fit = mult["fit_idx"]
    ax.plot(mult["sim_n"], mult["amplitude"], "o", color="tab:blue", ms=4, label="simulated")
    nn = np.linspace(mult["n_hopf"], mult["n_hopf"] + 0.12, 100)  # the theory holds near onset only
    ax.plot(nn, two_neuron_cycle_radius(nn), "k--", lw=1.2,
            label="weakly nonlinear theory $\\rho^2 = (2n-1)/(2.5 n^3)$ (near onset)")
    ee = np.linspace(0, 1.5 * max(cfg["fit_offsets"]), 100)
    ax.plot(mult["n_hopf"] + ee, mult["prefactor"] * ee ** mult["exponent"] * (1 + mult["correction"] * ee), "r-",
            lw=1.5, label=f"fit c (n - n_H)^{mult['exponent']:.3f} (1 + k (n - n_H)) on {len(fit)} points near onset")
    ax.axvline(mult["n_hopf"], color="0.5", ls=":")
    ax.set_xlabel("gain n  ($r_3$ = 0)")
    ax.set_ylabel("limit-cycle amplitude")
    ax.set_ylim(-0.03, 1.1)
    ax.set_title("Multiplicative: supercritical Hopf at the origin")
    ax.legend(fontsize=7, frameon=False)

    ax = axes[0, 1]
    ax.plot(add["sim_r3"], add["amplitude"], "o", color="tab:green", ms=4, label="simulated")
    main = add["branches"][add["n_add"]]
    for b in main.of_kind("hopf"):
        ax.axvline(b.param, color="0.5", ls=":", label=f"Hopf at $r_3$ = {b.param:.4f}")
    ax.set_xlabel(f"additive input $r_3$  (n = {add['n_add']:g})")
    ax.set_ylabel("limit-cycle amplitude")
    ax.set_title("Additive: the oscillation ends at a shifted operating point")
    ax.legend(fontsize=7, frameon=False)

    ax = axes[1, 0]
    br = mult["branch"]
    ax.plot(br.params, np.linalg.norm(br.points, axis=1), "k-", lw=1.5, label="|r*| along the branch")
    ax.plot(mult["sim_n"], np.linalg.norm(mult["mean"], axis=1), "o", color="tab:blue", ms=4,
            label="|time-averaged r| of the attractor")
    ax.axvline(mult["n_hopf"], color="0.5", ls=":")
    ax.set_ylim(-0.05, 1.0)
    ax.set_xlabel("gain n  ($r_3$ = 0)")
    ax.set_ylabel("operating point |r|")
    ax.set_title("Multiplicative: the operating point stays at the origin")
    ax.legend(fontsize=7, frameon=False)

    ax = axes[1, 1]
    stable = np.array([s == "stable" for s in main.stability])
    for coord, color in ((0, "tab:purple"), (1, "tab:brown")):
        y = main.points[:, coord]
        ax.plot(main.params, np.where(stable, y, np.nan), "-", color=color, lw=2, label=f"$r_{coord + 1}^*$ (stable)")
        ax.plot(main.params, np.where(~stable, y, np.nan), "--", color=color, lw=1, label=f"$r_{coord + 1}^*$ (unstable)")
    ax.plot(add["sim_r3"], np.linalg.norm(add["mean"], axis=1), "o", color="tab:green", ms=4,
            label="|time-averaged r| of the attractor")
    marks = {"hopf": ("*", "tab:red"), "fold": ("s", "k"), "branch_point": ("D", "k")}
    for b in main.bifurcations:
        mk, col = marks.get(b.kind, ("o", "k"))
        ax.plot([b.param, b.param], b.point, ls="", marker=mk, color=col, ms=9)
        ax.annotate(b.kind, (b.param, b.point[1]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"additive input $r_3$  (n = {add['n_add']:g})")
    ax.set_ylabel("fixed point / operating point")
    ax.set_title("Additive: the fixed point moves; bifurcations away from the origin")
    ax.legend(fontsize=6, frameon=False, loc="lower left")
    fig.tight_layout()
    paths.append(save(fig, fig_dir / "bifurcations.png", dpi=cfg["dpi"]))
    return paths


FP_MARK = {"stable": ("o", "tab:blue"), "unstable": ("o", "white"), "saddle": ("X", "tab:orange"),
           "slow point": ("s", "0.75")}


def _vec(v) -> str:
    return "(" + ", ".join(f"{float(x):.3f}" for x in np.asarray(v)) + ")"


def _bif_text(branch: Branch) -> str:
    return ", ".join(f"{b.kind} at r3 = {b.param:.4f}, r* = {_vec(b.point)}" for b in branch.bifurcations) or "none"


def _notes(mult: dict, add: dict, cfg: dict) -> str:
    main = add["branches"][add["n_add"]]
    other = add["branches"][cfg["paper_additive_n"]]
    k = mult["correction"]
    lines = [
        f"- Along n (r3 = 0) the origin's complex pair crosses Re = 0 at n_H = {mult['n_hopf']:.8f}; the "
        f"fixed point never leaves the origin, and the limit cycle that appears is centred on it with "
        f"amplitude {mult['prefactor']:.3f} (n - n_H)^{mult['exponent']:.3f} (1 {'-' if k < 0 else '+'} "
        f"{abs(k):.2f} (n - n_H)) near onset: a supercritical Hopf. Averaging the cubic term of tanh "
        "predicts radius^2 = (2n - 1) / (2.5 n^3), i.e. 2.530 (n - 1/2)^(1/2) at onset, and an angular "
        "speed b / a = 1/2 on the cycle (period 4 pi).",
        f"- Along r3 at n = {add['n_add']} the fixed point leaves the origin at once (dr*/dr3 = "
        f"{_vec(add['slope_num'])} at r3 = 0, closed form (I - n W)^-1 1 = {_vec(add['slope_closed'])}); "
        f"bifurcations found: {_bif_text(main)}. The Hopf lies on the circle |r*|^2 = 2 - 1/n where the "
        "trace of the Jacobian vanishes; the folds are where its determinant does.",
        f"- The paper's example n = {cfg['paper_additive_n']}: {_bif_text(other)} (r3 in "
        f"{list(cfg['r3_range'])}; the system is odd-symmetric, so r3 -> -r3 mirrors them).",
        "- The paper states the results analytically and shows phase portraits (its Fig. 3B); it gives "
        "no numbers beyond n_H = 1/2 and the eigenvalues, so the amplitude law, the additive Hopf at "
        f"n = {add['n_add']} and the fold points are this study's measurements, not the paper's.",
    ]
    return "\n".join(lines)


__all__ = ["PROFILES", "additive_study", "multiplicative_study", "run", "simulate_attractors"]
