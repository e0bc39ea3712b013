"""The LIF rate curve (eq. 9) and the rate reduction (eq. 12-21) of paper 000, supplement section 1.

What is computed
----------------
*Rate curve.* Single LIF neurons (default constants of :mod:`nmrnn.spiking.lif`; thresholds
``V_th`` in a grid, the reset fixed) under constant currents are simulated and their rates measured
from exact spike times; the closed form :func:`nmrnn.spiking.lif_rate` (eq. 9 with the refractory
period) is compared with them, and the paper's eq. 9 in its own units
(:func:`nmrnn.activations.lif_rate`, no refractory period) with the closed form at
``tau_ref = 0``. From the *simulated* curves, the three effects of a lower threshold (higher
excitability) that the paper lists under its Fig. 1: (1) a lower rheobase, (2) a steeper
linear regime (slope of a straight-line fit between 20% and 60% of the maximal rate
``1 / tau_ref``), (3) the saturation (80% of the maximal rate) reached at a smaller current.

*Rate reduction.* A network of LIF neurons (random recurrent weights and modulatory tensor,
two neuromodulators released per spike, heterogeneous drive and input gains) and its rate model
(:func:`nmrnn.spiking.reduce_network`: ``W = Q_tot W_base``, ``T = Q_tot T_LIF``,
``R = tau_n R_LIF``, ``Z'' = tau_n Z_LIF``, ``f_LIF`` per neuron, ``tau_r = tau_syn``) receive the
same sinusoidal input over a range of periods. After a transient, the population-mean rate
(spiking: mean synaptic trace over ``Q_tot``) and the concentrations of the two are compared:
``rate error`` = RMS difference / standard deviation of the rate model's population rate over time
(0 perfect, 1 no better than its mean), ``NM error`` = RMS difference / RMS of the model's
concentration. The same with the T term dropped from the rate model is reported as a control.

Criteria (fixed before the runs)
--------------------------------
* the simulated rates equal the closed form to a relative error below 1e-3 wherever at least two
  inter-spike intervals fit in the run, and no spike below rheobase; eq. 9 in the paper's units
  equals the closed form at ``tau_ref = 0`` to 1e-5 relative;
* each of the three excitability effects holds between every pair of neighbouring thresholds;
* slow regime: for input periods of at least ``slow_period`` (1 s) both errors at most 0.1;
* breakdown: at the fastest period the rate error exceeds 0.1 and exceeds the slowest period's
  error (the paper cautions that the reduction holds only for slow directions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..activations import lif_rate as paper_lif_rate
from ..spiking import (
    DEFAULT_NEURON,
    LIFNetwork,
    compare_reduction,
    lif_rate,
    measured_rates,
    rheobase,
)
from .profiles import Profiles
from .registry import check, verdict_of

TOL = dict(rate_rel=1e-3, paper_form=1e-5, reduction=0.1)
SLOW_PERIOD = 1000.0  # ms
#: Fewer neurons give a population rate too coarse to decide the reduction checks.
MIN_POPULATION = 100


@dataclass(frozen=True)
class LIFSettings:
    thresholds: tuple[float, ...]  # mV
    max_current: float  # nA
    n_currents: int
    fi_duration: float  # ms
    n_neurons: int
    periods: tuple[float, ...]  # ms
    duration: float  # ms
    transient: float  # ms
    dt: float = 0.1
    dpi: int = 110


PROFILES: Profiles[LIFSettings] = Profiles(
    smoke=LIFSettings(thresholds=(-54.0, -50.0, -46.0), max_current=10.0, n_currents=100, fi_duration=300.0,
                      n_neurons=20, periods=(20.0, 1000.0), duration=1500.0, transient=300.0, dpi=40),
    quick=LIFSettings(thresholds=(-55.0, -52.5, -50.0, -47.5, -45.0), max_current=10.0, n_currents=1001,
                      fi_duration=2000.0, n_neurons=200, periods=(10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0),
                      duration=5000.0, transient=1000.0),
    paper=LIFSettings(thresholds=(-55.0, -52.5, -50.0, -47.5, -45.0), max_current=10.0, n_currents=2001,
                      fi_duration=5000.0, n_neurons=400,
                      periods=(5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0),
                      duration=12000.0, transient=2000.0),
)


def reduction_network(n_neurons: int, key, *, dt: float = 0.1) -> LIFNetwork:
    """The network of the reduction check: ``N`` LIF neurons (``tau_syn = 10`` ms), weights
    ``N(0, 1/N)`` nA ms, two NMs (``tau_n`` 100 and 300 ms, rotating interaction ``Z``) each
    released by every neuron (uniform up to 2e-4 per spike) and gating the synapses through
    ``T_k = N(+-3/N, 1/N)`` (the first NM strengthens, the second weakens the synapses on
    average, so the concentrations move the population rate), drive ``b`` uniform in [0.2, 0.3]
    nA around the rheobase of 0.2 nA and one input with gains uniform in [0.05, 0.15] nA."""
    N, M = n_neurons, 2
    k = jr.split(key, 5)
    W = jr.normal(k[0], (N, N)) / np.sqrt(N)
    T = jr.normal(k[1], (M, N, N)) / np.sqrt(N) + jnp.array([3.0, -3.0])[:, None, None] / N
    R = jr.uniform(k[2], (M, N)) * 2e-4
    Z = np.array([[0.0, -0.002], [0.002, 0.0]])
    b = jr.uniform(k[3], (N,), minval=0.2, maxval=0.3)
    U = jr.uniform(k[4], (N, 1), minval=0.05, maxval=0.15)
    return LIFNetwork(W, T, U, b, R, Z, tau_n=np.array([100.0, 300.0]), tau_syn=10.0, dt=dt)


def rate_curves(thresholds, currents, duration: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Simulated and closed-form rates (Hz), ``(len(thresholds), len(currents))``: one
    uncoupled neuron per threshold, a batch entry per current."""
    th = np.asarray(thresholds, dtype=float)
    net = LIFNetwork(np.zeros((len(th), len(th))), U=np.ones((len(th), 1)), V_th=th, dt=dt)
    steps = int(round(duration / dt))
    inputs = jnp.broadcast_to(jnp.asarray(currents, dtype=jnp.float32)[:, None, None], (len(currents), steps, 1))
    traj, _ = net.simulate(inputs)
    simulated = measured_rates(traj.spike_time).T * 1000.0
    closed = np.asarray(lif_rate(np.asarray(currents)[None, :], V_th=th[:, None])) * 1000.0
    return simulated, closed


