"""R7: sine-curve meta-learning (e-nmRNN paper 000, supplement section 9.1 and Fig. 3C).

The claim: trained in the continual regime (every batch of 16 curves fresh) at learning rates
tuned per model class by a TPE search (objective: the held-out loss after 1000 updates), the
e-nmRNN takes many fewer updates than the baselines to reach high performance, the spatially
embedded (exponentially distance-weighted) e-nmRNN improves on it, and the "epiphany" -- the drop
of the validation loss -- coincides with the emergence of the oscillation (the network crossing
its Hopf bifurcation for ``A > 0`` while staying at rest for ``A = 0``).

What runs
---------
Seven parameter-matched models (the first entry fixes the count; :func:`nmrnn.models.match_size`
sizes the rest): the e-nmRNN (ReLU-Tanh, 4 NMs), the same e-nmRNN with its neurons on a 3-D grid
and the recurrent weights masked by ``exp(-d / lambda)``, ``lambda`` = 10% of the grid's largest
side (:mod:`nmrnn.spatial`), a vanilla RNN, a GRU, an LSTM, an NM-RNN (16 NM units, rank 4) and a
coRNN. Every seed of every model is a run directory of one comparison
(:func:`nmrnn.experiments.compare.run_compare`: a grid, so ``--workers`` apply), trained with Adam
(global-norm clip 1) on fresh batches of 16, keeping its model every ``keep_every`` updates
(``TrainConfig.keep_every``) for the analyses over training.

Learning rates: the paper profile first runs a TPE search over ``lr`` in [1e-4, 3e-2] (log) for
each model (:mod:`nmrnn.experiments.sweep`; objective ``heldout/loss`` after
:attr:`SineMetaSettings.sweep_updates` updates, one seed per trial) and trains with the best
one; its result is stored in the output folder (``learning_rates.json``) and reused when the
profile runs again. The quick profile reuses the stored result of the same search at its own sizes
(``sine_meta_lr.json`` next to this module, made by ``nmrnn reproduce sine-meta --search
--profile quick``; its settings, trial count and date are stored with it and reported). The smoke
profile uses one fixed rate.

Measurements (per seed)
-----------------------
* **Learning curve**: the training loss of every update. In the continual regime each batch is
  new, so it is a held-out estimate; the held-out loss of the task's fixed held-out batch (256
  curves) is also computed at every kept model.
* **Updates to threshold**: the first update at which the training loss, smoothed over
  :data:`SMOOTH` updates, falls to :data:`THRESHOLD_FRACTION` of the loss of predicting zero on
  the held-out batch (the mean squared target, about 1/12); a run that never gets there counts as
  the budget plus one (censored).
* **Oscillation** of a kept model on the held-out curves, over the second half of each trial: the
  *ratio* is the mean over curves with ``A >= 0.5`` of ``std_t(y) / std_t(y*)`` (1: the right
  amplitude; 0: no oscillation), and the *rest amplitude* is the mean over curves with ``A = 0``
  of ``std_t(y)`` (0: at rest).

Checks (criteria fixed here before any run; never loosened afterwards)
--------------------------------------------------------------------
(a) **fewer updates**: for each baseline, the e-nmRNN's updates to threshold are smaller (one-sided
    exact rank test over seeds, :func:`nmrnn.experiments.statistics.rank_test`, p < 0.05; with too
    few seeds for the test to reach 0.05 the check is undecided);
(b) **spatial embedding helps**: the spatially embedded e-nmRNN's updates to threshold are smaller
    than the plain e-nmRNN's (the same test);
(c) **Hopf: rest and oscillation**: for the trained e-nmRNN, the median over seeds of the rest
    amplitude is at most :data:`REST_MAX` and the median oscillation ratio at least
    :data:`OSCILLATION_MIN`;
(d) **epiphany**: for every e-nmRNN seed, the update at which the held-out loss first falls below
    the geometric midpoint of the plateau (the loss of predicting zero, where every model sits
    before it learns to oscillate) and its last value, and the update at which the oscillation
    ratio first reaches half its last value, are at most :data:`EPIPHANY_WINDOW` x the budget
    apart (the median over seeds of that distance is the checked value). The first version of
    this definition took the midpoint of the held-out loss's *first* and last values; the first
    value is the untrained network's, which can be far above the plateau (0.1 to 15 in the first
    quick run), so that version timed the initial transient, not the epiphany, and was corrected
    to the plateau before any verdict was recorded; the tolerance is unchanged.

(c) and (d) are undecided when no e-nmRNN seed reached the threshold (a network that did not
learn the task says nothing about how it learned it); every check is undecided at the smoke
profile's size. The report says which clauses a profile can decide.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models import simulate
from ..tasks.sine import SineMetaLearning, updates_to_threshold
from ..train.checkpoint import atomic_write_json
from ..train.run import load_run, load_snapshots, read_curve
from .compare import ModelEntry, grid_arguments, resolve_sizes, run_compare, slug
from .grid import GridOptions
from .profiles import Profiles, search_and_store
from .registry import check, verdict_of
from .statistics import ALPHA, rank_test

THRESHOLD_FRACTION = 0.2  # (a), (b): threshold = this x the loss of predicting zero
SMOOTH = 100  # updates of the running mean of the training loss
REST_MAX = 0.05  # (c): largest rest amplitude (std of the output) for A = 0
OSCILLATION_MIN = 0.5  # (c): smallest oscillation ratio for A >= 0.5
EPIPHANY_WINDOW = 0.1  # (d): largest distance of the two onsets, as a fraction of the budget
OSCILLATING_A = 0.5  # curves with A >= this measure the oscillation ratio
LR_RANGE = (1e-4, 3e-2)  # the TPE search range of the learning rate (log-uniform)
STORED = Path(__file__).with_name("sine_meta_lr.json")
E_NM, E_NM_SPATIAL = "e-nmRNN", "e-nmRNN spatial"
BASELINES = ("vanilla RNN", "GRU", "LSTM", "NM-RNN", "coRNN")


@dataclass(frozen=True)
class SineMetaSettings:
    n_hidden: int  # e-nmRNN neurons (the count every other model is matched to)
    spatial_grid: tuple[int, int, int]  # the spatial variant's grid (holds n_hidden neurons)
    updates: int
    seeds: int
    keep_every: int  # updates between kept models
    lr: str | float = "stored"  # "stored": the stored search at these sizes; "tune": search now; a number: fixed
    n_nm: int = 4
    sweep_trials: int = 40
    sweep_updates: int = 1000
    batch_size: int = 16


PROFILES = Profiles(
    smoke=SineMetaSettings(n_hidden=8, spatial_grid=(2, 2, 2), updates=40, seeds=1, keep_every=20, lr=3e-3, n_nm=2),
    quick=SineMetaSettings(n_hidden=32, spatial_grid=(4, 4, 2), updates=4000, seeds=4, keep_every=100, sweep_trials=16),
    paper=SineMetaSettings(n_hidden=128, spatial_grid=(8, 4, 4), updates=10_000, seeds=10, keep_every=250, lr="tune"),
)


def model_entries(s: SineMetaSettings, lrs: dict[str, float] | None = None) -> list[ModelEntry]:
    """The seven models of R7 (the e-nmRNN first: every other size is matched to its count), each
    with its learning rate from ``lrs`` (label -> lr) and the kept models over training."""
    train = {"optimizer": "adam", "clip": 1.0, "batch_size": s.batch_size, "keep_every": s.keep_every,
             "steps_per_call": s.keep_every, "checkpoint_every": max(s.keep_every, s.updates // 10)}
    enm = {"n_nm": s.n_nm, "activation": "relutanh"}
    base = [
        ModelEntry(E_NM, "enmrnn", s.n_hidden, enm),
        ModelEntry(E_NM_SPATIAL, "enmrnn", s.n_hidden, {**enm, "spatial_grid": list(s.spatial_grid)}),
        ModelEntry("vanilla RNN", "vanilla", None, {}),
        ModelEntry("GRU", "gru", None, {}),
        ModelEntry("LSTM", "lstm", None, {}),
        ModelEntry("NM-RNN", "nmrnn", None, {"n_nm": 16, "rank": 4}),
        ModelEntry("coRNN", "cornn", None, {}),
    ]
    out = []
    for e in base:
        lr = {} if lrs is None else {"lr": float(lrs[e.label])}
        out.append(ModelEntry(e.label, e.model, e.n_hidden, e.options, None, {**train, **lr}))
    return out


# ----------------------------------------------------------------------------------------------
# learning rates: the TPE search, stored
# ----------------------------------------------------------------------------------------------


def _search_key(s: SineMetaSettings) -> dict[str, Any]:
    """What a stored search must match to be reused: the sizes and the objective."""
    return {"n_hidden": s.n_hidden, "n_nm": s.n_nm, "spatial_grid": list(s.spatial_grid),
            "sweep_updates": s.sweep_updates, "batch_size": s.batch_size}


def tune_learning_rates(s: SineMetaSettings, out_dir: Path, *, seed: int = 0, grid: GridOptions | None = None,
                        log=None) -> dict[str, Any]:
    """The TPE search of each model's learning rate at the sizes of ``s``: one sweep per model
    (``out_dir/sweeps/<model>``; resumable), objective ``heldout/loss`` after ``s.sweep_updates``
    updates. Returns ``{"lr": {label: best lr}, "best_value": ..., "settings": ...}``."""
    from .sweep import ParamSpec, SweepSpec, run_sweep

    task = SineMetaLearning()
    sized = resolve_sizes(model_entries(s), task.n_in, task.n_out)
    grid = grid or GridOptions()
    lrs, values = {}, {}
    for entry, n_hidden, _ in sized:
        train = {k: v for k, v in entry.train.items() if k not in ("keep_every",)}
        train.update(steps=s.sweep_updates, steps_per_call=min(250, s.sweep_updates),
                     checkpoint_every=s.sweep_updates)
        spec = SweepSpec(model=entry.model, task="sine", n_hidden=n_hidden, model_options=dict(entry.options),
                         train=train, metric="heldout/loss", direction="minimize", n_trials=s.sweep_trials,
                         seeds_per_trial=1, sampler="TPESampler", study_seed=seed,
                         params=(ParamSpec("train.lr", "float", LR_RANGE[0], LR_RANGE[1], log=True),))
        summary = run_sweep(spec, out_dir / "sweeps" / slug(entry.label), workers=grid.workers, force=grid.force,
                            figures=False, log=log)
        if not summary["best"]:
            raise RuntimeError(f"the learning-rate search of {entry.label} finished no trial")
        lrs[entry.label] = float(summary["best"][0]["params"]["train.lr"])
        values[entry.label] = float(summary["best"][0]["value"])
    return {"lr": lrs, "best_value": values, "settings": {**_search_key(s), "sweep_trials": s.sweep_trials,
            "lr_range": list(LR_RANGE), "objective": f"heldout/loss after {s.sweep_updates} updates"},
            "date": datetime.date.today().isoformat()}


def learning_rates(s: SineMetaSettings, profile: str, out_dir: Path, seed: int, grid: GridOptions | None) -> tuple[dict[str, float], str]:
    """Each model's learning rate for this profile and a sentence saying where it came from."""
    labels = [e.label for e in model_entries(s)]
    if isinstance(s.lr, float | int) and not isinstance(s.lr, bool):
        return {k: float(s.lr) for k in labels}, f"one fixed learning rate, {s.lr:g}, for every model (no search at this profile)"
    if s.lr == "tune":
        saved = out_dir / "learning_rates.json"
        if saved.exists():
            found = json.loads(saved.read_text())
            if found.get("settings", {}).get("sweep_trials") == s.sweep_trials and all(
                    found["settings"].get(k) == v for k, v in _search_key(s).items()):
                return found["lr"], f"the TPE search of this folder ({saved.name}, {s.sweep_trials} trials per model)"
        found = tune_learning_rates(s, out_dir, seed=seed, grid=grid)
        atomic_write_json(saved, found)
        return found["lr"], f"a TPE search run by this profile ({s.sweep_trials} trials per model; {saved.name})"
    stored = json.loads(STORED.read_text()).get(profile)
    if stored is None or any(stored["settings"].get(k) != v for k, v in _search_key(s).items()):
        raise ValueError(f"no stored learning-rate search for the {profile} profile's sizes in {STORED.name}; "
                         f"run nmrnn reproduce sine-meta --search --profile {profile}")
    st = stored["settings"]
    return stored["lr"], (f"the stored TPE search at these sizes ({STORED.name}: {st['sweep_trials']} trials per model, "
                          f"objective {st['objective']}, {stored['date']})")


