"""Reproductions of the NM-RNN paper's comparisons (Costacurta et al. 2024, paper 001 in
docs/references.md): R1 (MWG) and R3 (EFT).

Both are parameter-matched comparisons run by :func:`nmrnn.experiments.compare.run_compare`; this
module adds the paper's claim, the criterion, and the numbers the criterion reads.

R1 (MWG, rank 3): "the NM-RNN has the lowest L2 loss on extrapolated intervals and its ramps keep the
right slope". Criterion: the NM-RNN's mean extrapolated loss is the lowest of the four models, and
its mean ramp-slope error on extrapolated intervals (``|fitted slope / target slope - 1|`` over the
ramp) is the lowest too.

R3 (EFT, ~500 parameters): "NM-RNNs beat LR-RNNs and vanilla RNNs, close to the LSTM". Criterion:
the NM-RNN's mean test MSE is below the LR-RNN's and the vanilla RNN's.

The profile is passed through to :func:`~nmrnn.experiments.compare.run_compare`: ``"smoke"``
(seconds; exercises every output, decides nothing), ``"quick"`` (a tenth of the paper's iterations
with fewer seeds, so its verdict can differ from the paper's) or ``"paper"``; the summary always
states the profile it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..models import simulate
from ..tasks.mwg import EXTRAPOLATION_INTERVALS, MeasureWaitGo
from ..train.run import load_run
from .compare import run_compare, slug
from .grid import GridOptions
from .registry import check


def slope_ratios(outputs, batch, task: MeasureWaitGo) -> np.ndarray:
    """Fitted output slope over each trial's ramp divided by the target slope, ``(B,)``.

    The ramp spans ``[t_go, t_go + interval]``; the target rises by ``high - low`` over it.
    ``outputs``: ``(B, T, 1)``.
    """
    ys = np.asarray(outputs)[..., 0]
    tg = np.asarray(batch.info["t_go"])
    intervals = np.asarray(batch.info["interval"])
    ratios = []
    for k, interval in enumerate(intervals):
        t = np.arange(tg[k], tg[k] + interval + 1)
        slope = np.polyfit(t - t[0], ys[k, t], 1)[0]
        ratios.append(slope / ((task.high - task.low) / interval))
    return np.asarray(ratios)


def ramp_slope_ratios(model, task: MeasureWaitGo, intervals=EXTRAPOLATION_INTERVALS) -> np.ndarray:
    """:func:`slope_ratios` of ``model`` on one test trial per interval."""
    batch = task.test_batch(list(intervals))
    return slope_ratios(simulate(model, batch.inputs).outputs, batch, task)


def _grid_kwargs(grid: GridOptions | None) -> dict[str, Any]:
    if grid is None:
        return {}
    kw = grid.kwargs()
    kw["vmap_seeds"] = kw.pop("ensemble")
    return kw


def run_mwg(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """R1: the MWG comparison plus the slope analysis and the verdict (registry format)."""
    del seed  # the comparison uses seeds 0..n-1 of each model
    cmp_dir = Path(out_dir) / "comparison"
    summary = run_compare("mwg", out_dir=cmp_dir, profile=profile, log=_quiet, **_grid_kwargs(grid))
    task = MeasureWaitGo()
    slope_err: dict[str, float] = {}
    slope_per_seed: dict[str, list[float]] = {}
    for label in summary["models"]:
        runs = sorted((cmp_dir / "runs").glob(f"{slug(label)}_seed*"))
        per_seed = [float(np.abs(ramp_slope_ratios(load_run(r)[1], task) - 1).mean()) for r in runs]
        slope_per_seed[label] = per_seed
        slope_err[label] = float(np.mean(per_seed))
    extra = {k: v["mean"]["extrapolated/loss"] for k, v in summary["models"].items()}
    trained = {k: v["mean"]["trained/loss"] for k, v in summary["models"].items()}
    best_loss = min(extra, key=extra.get)
    best_slope = min(slope_err, key=slope_err.get)
    return {
        "checks": [
            check("lowest extrapolated loss", best_loss, best_loss == "NM-RNN",
                  "the NM-RNN has the lowest mean extrapolated-interval loss"),
            check("best extrapolated ramp slope", best_slope, best_slope == "NM-RNN",
                  "the NM-RNN has the lowest mean |fitted slope / target slope - 1| on extrapolated intervals"),
        ],
        "metrics": {
            "extrapolated_loss_mean": extra,
            "trained_loss_mean": trained,
            "slope_error_mean": slope_err,
            "slope_error_per_seed": slope_per_seed,
            "per_model": _without_per_seed(summary),
        },
        "settings": {"profile": profile, "steps": summary["steps"], "seeds": summary["seeds"]},
        "figures": [f"comparison/{f}" for f in summary.get("figures", [])],
        "notes": "Per-seed numbers of every run are in `comparison/summary.json` "
        "(with `comparison/table.csv` and the run directories in `comparison/runs/`).\n\n```\n" + summary["table"] + "\n```",
    }


def run_eft(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """R3: Element Finder at ~500 parameters (registry format)."""
    del seed
    cmp_dir = Path(out_dir) / "comparison"
    summary = run_compare("eft", out_dir=cmp_dir, profile=profile, log=_quiet, **_grid_kwargs(grid))
    test = {k: v["mean"]["test/loss"] for k, v in summary["models"].items()}
    return {
        "checks": [
            check("NM-RNN vs LR-RNN", [test["NM-RNN"], test["LR-RNN"]], test["NM-RNN"] < test["LR-RNN"],
                  "mean test MSE of the NM-RNN below the LR-RNN's"),
            check("NM-RNN vs vanilla", [test["NM-RNN"], test["vanilla RNN"]], test["NM-RNN"] < test["vanilla RNN"],
                  "mean test MSE of the NM-RNN below the vanilla RNN's"),
        ],
        "metrics": {
            "test_mse_mean": test,
            "per_model": _without_per_seed(summary),
        },
        "settings": {"profile": profile, "steps": summary["steps"], "seeds": summary["seeds"]},
        "figures": [f"comparison/{f}" for f in summary.get("figures", [])],
        "notes": "```\n" + summary["table"] + "\n```",
    }


def _without_per_seed(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparison's per-model entries without their per-seed metrics (kept in the
    comparison's own summary.json)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} for k, v in summary["models"].items()}


def _quiet(*_args, **_kwargs) -> None:
    """Reproductions report through their summary, not by printing."""