def excitability_features(currents: np.ndarray, rates: np.ndarray, max_rate: float) -> dict[str, float]:
    """Rheobase (first current with a rate), slope of a line fitted between 20% and 60% of
    ``max_rate`` (Hz per nA), and the current where the rate first reaches 80% of ``max_rate``
    (linear interpolation) of one rate curve."""
    firing = np.nonzero(rates > 0)[0]
    rheo = float(currents[firing[0]]) if firing.size else float("nan")
    band = (rates >= 0.2 * max_rate) & (rates <= 0.6 * max_rate)
    slope = float(np.polyfit(currents[band], rates[band], 1)[0]) if band.sum() >= 2 else float("nan")
    above = np.nonzero(rates >= 0.8 * max_rate)[0]
    if above.size and above[0] > 0:
        i = above[0]
        c0, c1, r0, r1 = currents[i - 1], currents[i], rates[i - 1], rates[i]
        sat = float(c0 + (0.8 * max_rate - r0) * (c1 - c0) / (r1 - r0))
    else:
        sat = float("nan")
    return {"rheobase": rheo, "slope": slope, "saturation_current": sat}


def reduction_checks(periods, rate_error, nm_error, n_neurons: int = MIN_POPULATION) -> list[dict]:
    """The two reduction checks from the errors per input period (``nm_error``: per period and
    NM); undecided for a population smaller than :data:`MIN_POPULATION`."""
    periods, rate_error, nm_error = np.asarray(periods, float), np.asarray(rate_error, float), np.asarray(nm_error, float)
    tol = TOL["reduction"]
    slow = periods >= SLOW_PERIOD
    slow_rate = float(np.max(rate_error[slow])) if slow.any() else float("nan")
    slow_nm = float(np.max(nm_error[slow])) if slow.any() else float("nan")
    fast_rate = float(rate_error[np.argmin(periods)])
    slowest_rate = float(rate_error[np.argmax(periods)])
    return [
        check("reduction holds for slow input", {"rate_error": slow_rate, "nm_error": slow_nm},
              bool(slow_rate <= tol and slow_nm <= tol),
              f"rate and NM errors <= {tol:g} for every period >= {SLOW_PERIOD:g} ms",
              decided=bool(slow.any()) and n_neurons >= MIN_POPULATION),
        check("reduction breaks for fast input", {"fastest_period": float(periods.min()), "rate_error": fast_rate,
              "slowest_period_rate_error": slowest_rate},
              bool(fast_rate > tol and fast_rate > slowest_rate),
              f"rate error at the fastest period > {tol:g} and > the slowest period's",
              decided=bool(periods.min() < SLOW_PERIOD) and n_neurons >= MIN_POPULATION),
    ]