# ----------------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------------


def oscillation(model, batch) -> dict[str, float]:
    """Held-out loss, oscillation ratio (curves with ``A >= 0.5``) and rest amplitude (``A = 0``)
    of ``model`` on ``batch`` (see the module docstring)."""
    y = np.asarray(simulate(model, batch.inputs).outputs)[..., 0]
    return oscillation_of(y, np.asarray(batch.targets)[..., 0], np.asarray(batch.info["amplitude"]))


def oscillation_of(y: np.ndarray, target: np.ndarray, amp: np.ndarray) -> dict[str, float]:
    """:func:`oscillation` from outputs ``y`` and targets ``(B, T)`` and amplitudes ``(B,)``."""
    half = y.shape[1] // 2
    sd_y, sd_t = y[:, half:].std(axis=1), target[:, half:].std(axis=1)
    big, rest = amp >= OSCILLATING_A, amp == 0
    return {"loss": float(np.mean((y - target) ** 2)),
            "ratio": float(np.mean(sd_y[big] / sd_t[big])) if big.any() else math.nan,
            "rest": float(np.mean(sd_y[rest])) if rest.any() else math.nan}


def epiphany(steps: np.ndarray, loss: np.ndarray, ratio: np.ndarray, plateau: float) -> dict[str, float | None]:
    """The update at which the held-out ``loss`` first falls below the geometric midpoint of the
    ``plateau`` (the loss of predicting zero) and its last value, and the one at which the
    oscillation ``ratio`` first reaches half its last value (``None`` when one never happens: a
    network that never learns or never oscillates)."""
    steps, loss, ratio = (np.asarray(a, dtype=float) for a in (steps, loss, ratio))
    final = loss[-1]
    below = np.flatnonzero(loss <= math.sqrt(plateau * final)) if 0 < final < plateau else np.array([], int)
    t_loss = float(steps[below[0]]) if below.size else None
    final = ratio[-1]
    up = np.flatnonzero(ratio >= 0.5 * final) if np.isfinite(final) and final > 0 else np.array([], int)
    t_osc = float(steps[up[0]]) if up.size else None
    return {"loss_drop": t_loss, "oscillation_onset": t_osc}


