"""R9: gradient alignment of the e-nmRNN's neuromodulation over training (paper 000, supplement
section 4; the authors' release puts this analysis with the sine meta-learning demo).

An e-nmRNN (paper sizes: 128 ReLU-Tanh neurons, 4 NMs) is trained on sine meta-learning (T5:
batch 16, a fresh batch every update) through the library's one training path (a run directory,
:func:`nmrnn.train.run.ensure_run`), which keeps the model at ``records`` evenly spaced points of
training besides the initial one (``TrainConfig.keep_every``, read back with
:func:`nmrnn.train.run.load_snapshots`). At every kept point the statistic of
:mod:`nmrnn.analysis.alignment` is measured on a fixed held-out set, ``heldout_batches`` batches of 16 trials of the task's held-out
draw: per window of 100 steps, the cosine between the frozen surrogate's descent direction
``-grad_{W_eff} L`` and the NM direction ``sum_k T_k dn_k/dt`` (defaults of the analysis:
``nbar`` and ``dn/dt`` averaged over the window's steps and the batch's trials, ``dn/dt`` the net
change over the window per unit time), and the same with the NM direction's entries shuffled
(the control). The null is ``N(0, 1/D)``, ``D = N^2``. The per-trial reading (one surrogate per
trial) is measured as well and reported, not decided on; so are, for the trained network, the
other readings (windows of 1/2 and 1/5 of the paper's, the least-squares slope for ``dn/dt``).

Choices where the paper is silent: trials of 100 steps (the task's default, ``dt = 0.1`` s), so
that one window is the whole trial; Adam at ``lr = 1e-3`` with gradient-norm clipping at 1 (the
paper tuned learning rates with TPE and gives no numbers); ``tau_r = 2``, ``tau_n = 10`` steps.

Statistics. For each kept point the cosines of all windows of one held-out batch are averaged
(the batch's value); the point's value is the mean over the held-out batches and its standard
error ``SE`` is their standard deviation over ``sqrt(heldout_batches)``. The z-score of a mean
cosine ``c`` is the paper's ``c * sqrt(D)`` (relative to the null of *one* cosine; conservative,
since a mean of several null cosines spreads less).

Criteria (fixed before any run; never loosened afterwards):

(a) **aligned**: at the end of training the mean cosine is positive with ``z >= 3`` and its lower
    bound ``mean - 3 SE > 0``;
(b) **learned**: the late mean (mean over the last quarter of the kept points, at least one) exceeds
    the untrained network's (step 0) by at least ``3 / sqrt(D)`` (three null standard deviations)
    and by more than ``3 sqrt(SE_late^2 + SE_0^2)``;
(c) **control**: the shuffle control's mean cosine stays within the null band, ``|z| < 3``, at every
    kept point.

A profile with fewer than 32 neurons, 1000 updates or 4 kept points after step 0 cannot decide
(``D`` too small for the null's scale to mean anything, or no training to speak of): its checks are
reported as undecided. The paper's value (0.13-0.15 at N = 128, about 16 null standard deviations)
is reported for comparison; the verdict is on the criteria above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax.random as jr
import numpy as np

from ..analysis.alignment import (
    ALIGNMENT_AVERAGES,
    NM_RATES,
    alignment_statistics,
    alignment_vectors,
    shuffle_entries,
)
from ..train import TrainConfig
from ..train.checkpoint import CheckpointError
from ..train.run import RunSpec, ensure_run, load_snapshots
from .profiles import Profiles
from .registry import check, verdict_of

Z_MIN = 3.0  # (a): z-score of the final mean cosine
SE_FACTOR = 3.0  # (a), (b): standard errors a difference must clear
MARGIN_NULL_SD = 3.0  # (b): late - initial, in null standard deviations
CONTROL_Z = 3.0  # (c): |z| of the shuffle control at every kept point
LATE_FRACTION = 0.25  # (b): the last quarter of the kept points
MIN_NEURONS, MIN_UPDATES, MIN_RECORDS = 32, 1000, 4  # below any of these: undecided
PAPER_COSINE = (0.13, 0.15)  # paper 000, section 4, at N = 128
PAPER_N = 128


@dataclass(frozen=True)
class AlignmentSettings:
    n_hidden: int
    updates: int
    records: int  # kept points after step 0, evenly spaced
    n_nm: int = 4
    lr: float = 1e-3
    batch_size: int = 16
    n_steps: int = 100  # steps per trial
    window: int = 100  # steps per window (paper: 100)
    tau_r: float = 2.0
    tau_n: float = 10.0
    heldout_batches: int = 8
    steps_per_call: int = 100
    other_readings: bool = True  # measure the other readings at the end (reported only)
    dpi: int = 110

    def __post_init__(self):
        every, rest = divmod(self.updates, self.records)
        if rest or every % self.steps_per_call:  # the loop keeps models at whole compiled calls
            raise ValueError(
                f"updates ({self.updates}) must split into {self.records} records of a whole number of "
                f"compiled calls ({self.steps_per_call} steps)"
            )

    @property
    def record_every(self) -> int:
        return self.updates // self.records

    @property
    def decides(self) -> bool:
        return self.n_hidden >= MIN_NEURONS and self.updates >= MIN_UPDATES and self.records >= MIN_RECORDS


PROFILES: Profiles[AlignmentSettings] = Profiles(
    smoke=AlignmentSettings(n_hidden=8, updates=20, records=2, n_steps=20, window=10, heldout_batches=2,
                            steps_per_call=10, other_readings=False, dpi=40),
    quick=AlignmentSettings(n_hidden=128, updates=5000, records=10),
    paper=AlignmentSettings(n_hidden=128, updates=20000, records=20),
)


def run_spec(s: AlignmentSettings, seed: int) -> RunSpec:
    """The training run: the e-nmRNN on sine meta-learning, fresh batches of 16."""
    train = TrainConfig(steps=s.updates, lr=s.lr, optimizer="adam", clip=1.0, batch_size=s.batch_size,
                        steps_per_call=s.steps_per_call, checkpoint_every=s.record_every,
                        keep_every=s.record_every)
    return RunSpec(model="enmrnn", n_hidden=s.n_hidden, task="sine", train=train, seed=seed,
                   model_options=dict(n_nm=s.n_nm, tau_r=s.tau_r, tau_n=s.tau_n, activation="relutanh"),
                   task_options=dict(n_steps=s.n_steps))


# ----------------------------------------------------------------------------------------------
# the checks (pure functions of the measured numbers)
# ----------------------------------------------------------------------------------------------


def _mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    se = float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("inf")
    return float(np.mean(x)), se


def alignment_checks(final, initial, late, control, *, dim: int, decided: bool = True) -> list[dict]:
    """The three checks of the module docstring.

    Args:
        final: ``(H,)`` per held-out batch mean cosines of the trained network (last kept point).
        initial: ``(H,)`` the same for the untrained network (step 0).
        late: ``(H,)`` the same averaged over the late kept points.
        control: ``(R,)`` the shuffle control's mean cosine at every kept point.
        dim: ``D``, the number of entries of the directions (``N^2``).
        decided: ``False`` when the profile is too small to decide (every check undecided).
    """
    sd = 1.0 / np.sqrt(dim)
    m_f, se_f = _mean_se(final)
    m_0, se_0 = _mean_se(initial)
    m_l, se_l = _mean_se(late)
    control = np.asarray(control, dtype=float)
    z_f = m_f / sd
    diff, se_d = m_l - m_0, float(np.hypot(se_l, se_0))
    z_c = control / sd
    return [
        check("the trained network's neuromodulation is aligned with the surrogate's descent direction",
              {"mean_cosine": m_f, "se": se_f, "z": z_f, "lower_bound": m_f - SE_FACTOR * se_f},
              bool(z_f >= Z_MIN and m_f - SE_FACTOR * se_f > 0),
              f"final mean cosine: z = cos sqrt(D) >= {Z_MIN:g} and mean - {SE_FACTOR:g} SE > 0", decided),
        check("the alignment is learned (late training above the untrained network)",
              {"late": m_l, "initial": m_0, "difference": diff, "difference_null_sd": diff / sd, "se": se_d},
              bool(diff >= MARGIN_NULL_SD * sd and diff > SE_FACTOR * se_d),
              f"late - initial >= {MARGIN_NULL_SD:g} / sqrt(D) and > {SE_FACTOR:g} SE of the difference", decided),
        check("the shuffle control stays at the null",
              {"max_abs_z": float(np.max(np.abs(z_c))) if z_c.size else None, "z": z_c},
              bool(z_c.size and np.all(np.abs(z_c) < CONTROL_Z)),
              f"|z| of the shuffled NM direction's mean cosine < {CONTROL_Z:g} at every kept point", decided),
    ]


# ----------------------------------------------------------------------------------------------
# training with kept checkpoints, then the measurements
# ----------------------------------------------------------------------------------------------


def _measure(model, held, s: AlignmentSettings, key) -> dict[str, np.ndarray]:
    """Per held-out batch: mean cosine over windows (real, shuffled, per-trial reading) and the
    per-window z-scores of the real and shuffled statistics."""
    real, shuf, trial, z_real, z_shuf = [], [], [], [], []
    for h, batch in enumerate(held):
        vec = alignment_vectors(model, batch, window=s.window)
        a = alignment_statistics(vec.descent, vec.nm_direction)
        c = alignment_statistics(vec.descent, shuffle_entries(vec.nm_direction, jr.fold_in(key, h)))
        t = alignment_statistics(*alignment_vectors(model, batch, window=s.window, average="trial")[:2])
        real.append(np.nanmean(np.asarray(a.cosine)))
        shuf.append(np.nanmean(np.asarray(c.cosine)))
        trial.append(np.nanmean(np.asarray(t.cosine)))
        z_real.append(np.asarray(a.z))
        z_shuf.append(np.asarray(c.z))
    return {"real": np.asarray(real), "shuffled": np.asarray(shuf), "per_trial": np.asarray(trial),
            "z_real": np.concatenate(z_real), "z_shuffled": np.concatenate(z_shuf)}


def readings(model, held, s: AlignmentSettings) -> dict[str, dict[str, float]]:
    """The other readings of the paper's definition, at one network (reported, not decided on):
    ``{"window=L average=A nm_rate=R": {"mean_cosine", "z"}}`` for windows ``L``, ``L/2``, ``L/5``,
    both averages and both rates."""
    sd = 1.0 / s.n_hidden
    out = {}
    for window in sorted({s.window, max(1, s.window // 2), max(1, s.window // 5)}, reverse=True):
        for average in ALIGNMENT_AVERAGES:
            for rate in NM_RATES:
                cos = [np.nanmean(np.asarray(alignment_statistics(*alignment_vectors(
                    model, b, window=window, average=average, nm_rate=rate)[:2]).cosine)) for b in held]
                m = float(np.mean(cos))
                out[f"window={window} average={average} nm_rate={rate}"] = {"mean_cosine": m, "z": m / sd}
    return out


def run(out_dir: Path, profile: str, seed: int) -> dict[str, Any]:
    s = PROFILES[profile]
    out = Path(out_dir)
    spec = run_spec(s, seed)
    run_dir = out / "run"
    outcome = ensure_run(run_dir, spec)
    kept = load_snapshots(run_dir)
    steps = [step for step, _ in kept]
    expected = [s.record_every * i for i in range(s.records + 1)]
    if steps != expected:
        raise CheckpointError(
            f"{run_dir} keeps the models of steps {steps}, expected {expected}; delete {out} and run the "
            "reproduction again"
        )
    models = [model for _, model in kept]
    task = outcome.task

    pool = task.heldout_batch(batch_size=s.heldout_batches * s.batch_size)
    held = [pool.take(slice(h * s.batch_size, (h + 1) * s.batch_size)) for h in range(s.heldout_batches)]
    control_key = jr.fold_in(jr.PRNGKey(seed), 9)
    per = [_measure(m, held, s, jr.fold_in(control_key, i)) for i, m in enumerate(models)]
    real = np.stack([p["real"] for p in per])  # (records + 1, H)
    shuffled = np.stack([p["shuffled"] for p in per])
    per_trial = np.stack([p["per_trial"] for p in per])
    n_late = max(1, int(np.ceil(LATE_FRACTION * s.records)))
    dim = s.n_hidden**2
    checks = alignment_checks(real[-1], real[0], real[-n_late:].mean(0), shuffled.mean(1), dim=dim,
                              decided=s.decides)
    sd = 1.0 / np.sqrt(dim)
    mean = real.mean(1)
    se = real.std(1, ddof=1) / np.sqrt(real.shape[1]) if real.shape[1] > 1 else np.full(len(mean), np.nan)
    heldout_loss = outcome.metrics.get("heldout", {}).get("loss")
    metrics = {
        "steps": steps,
        "mean_cosine": mean,
        "se_cosine": se,
        "z": mean / sd,
        "shuffled_mean_cosine": shuffled.mean(1),
        "shuffled_z": shuffled.mean(1) / sd,
        "per_trial_mean_cosine": per_trial.mean(1),
        "per_trial_z": per_trial.mean(1) / sd,
        "null_sd": sd,
        "final_heldout_mse": heldout_loss,
        "other_readings_final": readings(models[-1], held, s) if s.other_readings else {},
        "paper": {"cosine": list(PAPER_COSINE), "n_hidden": PAPER_N, "z": [c * PAPER_N for c in PAPER_COSINE]},
    }
    figures = _figures(out, s, steps, real, shuffled, per_trial, per, sd, outcome.losses)
    decided_note = "" if s.decides else (
        f"**This profile cannot decide** (it needs at least {MIN_NEURONS} neurons, {MIN_UPDATES} updates and "
        f"{MIN_RECORDS} kept points); the checks are reported as undecided.\n\n")
    notes = (
        decided_note
        + f"Mean cosine of the trained network {mean[-1]:.4f} (z = {mean[-1] / sd:.1f}; null sd 1/N = {sd:.4f}) "
        f"against the paper's {PAPER_COSINE[0]}-{PAPER_COSINE[1]} at N = {PAPER_N} (z about "
        f"{PAPER_COSINE[0] * PAPER_N:.0f}-{PAPER_COSINE[1] * PAPER_N:.0f}); untrained network {mean[0]:.4f} "
        f"(z = {mean[0] / sd:.1f}); per-trial reading at the end {per_trial[-1].mean():.4f} "
        f"(z = {per_trial[-1].mean() / sd:.1f}, reported, not decided on). Held-out MSE of the trained network: "
        + ("n/a" if heldout_loss is None else f"{heldout_loss:.4g}") + "."
    )
    if metrics["other_readings_final"]:
        table = ["| reading (trained network) | mean cosine | z |", "| --- | --- | --- |"]
        table += [f"| {k} | {v['mean_cosine']:.4f} | {v['z']:.1f} |" for k, v in metrics["other_readings_final"].items()]
        notes += "\n\nOther readings of the definition (reported, not decided on):\n\n" + "\n".join(table)
    return {
        "checks": checks,
        "verdict": verdict_of(checks),
        "metrics": metrics,
        "settings": {"profile": profile, **asdict(s), "record_every": s.record_every, "decides": s.decides,
                     "average": "batch", "nm_rate": "net", "late_points": n_late, "z_min": Z_MIN,
                     "se_factor": SE_FACTOR, "margin_null_sd": MARGIN_NULL_SD, "control_z": CONTROL_Z,
                     "run_spec": spec.to_dict()},
        "figures": figures,
        "notes": notes,
    }


def _figures(out: Path, s, steps, real, shuffled, per_trial, per, sd, losses) -> list[str]:
    from ..plotting._common import plt, save

    steps = np.asarray(steps)
    H = real.shape[1]
    err = lambda a: a.std(1, ddof=1) / np.sqrt(H) if H > 1 else np.zeros(len(a))  # noqa: E731
    paths = []

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axhspan(-3 * sd, 3 * sd, color="0.85", label="null, +-3 sd (1/sqrt(D))")
    ax.axhspan(-sd, sd, color="0.7", label="null, +-1 sd")
    ax.errorbar(steps, real.mean(1), yerr=err(real), marker="o", ms=3, capsize=2, label="cosine (mean +- SE)")
    ax.errorbar(steps, shuffled.mean(1), yerr=err(shuffled), marker="s", ms=3, capsize=2, ls=":",
                label="shuffled NM direction")
    ax.plot(steps, per_trial.mean(1), "--", lw=1, label="per-trial reading")
    if s.n_hidden == PAPER_N:
        ax.axhspan(*PAPER_COSINE, color="tab:red", alpha=0.15, label="paper (N = 128)")
    ax.set_xlabel("gradient update")
    ax.set_ylabel("cosine(-grad_W L, sum_k T_k dn_k/dt)")
    ax.set_title(f"Gradient alignment over training (N = {s.n_hidden})")
    ax.legend(frameon=False, fontsize=7)
    paths.append(save(fig, out / "cosine_over_training.png", dpi=s.dpi))

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axhspan(-CONTROL_Z, CONTROL_Z, color="0.85", label=f"|z| < {CONTROL_Z:g}")
    ax.plot(steps, real.mean(1) / sd, "o-", ms=3, label="alignment")
    ax.plot(steps, shuffled.mean(1) / sd, "s:", ms=3, label="shuffle control")
    ax.axhline(Z_MIN, color="k", lw=0.8, ls="--", label=f"criterion z >= {Z_MIN:g}")
    ax.set_xlabel("gradient update")
    ax.set_ylabel("z = mean cosine x sqrt(D)")
    ax.set_title("z-score against the null N(0, 1/D)")
    ax.legend(frameon=False, fontsize=7)
    paths.append(save(fig, out / "z_over_training.png", dpi=s.dpi))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    grid = np.linspace(-4, 4, 200)
    bins = np.linspace(-6, 6, 25)
    for name, label in (("z_shuffled", "shuffle control"), ("z_real", "alignment")):
        values = np.concatenate([p[name] for p in per])
        axes[0].hist(np.clip(values, -6, 6), bins=bins, density=True, alpha=0.5, label=label)
    axes[0].plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
    axes[0].set_xlabel("per-window z, every kept point (clipped to +-6)")
    axes[0].set_ylabel("density")
    axes[0].legend(frameon=False, fontsize=7)
    window = max(1, min(50, len(losses) // 20))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    axes[1].semilogy(np.arange(len(smooth)) + window - 1, smooth)
    for st in steps:
        axes[1].axvline(st, color="0.8", lw=0.5)
    axes[1].set_xlabel("gradient update (grey: kept checkpoints)")
    axes[1].set_ylabel("training loss")
    fig.suptitle("Control and training")
    fig.tight_layout()
    paths.append(save(fig, out / "control.png", dpi=s.dpi))
    return [str(p.relative_to(out)) for p in paths]