def run(out_dir: Path, profile: str, seed: int) -> dict[str, Any]:
    s = PROFILES[profile]
    out = Path(out_dir)
    key = jr.PRNGKey(seed)
    nd = DEFAULT_NEURON

    # -- the rate curve ---------------------------------------------------------------------
    currents = np.linspace(0.0, s.max_current, s.n_currents)
    simulated, closed = rate_curves(s.thresholds, currents, s.fi_duration, s.dt)
    isi = np.where(closed > 0, 1000.0 / np.maximum(closed, 1e-12), np.inf)
    measurable = isi * 3 <= s.fi_duration  # at least two intervals after the first spike
    rel = np.abs(simulated - closed) / np.maximum(closed, 1e-12)
    max_rel = float(np.max(rel[measurable])) if measurable.any() else float("nan")
    below = np.asarray(currents)[None, :] <= np.asarray(rheobase(V_th=np.asarray(s.thresholds)))[:, None]
    spikes_below = int(np.sum(simulated[below] > 0))
    # eq. 9 in the paper's units against the closed form without refractory period
    k = nd["g_L"] / nd["C_m"]
    grid = np.linspace(0.21, s.max_current, 200)
    with jax.enable_x64(True):  # an identity of two closed forms: compare them in float64
        paper_form = np.asarray(paper_lif_rate(jnp.asarray(grid / nd["C_m"]), k=k, threshold=nd["V_th"] - nd["E_L"],
                                               v_reset=nd["V_reset"] - nd["E_L"]))
        ours = np.asarray(lif_rate(jnp.asarray(grid), tau_ref=0.0))
    paper_form_err = float(np.max(np.abs(paper_form - ours) / ours))
    max_rate = 1000.0 / nd["tau_ref"]
    feats = [excitability_features(currents, simulated[i], max_rate) for i in range(len(s.thresholds))]

    def ordered(name):  # thresholds ascend, so a lower threshold = an earlier entry
        v = np.array([f[name] for f in feats])
        return bool(np.all(np.isfinite(v))) and bool(np.all(np.diff(v) > 0) if name != "slope" else np.all(np.diff(v) < 0)), v

    # the current grid must resolve the rheobases of neighbouring thresholds to decide the order
    resolved = bool(currents[1] - currents[0] < np.min(np.diff(np.asarray(rheobase(V_th=np.asarray(s.thresholds))))))
    rheo_ok, rheo_v = ordered("rheobase")
    slope_ok, slope_v = ordered("slope")
    sat_ok, sat_v = ordered("saturation_current")

    # -- the reduction ----------------------------------------------------------------------
    net = reduction_network(s.n_neurons, jr.fold_in(key, 1), dt=s.dt)
    periods = np.asarray(s.periods, dtype=float)
    t = np.arange(int(round(s.duration / s.dt))) * s.dt
    inputs = jnp.asarray(np.sin(2 * np.pi * t[None, :] / periods[:, None])[..., None], dtype=jnp.float32)
    errs = compare_reduction(net, inputs, transient=s.transient, key=jr.fold_in(key, 2))
    control = compare_reduction(net, inputs, transient=s.transient, key=jr.fold_in(key, 2), modulated=False)
    nm_rel, nm_rel_control = errs.nm_rel, control.nm_rel

    checks = [
        check("simulated rates = closed form (eq. 9 with refractory period)", {"max_relative_error": max_rel,
              "spikes_below_rheobase": spikes_below},
              bool(max_rel < TOL["rate_rel"]) and spikes_below == 0,
              f"max relative error < {TOL['rate_rel']:g} where >= 2 intervals fit in the run; no spike below rheobase",
              decided=bool(measurable.any())),
        check("eq. 9 in the paper's units = closed form at tau_ref = 0", paper_form_err,
              paper_form_err < TOL["paper_form"], f"max relative difference < {TOL['paper_form']:g}"),
        check("(1) higher excitability (lower threshold): lower rheobase", rheo_v.tolist(), rheo_ok,
              "rheobase of the simulated curve increases with the threshold", decided=resolved),
        check("(2) higher excitability: steeper linear regime", slope_v.tolist(), slope_ok,
              "slope of the 20-60% band decreases with the threshold", decided=resolved),
        check("(3) higher excitability: saturation at a smaller current", sat_v.tolist(), sat_ok,
              "current reaching 80% of 1/tau_ref increases with the threshold",
              decided=resolved and bool(np.all(np.isfinite(sat_v)))),
    ] + reduction_checks(periods, errs.rate_nrmse, nm_rel, s.n_neurons)
    figures = _figures(out, s, currents, simulated, closed, periods, errs, control, nm_rel, nm_rel_control)
    table = "\n".join(
        ["| input period (ms) | rate error | NM error (n_1, n_2) | rate error without T | population rate (Hz) |",
         "| --- | --- | --- | --- | --- |"]
        + [f"| {p:g} | {e:.3f} | {nm[0]:.3f}, {nm[1]:.3f} | {c:.3f} | {1000 * r.mean():.1f} |"
           for p, e, nm, c, r in zip(periods, errs.rate_nrmse, nm_rel, control.rate_nrmse, errs.model_rate, strict=True)]
    )
    feat_table = "\n".join(
        ["| V_th (mV) | rheobase (nA) | slope 20-60% (Hz/nA) | 80% of max at (nA) |", "| --- | --- | --- | --- |"]
        + [f"| {th:g} | {f['rheobase']:.3f} | {f['slope']:.1f} | {f['saturation_current']:.3f} |"
           for th, f in zip(s.thresholds, feats, strict=True)]
    )
    return {
        "checks": checks,
        "verdict": verdict_of(checks),
        "metrics": {
            "rate_curve": {"max_relative_error": max_rel, "spikes_below_rheobase": spikes_below,
                           "paper_form_error": paper_form_err, "features": dict(zip(map(str, s.thresholds), feats, strict=True))},
            "reduction": {"periods_ms": periods, "rate_error": errs.rate_nrmse, "nm_error": nm_rel,
                          "rate_relative_to_mean": errs.rate_rel, "rate_error_without_T": control.rate_nrmse,
                          "nm_error_without_T": nm_rel_control,
                          "mean_rate_hz": 1000 * errs.model_rate.mean(-1)},
        },
        "settings": {"profile": profile, **asdict(s), "neuron": nd, "tolerances": TOL, "slow_period_ms": SLOW_PERIOD,
                     "network": reduction_network.__doc__.split("\n\n")[0].replace("\n", " ").strip()},
        "figures": figures,
        "notes": "Excitability from the simulated rate curves:\n\n" + feat_table
        + "\n\nRate reduction against the input's timescale (errors after the transient):\n\n" + table,
    }