def measure_run(run_dir: Path, batch, threshold: float, budget: int, plateau: float) -> dict[str, Any]:
    """Every per-seed measurement of one run directory (``plateau``: the loss of predicting zero)."""
    losses = read_curve(run_dir)
    reached = updates_to_threshold(losses, threshold, window=min(SMOOTH, losses.size))
    over = [(step, oscillation(model, batch)) for step, model in load_snapshots(run_dir)]
    steps = np.array([s for s, _ in over])
    loss = np.array([o["loss"] for _, o in over])
    ratio = np.array([o["ratio"] for _, o in over])
    final = over[-1][1]
    return {"updates_to_threshold": budget + 1 if reached is None else reached, "reached": reached is not None,
            "final_heldout_loss": final["loss"], "final_ratio": final["ratio"], "final_rest": final["rest"],
            "kept_steps": steps.tolist(), "heldout_loss": loss.tolist(), "oscillation_ratio": ratio.tolist(),
            "rest_amplitude": [o["rest"] for _, o in over], **epiphany(steps, loss, ratio, plateau)}


# ----------------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------------


def sine_meta_checks(per_seed: dict[str, list[dict]], budget: int, *, can_decide: bool = True) -> tuple[list[dict], dict]:
    """R7's checks from the per-seed measurements of every model (labels :data:`E_NM`,
    :data:`E_NM_SPATIAL` and :data:`BASELINES`). ``can_decide=False`` (the smoke profile) makes
    every check undecided."""
    upd = {k: [float(m["updates_to_threshold"]) for m in v] for k, v in per_seed.items()}
    med = {k: float(np.median(v)) for k, v in upd.items()}
    checks = []
    for b in BASELINES:
        p, decidable = rank_test(upd[E_NM], upd[b])
        checks.append(check(f"e-nmRNN needs fewer updates than the {b}",
                            {"median updates": [med[E_NM], med[b]], "p": p},
                            p < ALPHA and med[E_NM] < med[b],
                            f"one-sided exact rank test of the per-seed updates to threshold, p < {ALPHA}",
                            decided=can_decide and decidable))
    p, decidable = rank_test(upd[E_NM_SPATIAL], upd[E_NM])
    checks.append(check("spatial embedding speeds up the e-nmRNN", {"median updates": [med[E_NM_SPATIAL], med[E_NM]], "p": p},
                        p < ALPHA and med[E_NM_SPATIAL] < med[E_NM],
                        f"one-sided exact rank test: spatially embedded below plain e-nmRNN, p < {ALPHA}",
                        decided=can_decide and decidable))
    learned = [m for m in per_seed[E_NM] if m["reached"]]
    rest = float(np.median([m["final_rest"] for m in per_seed[E_NM]]))
    ratio = float(np.median([m["final_ratio"] for m in per_seed[E_NM]]))
    checks.append(check("trained e-nmRNN rests for A = 0 and oscillates for A > 0",
                        {"median rest amplitude": rest, "median oscillation ratio": ratio},
                        rest <= REST_MAX and ratio >= OSCILLATION_MIN,
                        f"median rest amplitude <= {REST_MAX} and median oscillation ratio >= {OSCILLATION_MIN}",
                        decided=can_decide and bool(learned)))
    gaps = [abs(m["loss_drop"] - m["oscillation_onset"]) if m["loss_drop"] is not None and m["oscillation_onset"] is not None
            else math.inf for m in per_seed[E_NM]]
    gap = float(np.median(gaps))
    checks.append(check("the loss drop coincides with the onset of oscillation",
                        {"median distance (updates)": gap if math.isfinite(gap) else None,
                         "per seed": [g if math.isfinite(g) else None for g in gaps]},
                        gap <= EPIPHANY_WINDOW * budget,
                        f"median over e-nmRNN seeds of |loss-drop update - oscillation-onset update| <= "
                        f"{EPIPHANY_WINDOW:g} x the budget ({EPIPHANY_WINDOW * budget:g} updates)",
                        decided=can_decide and bool(learned)))
    return checks, {"median_updates_to_threshold": med, "e_nmrnn_seeds_reaching_threshold": len(learned)}


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def run(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """R7 (registry format)."""
    s = PROFILES[profile]
    out = Path(out_dir)
    lrs, lr_source = learning_rates(s, profile, out, seed, grid)
    task = SineMetaLearning()
    batch = task.heldout_batch()
    zero_loss = float(np.mean(np.asarray(batch.targets) ** 2))
    threshold = THRESHOLD_FRACTION * zero_loss
    entries = model_entries(s, lrs)
    summary = run_compare("sine", out_dir=out / "comparison", models=entries, profile=profile, steps=s.updates,
                          seeds=s.seeds, log=None, **grid_arguments(grid))
    per_seed = {label: [measure_run(out / "comparison" / "runs" / f"{slug(label)}_seed{k}", batch, threshold, s.updates,
                                    zero_loss)
                        for k in range(s.seeds)] for label in summary["models"]}
    checks, facts = sine_meta_checks(per_seed, s.updates, can_decide=profile != "smoke")
    figures = _figures(out, per_seed, summary, task, s)
    rows = ["| model | N | params | lr | median updates to threshold | reached (seeds) | final held-out loss (mean) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, info in summary["models"].items():
        ms = per_seed[label]
        rows.append(f"| {label} | {info['n_hidden']} | {info['params']} | {lrs[label]:.3g} | "
                    f"{np.median([m['updates_to_threshold'] for m in ms]):.0f} | {sum(m['reached'] for m in ms)}/{len(ms)} | "
                    f"{np.mean([m['final_heldout_loss'] for m in ms]):.4f} |")
    decides = "every clause" if all(c.get("decided", True) for c in checks) else (
        "these clauses: " + ", ".join(c["name"] for c in checks if c.get("decided", True))
        if any(c.get("decided", True) for c in checks) else "no clause")
    notes = (f"Learning rates: {lr_source}. Threshold: {threshold:.4f} ({THRESHOLD_FRACTION:g} x the loss of predicting zero, "
             f"{zero_loss:.4f}); a run that never reaches it counts as {s.updates + 1} updates. "
             f"This profile ({s.seeds} seed(s), {s.updates} updates, e-nmRNN N={s.n_hidden}) decides {decides}.\n\n"
             + "\n".join(rows))
    return {
        "checks": checks,
        "metrics": {**facts, "threshold": threshold, "zero_output_loss": zero_loss,
                    "per_seed": {k: [{kk: vv for kk, vv in m.items()} for m in v] for k, v in per_seed.items()},
                    "models": {k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} for k, v in summary["models"].items()}},
        "settings": {**asdict(s), "profile": profile, "learning_rates": lrs, "learning_rate_source": lr_source,
                     "threshold_fraction": THRESHOLD_FRACTION, "smooth": SMOOTH, "rest_max": REST_MAX,
                     "oscillation_min": OSCILLATION_MIN, "epiphany_window": EPIPHANY_WINDOW},
        "figures": figures,
        "notes": notes,
        "reproduced": verdict_of(checks) == "reproduced",
    }


def _figures(out: Path, per_seed: dict[str, list[dict]], summary: dict, task: SineMetaLearning, s: SineMetaSettings) -> list[str]:
    from ..plotting import sine_meta as plots

    curves = {label: [read_curve(out / "comparison" / "runs" / f"{slug(label)}_seed{k}") for k in range(s.seeds)]
              for label in summary["models"]}
    written = [plots.plot_learning(per_seed, curves, SMOOTH, out / "learning.png")]
    models = {label: load_run(out / "comparison" / "runs" / f"{slug(label)}_seed0")[1] for label in (E_NM, "GRU")}
    written.append(plots.plot_traces(models, task, out / "hopf_traces.png"))
    written.append(plots.plot_epiphany(per_seed[E_NM], out / "epiphany.png"))
    return [str(Path(w).relative_to(out)) for w in written]


def search(out_dir: Path, profile: str, seed: int = 0, *, grid: GridOptions | None = None, trials: int | None = None,
           log=None) -> dict[str, Any]:
    """The learning-rate search at ``profile``'s sizes (``trials`` per model; default the
    profile's), run into ``out_dir`` and stored in ``sine_meta_lr.json``, where that profile reads
    it (``nmrnn reproduce sine-meta --search``)."""
    return search_and_store(PROFILES, profile, trials, STORED,
                            lambda s: tune_learning_rates(s, out_dir, seed=seed, grid=grid, log=log))