def _figures(out, s, currents, simulated, closed, periods, errs, control, nm_rel, nm_rel_control) -> list[str]:
    from ..plotting._common import plt, save

    paths = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(s.thresholds)))
    step = max(1, len(currents) // 60)
    for i, th in enumerate(s.thresholds):
        ax.plot(currents, closed[i], color=colors[i], lw=1.2, label=f"V_th = {th:g} mV")
        ax.plot(currents[::step], simulated[i, ::step], "o", ms=2.5, color=colors[i])
    ax.set_xlabel("input current (nA)")
    ax.set_ylabel("rate (Hz)")
    ax.set_title("LIF rate curve: closed form (lines), simulated (dots)")
    ax.legend(frameon=False, fontsize=7)
    paths.append(save(fig, out / "rate_curve.png", dpi=s.dpi))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(periods, errs.rate_nrmse, "o-", label="population rate")
    for k in range(nm_rel.shape[-1]):
        ax.loglog(periods, nm_rel[:, k], "s--", label=f"n_{k + 1}")
    ax.loglog(periods, control.rate_nrmse, "x:", color="0.4", label="rate, model without T")
    ax.axhline(TOL["reduction"], color="0.6", lw=0.8)
    ax.set_xlabel("input period (ms)")
    ax.set_ylabel("error of the rate model")
    ax.legend(frameon=False, fontsize=7)
    paths.append(save(fig, out / "reduction_error.png", dpi=s.dpi))

    rows = [int(np.argmin(periods)), int(np.argmax(periods))]
    fig, axes = plt.subplots(2, 2, figsize=(9, 5), squeeze=False)
    for c, i in enumerate(rows):
        axes[0, c].plot(errs.times, 1000 * errs.spiking_rate[i], lw=0.8, label="spiking (traces / Q_tot)")
        axes[0, c].plot(errs.times, 1000 * errs.model_rate[i], lw=1.2, label="rate model")
        axes[0, c].set_title(f"input period {periods[i]:g} ms")
        axes[0, c].set_ylabel("population rate (Hz)")
        for k in range(errs.spiking_n.shape[-1]):
            axes[1, c].plot(errs.times, errs.spiking_n[i, :, k], lw=0.8)
            axes[1, c].plot(errs.times, errs.model_n[i, :, k], "--", lw=1.2)
        axes[1, c].set_xlabel("time (ms)")
        axes[1, c].set_ylabel("NM (solid spiking, dashed rate)")
    axes[0, 0].legend(frameon=False, fontsize=7)
    paths.append(save(fig, out / "reduction_traces.png", dpi=s.dpi))
    return [str(p.relative_to(out)) for p in paths]
