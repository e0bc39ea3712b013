"""R11: the e-nmRNN on the 20 Yang tasks (paper 000, supplement sections 7, 8.1-8.4, 9.3 and
Table 4; Fig. 5).

The claim: an e-nmRNN trained to high performance on the 20 tasks of Yang et al. 2019 develops
biologically aligned structure: neurons release mostly one neuromodulator (one-hot columns of the
release matrix R: cell types), the neuromodulators evolve on separated timescales (about 8x between
the fastest and the slowest, from their autocorrelation), and the NM state n(t) represents the task
context (the rule); its units form task-variance clusters and modules (reported here, not checked).

The model (Table 4)
-------------------
Table 4: 128 neurons, 4 neuromodulators, ReLU-Tanh, "parameter-matched (~50k parameters total)";
tau_n tuned in [0.01, 10], learning rate in [5e-5, 5e-3], batch 32, L2 in [1e-7, 1e-5]. The Yang
layout fixes the input and output sizes: 85 inputs (1 fixation + 2 rings of 32 + 20 rule inputs) and
33 outputs (fixation + a ring of 32), :data:`nmrnn.tasks.yang.N_IN` and ``N_OUT``.

With a full modulation tensor the e-nmRNN has far more than 50k parameters: ``T`` alone holds
``M N^2 = 4 x 128^2 = 65,536`` and the whole model 97,969. The paper does not say how it reaches
50k; the library's factorised tensor ``T_k = sum_{j<q} a_kj b_kj^T`` (``t_rank=q``:
``2 M N q`` parameters) does. Everything but T counts

    W N^2 + U N P + b N + R M N + Z M^2 + D O N + d O + E, e 2N
    = 16,384 + 10,880 + 128 + 512 + 16 + 4,224 + 33 + 256 = 32,433

(N = 128, M = 4, P = 85, O = 33), so ``q`` adds ``1,024 q``: q = 16 gives 48,817, **q = 17 gives
49,841** (the closest to 50k, chosen here), q = 18 gives 50,865. **Choice**: ``t_rank=17``.
The time constants are not parameters (never trained or counted).

**Choices** where the paper is silent: ``dt = 20`` ms and the neurons' ``tau_r = 5`` steps
(100 ms: Yang's ``dt`` and ``tau``, ``alpha = 0.2``); recurrent noise ``sigma_rec = 0.05`` (Yang's,
the same ``sqrt(2 alpha) sigma_rec`` per step); NM nonlinearity the library's sigmoid. Table 4's
``tau_n`` range [0.01, 10] is read as the NM leak rate ``dt / tau_n``, as R10 reads Table 1's
``tau_n = 0.1`` (as a time constant in steps most of the range would lie below the Euler step),
and capped at rate 1 (``dt <= tau_n``, Euler stability): ``tau_n`` in [1, 100] steps (20 ms to
2 s). The fixed ``tau_n`` of the smaller profiles is 10 steps (200 ms), the middle of that range
on a log scale. Gradients are clipped to global norm 1 (the library's default; neither Yang's code
nor Table 4 clips).

The spatially embedded variant (Table 4: Dale's law and a length scale of 10% of the domain): the
same e-nmRNN with ``dale=True`` (80% excitatory) and its neurons on an 8 x 4 x 4 grid, ``W``
weighted by ``exp(-d / lambda)``, ``lambda`` = 10% of the grid's largest side (:mod:`nmrnn.spatial`);
49,841 parameters as well. The baseline: a leaky ReLU RNN (Yang's network: ``tau = 5`` steps, a bias,
``sigma_rec = 0.05``) of **224 units, Table 4's size**. Its recurrent matrix alone has 224^2 = 50,176
entries, which is presumably the "~50k" of Table 4; the whole network has 76,865 parameters (the
library's matching would give 172 units). Table 4's number is used.

Training (one path: :func:`nmrnn.experiments.compare.run_compare`, a grid of run directories)
-----------------------------------------------------------------------------------------------
``make_task("yang_multitask")`` (:class:`nmrnn.tasks.yang.YangMultitask`): trials of the 20 rules,
Yang's inputs, targets, cost mask (squared) and least-squares loss, input noise ``sigma_x = 0.01``,
every trial padded to 209 steps (the longest rule). **Choice** (the mixture): each trial draws its
rule with the probabilities of Yang's networks trained on all tasks (``experiment.py``,
``train_all``: contextdm1 and contextdm2 weighted 5, every other rule 1; rules drawn with
replacement as ``train.py`` does), so every batch mixes rules (the issue's "mixed batches"); Yang's
``train.py`` draws one rule per batch instead (``mixing="batch"`` does that). Adam, batch 32,
weight L2 (``TrainConfig.weight_l2``, the sum of squared parameters) on fresh batches; the model is
kept every ``keep_every`` steps (step 0: the initial network).

Hyperparameters: the paper profile runs a TPE search per model (:mod:`nmrnn.experiments.sweep`) over
Table 4's ranges -- learning rate in [5e-5, 5e-3] and L2 in [1e-7, 1e-5] (log-uniform), and for the
e-nmRNNs ``tau_n`` in [1, 100] steps -- maximising the mean percent correct (``test/perf``) after
:attr:`YangSettings.sweep_steps` steps, and trains with the best; the result is stored in the output
folder (``hyperparameters.json``) and reused when the profile runs again. The quick and smoke
profiles use fixed values, stated in the report: learning rate 1e-3 (Yang's default, inside
Table 4's range), L2 1e-6, ``tau_n`` 10 steps.

Measurements
------------
* **Percent correct** (Yang's criterion, ``perf``: the decision at the last step) of every rule,
  on a fixed set of ``n_curve`` random trials per rule at every kept model (over training), and on
  ``n_final`` trials per rule for the final table (Yang evaluates 512).
* For every e-nmRNN, trained and initial (the same network at step 0), run noise-free on Yang's
  test grids of the 20 rules (:func:`nmrnn.analysis.interpret.yang_trials`); the timescale and
  decoding analyses use ``per_rule`` grid trials of every rule, evenly spaced over its grid (equal
  numbers per rule: chance is 1/20):

  - cell types: :func:`~nmrnn.analysis.interpret.cell_type_specialisation` of R (row-shuffle null,
    paired Wilcoxon test against the initial R);
  - NM timescales: :func:`~nmrnn.analysis.interpret.nm_timescales` of the NM traces (within-trial
    autocorrelation, trial-mean centring, bias-corrected exponential fits, lags up to half the
    shortest trial). The *separation* is the slowest over the fastest time constant, a
    non-decaying NM counted at the largest lag (so the separation is then a lower bound) and a flat
    one left out. Against the initial network: a paired bootstrap over trials
    (:func:`timescale_comparison`, the same resampled trials for both networks);
  - context: the rule decoded from the NM state averaged over each trial after its fixation epoch
    (``[fix1 end, t_end)``: stimulus, delay and response) with
    :func:`~nmrnn.analysis.interpret.decode_context` (multinomial logistic regression, 5 stratified
    folds, shuffled-label null). **Choice** (the window): the fixation epoch, where the rule input is
    the only input, was considered first and rejected because the *untrained* network already
    decodes the rule there at 95% (measured on an untrained network before any training run); over
    the post-fixation window it decodes 76%. Against the initial network: the exact one-sided
    McNemar test on the paired held-out predictions of the same folds (:func:`decoding_comparison`).
    Per-epoch decoding is reported for the figure;
  - task variance (Yang's definition) and its clusters
    (:func:`~nmrnn.analysis.interpret.cluster_units`), and the Louvain modularity of W and of the
    NM-gated W_eff (:func:`~nmrnn.analysis.interpret.connectivity_modularity`): reported.

Checks (criteria fixed here before any run; never loosened afterwards)
-----------------------------------------------------------------------
On the plain e-nmRNN; a seed has *learned* when its mean percent correct over the rules is at least
:data:`LEARNED_MIN` (0.5). (a)-(c) are judged on the learned seeds and pass when they pass on every
one of them; they are undecided when no seed learned (a network that has not learned the tasks says
nothing about the structure that learning them builds).

(a) **cell types**: the mean one-hotness of the trained R is above the row-shuffle null (p < 0.05)
    and above the initial R's (mean higher, paired one-sided Wilcoxon p < 0.05);
(b) **NM timescales separate**: the separation is at least :data:`SEPARATION_MIN` = 2 (the paper
    reports about 8; 2 is what "separated" needs at the least) and above the initial network's
    (paired bootstrap, one-sided p < 0.05);
(c) **context in n**: the rule decoding accuracy is above the shuffled-label null (p < 0.05), at
    least :data:`DECODE_MARGIN` = 0.25 above chance (1/20), and above the initial network's accuracy
    on the same trials and folds (exact McNemar, one-sided p < 0.05): the rule input is on for the
    whole trial, so the untrained network's n carries it too, and a decoding the untrained network
    matches is no evidence of a learned representation;
(d) **performance**: every seed's mean percent correct over the rules is at least
    :data:`PERF_MIN` = 0.8 (Yang's networks exceed 90% on most tasks). A budget below the paper's
    cannot show a failure of (d): at the quick profile a fail is undecided (a pass counts).

Every check is undecided at the smoke profile. The report says which clauses a profile decided.

Profiles
--------
* smoke: an 8-neuron e-nmRNN (2 NMs) on two rules for 20 steps; exercises every output, decides
  nothing.
* quick: the e-nmRNN and the vanilla RNN at full size, one seed each, 3000 steps (96,000 trials) at
  the fixed hyperparameters; no search, no spatial variant. (a)-(c) are decided when the e-nmRNN
  reaches the learning criterion, (d) only when it passes. In the first quick run (2026-12-04) the
  e-nmRNN reached 0.69 (the six go/anti tasks solved, the decision and matching tasks not), so
  (a)-(c) were decided -- on a network far from the paper's "high performing" one.
* paper: the three models, the TPE search per model (40 trials of 3000 steps), then 3 seeds x
  50,000 steps (1.6 million trials per run; Yang trains until every task is solved, up to 10^7
  trials); about 10 h with 2 workers from the measured step costs (``benchmarks/bench_yang.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks.yang import N_IN, N_OUT, RULES, YANG_ALL_RULE_PROBS
from .profiles import Profiles

#: The R11 e-nmRNN: ``make_model(**R11_MODEL, key=key)`` (the name and sizes included).
R11_MODEL: dict[str, Any] = {
    "name": "enmrnn",
    "n_in": N_IN,
    "n_out": N_OUT,
    "n_hidden": 128,
    "n_nm": 4,
    "t_rank": 17,
    "activation": "relutanh",
}

#: Its number of trainable parameters (see the module docstring for the formula).
R11_PARAMETER_COUNT = 49_841

ALPHA = 0.05  # significance level of every test
LEARNED_MIN = 0.5  # a seed with a lower mean percent correct has not learned the tasks
PERF_MIN = 0.8  # (d)
SEPARATION_MIN = 2.0  # (b)
DECODE_MARGIN = 0.25  # (c): accuracy at least chance + this
TAU_R = 5.0  # neurons' time constant in steps (100 ms at dt = 20 ms)
SIGMA_REC = 0.05
LR_RANGE = (5e-5, 5e-3)  # Table 4
L2_RANGE = (1e-7, 1e-5)  # Table 4
TAU_N_RANGE = (1.0, 100.0)  # Table 4's [0.01, 10] as the leak rate dt / tau_n, capped at 1
E_NM, E_NM_SPATIAL, VANILLA = "e-nmRNN", "e-nmRNN spatial", "vanilla RNN"
N_SPLITS = 5  # decoding folds


@dataclass(frozen=True)
class YangSettings:
    steps: int
    seeds: int
    keep_every: int
    models: tuple[str, ...] = (E_NM, VANILLA)
    n_hidden: int = 128
    n_nm: int = 4
    t_rank: int | None = 17
    vanilla_hidden: int = 224
    spatial_grid: tuple[int, int, int] = (8, 4, 4)
    rules: tuple[str, ...] = RULES
    lr: float | str = 1e-3  # "tune": the TPE search (with weight_l2 and tau_n)
    weight_l2: float = 1e-6
    tau_n: float = 10.0
    batch_size: int = 32
    sweep_trials: int = 40
    sweep_steps: int = 3000
    n_curve: int = 32  # trials per rule at every kept model
    n_final: int = 512  # trials per rule of the final table
    per_rule: int = 40  # test-grid trials per rule of the timescale and decoding analyses
    n_null: int = 1000  # cell-type null matrices
    n_permutations: int = 200  # decoding null
    n_boot: int = 100  # timescale bootstrap


PROFILES = Profiles(
    smoke=YangSettings(steps=20, seeds=1, keep_every=10, models=(E_NM,), n_hidden=8, n_nm=2, t_rank=2,
                       rules=("fdgo", "dm1"), n_curve=4, n_final=8, per_rule=20, n_null=50,
                       n_permutations=10, n_boot=10),
    quick=YangSettings(steps=3000, seeds=1, keep_every=500, n_final=128),
    paper=YangSettings(steps=50_000, seeds=3, keep_every=5000, models=(E_NM, E_NM_SPATIAL, VANILLA), lr="tune",
                       n_curve=64, n_boot=200),
)


# ----------------------------------------------------------------------------------------------
# models, task and hyperparameters
# ----------------------------------------------------------------------------------------------


def task_options(s: YangSettings, n_eval: int | None = None) -> dict[str, Any]:
    """The ``yang_multitask`` options of a profile (Yang's rule probabilities, trials mixed)."""
    probs = {r: w for r, w in YANG_ALL_RULE_PROBS.items() if r in s.rules}
    return {"rules": list(s.rules), "rule_prob_map": probs or None, "mixing": "trial",
            "n_eval": s.n_curve if n_eval is None else n_eval}


def _base_entries(s: YangSettings):
    from .compare import ModelEntry

    enm = {"n_nm": s.n_nm, "t_rank": s.t_rank, "activation": "relutanh", "tau_r": TAU_R, "sigma_rec": SIGMA_REC}
    known = {
        E_NM: ModelEntry(E_NM, "enmrnn", s.n_hidden, enm),
        E_NM_SPATIAL: ModelEntry(E_NM_SPATIAL, "enmrnn", s.n_hidden,
                                 {**enm, "dale": True, "spatial_grid": list(s.spatial_grid), "spatial_length": 0.1}),
        VANILLA: ModelEntry(VANILLA, "vanilla", s.vanilla_hidden,
                            {"tau": TAU_R, "activation": "relu", "bias": True, "sigma_rec": SIGMA_REC}),
    }
    return [known[label] for label in s.models]


def is_enmrnn(label: str) -> bool:
    return label in (E_NM, E_NM_SPATIAL)


def model_entries(s: YangSettings, hps: dict[str, dict[str, float]]) -> list:
    """The models of the profile, each with its hyperparameters ``hps[label]`` (``lr``,
    ``weight_l2``; ``tau_n`` for the e-nmRNNs) and the kept models over training."""
    from .compare import ModelEntry

    out = []
    for e in _base_entries(s):
        hp = hps[e.label]
        options = dict(e.options)
        if is_enmrnn(e.label):
            options["tau_n"] = float(hp["tau_n"])
        train = {"optimizer": "adam", "clip": 1.0, "batch_size": s.batch_size, "keep_every": s.keep_every,
                 "steps_per_call": min(s.keep_every, 250), "checkpoint_every": max(s.keep_every, s.steps // 10),
                 "lr": float(hp["lr"]), "weight_l2": float(hp["weight_l2"])}
        out.append(ModelEntry(e.label, e.model, e.n_hidden, options, None, train))
    return out


def sweep_specs(s: YangSettings, seed: int = 0) -> dict[str, Any]:
    """The TPE search of each model over Table 4's ranges (validated on construction)."""
    from .sweep import ParamSpec, SweepSpec

    specs = {}
    for e in _base_entries(s):
        params = [ParamSpec("train.lr", "float", *LR_RANGE, log=True),
                  ParamSpec("train.weight_l2", "float", *L2_RANGE, log=True)]
        if is_enmrnn(e.label):
            params.append(ParamSpec("model.tau_n", "float", *TAU_N_RANGE, log=True))
        train = {"optimizer": "adam", "clip": 1.0, "batch_size": s.batch_size, "steps": s.sweep_steps,
                 "steps_per_call": min(250, s.sweep_steps), "checkpoint_every": s.sweep_steps}
        specs[e.label] = SweepSpec(model=e.model, task="yang_multitask", n_hidden=e.n_hidden,
                                   model_options=dict(e.options), task_options=task_options(s), train=train,
                                   metric="test/perf", direction="maximize", n_trials=s.sweep_trials,
                                   seeds_per_trial=1, sampler="TPESampler", study_seed=seed, params=tuple(params))
    return specs


def _search_key(s: YangSettings) -> dict[str, Any]:
    return {"models": list(s.models), "n_hidden": s.n_hidden, "n_nm": s.n_nm, "t_rank": s.t_rank,
            "vanilla_hidden": s.vanilla_hidden, "rules": list(s.rules), "sweep_trials": s.sweep_trials,
            "sweep_steps": s.sweep_steps, "batch_size": s.batch_size}


def hyperparameters(s: YangSettings, out: Path, seed: int, grid=None) -> tuple[dict[str, dict[str, float]], str]:
    """Each model's ``lr``, ``weight_l2`` (and ``tau_n``) and a sentence saying where they came
    from: fixed (``s.lr`` a number) or the TPE search (stored in ``out/hyperparameters.json``)."""
    if s.lr != "tune":
        hp = {"lr": float(s.lr), "weight_l2": s.weight_l2, "tau_n": s.tau_n}
        return ({label: dict(hp) for label in s.models},
                f"fixed for every model (no search at this profile): learning rate {float(s.lr):g}, "
                f"L2 {s.weight_l2:g}, tau_n {s.tau_n:g} steps")
    from ..train.checkpoint import atomic_write_json
    from .grid import GridOptions
    from .sweep import run_sweep

    saved = out / "hyperparameters.json"
    if saved.exists():
        found = json.loads(saved.read_text())
        if found.get("settings") == _search_key(s):
            return found["hp"], f"the TPE search of this folder ({saved.name}, {s.sweep_trials} trials per model)"
    grid = grid or GridOptions()
    hps, values = {}, {}
    from .compare import slug

    for label, spec in sweep_specs(s, seed).items():
        summary = run_sweep(spec, out / "sweeps" / slug(label), workers=grid.workers, force=grid.force,
                            figures=False, log=None)
        if not summary["best"]:
            raise RuntimeError(f"the search of {label} finished no trial")
        best = summary["best"][0]["params"]
        hps[label] = {"lr": best["train.lr"], "weight_l2": best["train.weight_l2"],
                      "tau_n": best.get("model.tau_n", s.tau_n)}
        values[label] = summary["best"][0]["value"]
    atomic_write_json(saved, {"hp": hps, "best_perf": values, "settings": _search_key(s)})
    return hps, f"a TPE search run by this profile ({s.sweep_trials} trials per model; {saved.name})"


# ----------------------------------------------------------------------------------------------
# statistics of the clauses
# ----------------------------------------------------------------------------------------------


def mcnemar_greater(correct_a, correct_b) -> float:
    """Exact one-sided McNemar test that classifier A is right more often than B on the same
    items: with ``b`` items only A gets right and ``c`` only B, ``p = P(Binom(b + c, 1/2) >= b)``
    (1 when no item is discordant)."""
    from scipy.stats import binom

    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be equal 1-D arrays, got {a.shape} and {b_.shape}")
    only_a, only_b = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    n = only_a + only_b
    return 1.0 if n == 0 else float(binom.sf(only_a - 1, n, 0.5))


def separation(tau, max_lag: float) -> float:
    """Slowest over fastest NM time constant: a non-decaying NM (``inf``) counts as ``max_lag``
    (so the separation is then a lower bound); NaN (flat) and zero (decorrelated within a step)
    are left out. NaN with fewer than two usable time constants."""
    t = np.asarray(tau, float)
    t = np.where(np.isinf(t), float(max_lag), t)
    t = t[np.isfinite(t) & (t > 0)]
    return float(t.max() / t.min()) if t.size >= 2 else float("nan")


def timescale_comparison(nm, nm_init, lengths, *, n_boot: int, seed: int = 0) -> dict[str, Any]:
    """NM timescales of a trained network's traces ``nm (trials, T, M)`` against the initial
    network's on the same trials: each network's :func:`~nmrnn.analysis.interpret.nm_timescales`
    and :func:`separation`, and the paired bootstrap (``n_boot`` resamples of the trials, the same
    for both) of ``separation(trained) - separation(initial)``; ``p`` is one-sided,
    ``(1 + #{difference <= 0 or undefined}) / (1 + n_boot)``."""
    from ..analysis.interpret import nm_timescales

    L = np.asarray(lengths, int)
    max_lag = max(1, int(L.min()) // 2)
    fits = [nm_timescales(x, lengths=L, max_lag=max_lag) for x in (nm, nm_init)]
    seps = [separation(f.tau, max_lag) for f in fits]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(L), len(L))
        pair = [separation(nm_timescales(x[idx], lengths=L[idx], max_lag=max_lag).tau, max_lag) for x in (nm, nm_init)]
        diffs.append(pair[0] - pair[1])
    diffs = np.array(diffs)
    bad = ~np.isfinite(diffs) | (diffs <= 0)
    return {"separation": seps[0], "init_separation": seps[1], "p": float((1 + bad.sum()) / (1 + n_boot)),
            "tau": fits[0].tau, "init_tau": fits[1].tau, "status": fits[0].status, "init_status": fits[1].status,
            "max_lag": max_lag, "lengths": L, "boot_difference": diffs, "fit": fits[0], "init_fit": fits[1]}


def decoding_comparison(X, X_init, labels, *, n_permutations: int, seed: int = 0) -> dict[str, Any]:
    """The rule decoded from a trained network's features ``X (trials, F)`` and from the initial
    network's ``X_init`` on the same trials: :func:`~nmrnn.analysis.interpret.decode_context` of
    each (logistic, :data:`N_SPLITS` stratified folds, the trained one with its shuffled-label
    null), and :func:`mcnemar_greater` on their held-out predictions from the same folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from ..analysis.interpret import _classifier, decode_context

    y = np.asarray(labels)
    dec = decode_context(X, y, n_splits=N_SPLITS, n_permutations=n_permutations, seed=seed)
    dec0 = decode_context(X_init, y, n_splits=N_SPLITS, n_permutations=0, seed=seed)
    cv = StratifiedKFold(n_splits=N_SPLITS, shuffle=True, random_state=seed % 2**32)  # decode_context's folds
    right = [cross_val_predict(_classifier("logistic"), np.asarray(F, float), y, cv=cv) == y for F in (X, X_init)]
    return {"accuracy": float(dec.accuracy), "null_mean": float(dec.null_mean), "null_95": float(dec.null_95),
            "p": float(dec.p), "chance": float(dec.chance), "init_accuracy": float(dec0.accuracy),
            "p_vs_init": mcnemar_greater(*right), "n_trials": int(len(y)), "n_labels": int(len(dec.classes))}


# ----------------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------------


def yang_checks(seeds: list[dict], *, can_decide: bool = True, paper_budget: bool = True) -> tuple[list[dict], dict]:
    """R11's checks from the plain e-nmRNN's per-seed measurements: each seed a dict with
    ``mean_perf`` and, for (a)-(c), ``cell_types`` (``mean``, ``p``, ``init_mean``, ``init_p``),
    ``timescales`` (``separation``, ``init_separation``, ``p``) and ``decoding`` (``accuracy``,
    ``chance``, ``p``, ``init_accuracy``, ``p_vs_init``). ``can_decide=False`` (smoke) makes every
    check undecided; ``paper_budget=False`` makes a failed (d) undecided."""
    from .registry import check

    learned = [m for m in seeds if m["mean_perf"] >= LEARNED_MIN]
    decided = can_decide and bool(learned)
    checks = []
    ct = [m["cell_types"] for m in learned]
    checks.append(check(
        "R becomes one-hot (cell types)",
        {"mean one-hotness": [c["mean"] for c in ct], "null mean": [c.get("null_mean") for c in ct],
         "p (row-shuffle null)": [c["p"] for c in ct], "initial mean": [c["init_mean"] for c in ct],
         "p (vs initial, Wilcoxon)": [c["init_p"] for c in ct]},
        bool(ct) and all(c["p"] < ALPHA and c["init_p"] < ALPHA and c["mean"] > c["init_mean"] for c in ct),
        f"on every seed that learned (mean perf >= {LEARNED_MIN}): mean one-hotness of R above the row-shuffle "
        f"null (p < {ALPHA}) and above the initial R's (paired one-sided Wilcoxon, p < {ALPHA})",
        decided=decided))
    ts = [m["timescales"] for m in learned]
    checks.append(check(
        "NM timescales separate",
        {"separation (slowest / fastest tau)": [t["separation"] for t in ts],
         "initial separation": [t["init_separation"] for t in ts], "p (vs initial, paired bootstrap)": [t["p"] for t in ts]},
        bool(ts) and all(np.isfinite(t["separation"]) and t["separation"] >= SEPARATION_MIN and t["p"] < ALPHA for t in ts),
        f"on every seed that learned: separation >= {SEPARATION_MIN:g} (the paper: about 8) and above the initial "
        f"network's (paired bootstrap over trials, one-sided p < {ALPHA})",
        decided=decided))
    dc = [m["decoding"] for m in learned]
    checks.append(check(
        "the rule is decodable from n",
        {"accuracy": [d["accuracy"] for d in dc], "chance": [d["chance"] for d in dc],
         "p (shuffled labels)": [d["p"] for d in dc], "initial accuracy": [d["init_accuracy"] for d in dc],
         "p (vs initial, McNemar)": [d["p_vs_init"] for d in dc]},
        bool(dc) and all(d["p"] < ALPHA and d["accuracy"] >= d["chance"] + DECODE_MARGIN and d["p_vs_init"] < ALPHA
                         for d in dc),
        f"on every seed that learned: decoding accuracy of the rule from n after fixation above the shuffled-label "
        f"null (p < {ALPHA}), >= chance + {DECODE_MARGIN:g}, and above the initial network's on the same trials "
        f"(exact one-sided McNemar, p < {ALPHA})",
        decided=decided))
    perfs = [float(m["mean_perf"]) for m in seeds]
    passed = bool(perfs) and min(perfs) >= PERF_MIN
    checks.append(check(
        "the e-nmRNN performs the 20 tasks",
        {"mean percent correct per seed": perfs},
        passed,
        f"every seed's mean percent correct over the rules >= {PERF_MIN:g} (a failure counts only at the paper's budget)",
        decided=can_decide and (paper_budget or passed)))
    return checks, {"seeds": len(seeds), "seeds_learned": len(learned)}


# ----------------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------------


def _run_dir(out: Path, label: str, k: int) -> Path:
    from .compare import slug

    return out / "comparison" / "runs" / f"{slug(label)}_seed{k}"


def perf_by_rule(model, task, batch, chunk: int = 32) -> dict[str, float]:
    """Percent correct of every rule (and overall ``perf``) of ``model`` on ``batch`` (from
    ``task.sample_each``), the network noise-free, simulated ``chunk`` trials at a time (one
    compiled program per model whatever the batch)."""
    import jax.numpy as jnp

    from ..models import simulate

    n = batch.batch_size
    outputs = np.zeros(np.shape(batch.targets), np.float32)
    for start in range(0, n, chunk):
        idx = np.minimum(np.arange(start, start + chunk), n - 1)  # the last chunk padded by repetition
        y = np.asarray(simulate(model, batch.inputs[idx]).outputs)
        keep = min(chunk, n - start)
        outputs[start : start + keep] = y[:keep]
    metrics = task.evaluate(jnp.asarray(outputs), batch)
    return {"perf": metrics["perf"], **{r: metrics[f"{r}/perf"] for r in task.rules}}


def first_per_rule(batch, n: int):
    """The first ``n`` trials of every rule of a ``sample_each`` batch."""
    ids = np.asarray(batch.info["task_id"])
    keep = np.concatenate([np.flatnonzero(ids == i)[:n] for i in np.unique(ids)])
    return batch.take(keep)


def subset_trials(trials, per_rule: int):
    """``per_rule`` trials of each rule of ``trials`` (a :class:`~nmrnn.analysis.interpret.YangTrials`),
    evenly spaced over its grid (all of them when the grid is smaller)."""
    from ..analysis.interpret import YangTrials

    nm, act, info = [], [], []
    for x, a, inf in zip(trials.nm, trials.activity, trials.info, strict=True):
        idx = np.unique(np.linspace(0, len(x) - 1, min(per_rule, len(x))).round().astype(int))
        nm.append(x[idx])
        act.append(a[idx])
        info.append({k: v[idx] for k, v in inf.items()})
    return YangTrials(trials.rules, tuple(nm), tuple(act), tuple(info))


def _pooled_traces(trials) -> tuple[np.ndarray, np.ndarray]:
    """Every trial's NM trace padded to the longest, and the trials' lengths."""
    T = max(x.shape[1] for x in trials.nm)
    xs = [np.pad(x, ((0, 0), (0, T - x.shape[1]), (0, 0))) for x in trials.nm]
    return np.concatenate(xs), np.concatenate([info["t_end"] for info in trials.info]).astype(int)


def _after_fixation(trials) -> tuple[np.ndarray, np.ndarray]:
    """The NM state averaged over ``[fix1 end, t_end)`` of every trial, and its rule."""
    from ..analysis.interpret import window_mean

    X, y = [], []
    for x, info in zip(trials.nm, trials.info, strict=True):
        w = np.stack([info["epochs"][:, 0, 1], info["t_end"]], axis=1).astype(int)
        X.append(window_mean(x, w))
        y.append(info["rule"])
    return np.concatenate(X), np.concatenate(y)


def interpret_network(model, init, s: YangSettings, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The interpretation of one trained e-nmRNN against its initial network: (numbers for the
    summary, data for the figures)."""
    from ..analysis.interpret import (
        cell_type_specialisation,
        cluster_units,
        connectivity_modularity,
        decode_context,
        yang_task_variance,
    )
    from ..analysis.interpret import yang_trials as run_trials
    from ..tasks.yang import EPOCHS

    cells = cell_type_specialisation(model, init=init, n_null=s.n_null, seed=seed)
    trials, trials0 = run_trials(model, s.rules), run_trials(init, s.rules)
    sub, sub0 = subset_trials(trials, s.per_rule), subset_trials(trials0, s.per_rule)
    x, L = _pooled_traces(sub)
    x0, _ = _pooled_traces(sub0)
    ts = timescale_comparison(x, x0, L, n_boot=s.n_boot, seed=seed)
    X, y = _after_fixation(sub)
    X0, _ = _after_fixation(sub0)
    dec = decoding_comparison(X, X0, y, n_permutations=s.n_permutations, seed=seed)
    epochs = {}  # per-epoch decoding (the figure; epochs no rule here has are left out)
    for ep in (*EPOCHS, "after fixation"):
        accs, chance = [], float("nan")
        for tr in (sub, sub0):
            F, lab = _after_fixation(tr) if ep == "after fixation" else _epoch_features(tr, ep)
            counts = np.unique(lab, return_counts=True)[1] if F is not None else np.zeros(0, int)
            if counts.size < 2 or counts.min() < 2:
                break
            chance = 1.0 / counts.size  # equal trials per rule
            accs.append(float(decode_context(F, lab, n_splits=min(N_SPLITS, int(counts.min())),
                                             n_permutations=0, seed=seed).accuracy))
        if len(accs) == 2:
            epochs[ep] = {"trained": accs[0], "initial": accs[1], "chance": chance}
    tv = yang_task_variance(trials)
    clusters = cluster_units(tv.normalized, seed=seed) if len(tv.active) >= 3 else None
    nbar = np.concatenate([a.reshape(-1, a.shape[-1]) for a in trials.nm]).mean(axis=0)
    n_units = model.n_hidden
    mod = connectivity_modularity(model, nbar, n_null=20, seed=seed) if n_units >= 10 else None
    numbers = {
        "cell_types": {"mean": cells.mean, "null_mean": cells.null_mean, "p": cells.p, "init_mean": cells.init_mean,
                       "init_p": cells.init_p, "neurons_per_nm": [len(g) for g in cells.groups]},
        "timescales": {k: ts[k] for k in ("separation", "init_separation", "p", "tau", "init_tau", "status",
                                          "init_status", "max_lag")},
        "decoding": dec,
        "decoding_by_epoch": epochs,
        "task_variance": {"active_units": len(tv.active),
                          "clusters": None if clusters is None else clusters.n_clusters,
                          "silhouette": None if clusters is None else float(np.max(clusters.scores))},
        "modularity": None if mod is None else {"W": mod.modularity_W, "W_eff": mod.modularity_W_eff},
    }
    figure_data = {"cells": cells, "R": np.asarray(model.effective_R()), "timescales": ts, "task_variance": tv,
                   "clusters": clusters, "epochs": epochs, "decoding": dec}
    return numbers, figure_data


def _epoch_features(trials, epoch: str):
    from ..analysis.interpret import yang_context_features

    try:
        return yang_context_features(trials, signal="nm", epoch=epoch)
    except ValueError:  # no rule here has this epoch
        return None, None


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def run(out_dir: Path, profile: str, seed: int, grid=None) -> dict[str, Any]:
    """R11 (registry format)."""
    import jax.random as jr

    from ..tasks import make_task
    from ..train.run import load_run, load_snapshots
    from .compare import grid_arguments, run_compare
    from .registry import verdict_of

    s = PROFILES[profile]
    out = Path(out_dir)
    hps, hp_source = hyperparameters(s, out, seed, grid)
    entries = model_entries(s, hps)
    summary = run_compare("yang_multitask", out_dir=out / "comparison", models=entries, profile=profile, steps=s.steps,
                          seeds=s.seeds, task_options=task_options(s), log=None, **grid_arguments(grid))
    task = make_task("yang_multitask", **task_options(s))
    final_batch = task.sample_each(jr.fold_in(jr.PRNGKey(seed), 1), max(s.n_final, s.n_curve))
    curve_batch = first_per_rule(final_batch, s.n_curve)

    per_seed: dict[str, list[dict]] = {}
    figure_data: dict[str, Any] = {"curves": {}, "interpretation": {}}
    for label in summary["models"]:
        per_seed[label] = []
        for k in range(s.seeds):
            run_dir = _run_dir(out, label, k)
            kept = load_snapshots(run_dir)
            curve = [(step, perf_by_rule(m, task, curve_batch)) for step, m in kept]
            model = load_run(run_dir)[1]
            final = perf_by_rule(model, task, final_batch)
            entry = {"mean_perf": float(np.mean([final[r] for r in s.rules])), "perf": final,
                     "kept_steps": [st for st, _ in curve], "perf_over_training": [c["perf"] for _, c in curve]}
            figure_data["curves"].setdefault(label, []).append(curve)
            if is_enmrnn(label):
                numbers, figs = interpret_network(model, kept[0][1], s, seed + k)
                entry.update(numbers)
                if k == 0:
                    figure_data["interpretation"][label] = figs
            per_seed[label].append(entry)

    checks, facts = yang_checks(per_seed[E_NM], can_decide=profile != "smoke", paper_budget=profile == "paper")
    figures = _figures(out, figure_data, per_seed, s)
    notes = _notes(s, profile, checks, per_seed, summary, hps, hp_source)
    return {
        "checks": checks,
        "metrics": {**facts, "per_seed": per_seed,
                    "models": {k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} for k, v in summary["models"].items()}},
        "settings": {**asdict(s), "profile": profile, "hyperparameters": hps, "hyperparameter_source": hp_source,
                     "task_options": task_options(s), "tau_r": TAU_R, "sigma_rec": SIGMA_REC, "alpha": ALPHA,
                     "learned_min": LEARNED_MIN, "perf_min": PERF_MIN, "separation_min": SEPARATION_MIN,
                     "decode_margin": DECODE_MARGIN},
        "figures": figures,
        "notes": notes,
        "reproduced": verdict_of(checks) == "reproduced",
    }


def _notes(s, profile, checks, per_seed, summary, hps, hp_source) -> str:
    decided = [c["name"] for c in checks if c.get("decided", True)]
    decides = ("every clause" if len(decided) == len(checks) else
               ("these clauses: " + ", ".join(decided)) if decided else "no clause")
    learned = sum(m["mean_perf"] >= LEARNED_MIN for m in per_seed[E_NM])
    why = ""
    if profile != "smoke" and not learned:
        why = (f" No e-nmRNN seed reached a mean percent correct of {LEARNED_MIN:g} at this budget, so (a)-(c) are "
               "undecided: the structure that learning the tasks builds cannot be judged on a network that has not "
               "learned them.")
    labels = list(summary["models"])
    head = "| rule | " + " | ".join(labels) + " |"
    rows = [head, "| --- |" + " ---: |" * len(labels)]
    for r in s.rules:
        rows.append(f"| {r} | " + " | ".join(f"{np.mean([m['perf'][r] for m in per_seed[lab]]):.2f}" for lab in labels) + " |")
    rows.append("| **mean** | " + " | ".join(f"**{np.mean([m['mean_perf'] for m in per_seed[lab]]):.3f}**"
                                           for lab in labels) + " |")
    sizes = "; ".join(f"{lab}: N={info['n_hidden']}, {info['params']} parameters, lr {hps[lab]['lr']:.3g}, "
                      f"L2 {hps[lab]['weight_l2']:.3g}" + (f", tau_n {hps[lab]['tau_n']:.3g} steps" if is_enmrnn(lab) else "")
                      for lab, info in summary["models"].items())
    return (f"Hyperparameters: {hp_source}. Models: {sizes}. {s.steps} steps of batch {s.batch_size} per run, "
            f"{s.seeds} seed(s). This profile decides {decides}.{why}\n\n"
            f"Percent correct per rule (Yang's criterion, {s.n_final} random trials per rule, noise-free network, "
            f"mean over seeds):\n\n" + "\n".join(rows))


def _figures(out: Path, data: dict, per_seed: dict, s: YangSettings) -> list[str]:
    from ..plotting import yang_multitask as plots

    written = [plots.plot_performance(data["curves"], per_seed, s.rules, out / "performance.png")]
    interp = data["interpretation"].get(E_NM)
    if interp is not None:
        written.append(plots.plot_task_variance(interp["task_variance"], interp["clusters"], out / "task_variance.png"))
        written.append(plots.plot_cell_types(interp["R"], interp["cells"], out / "cell_types.png"))
        written.append(plots.plot_timescales(interp["timescales"], out / "timescales.png"))
        written.append(plots.plot_decoding(interp["epochs"], interp["decoding"], out / "decoding.png"))
    return [str(Path(w).relative_to(out)) for w in written]


__all__ = [
    "ALPHA",
    "DECODE_MARGIN",
    "LEARNED_MIN",
    "PERF_MIN",
    "PROFILES",
    "R11_MODEL",
    "R11_PARAMETER_COUNT",
    "SEPARATION_MIN",
    "YangSettings",
    "decoding_comparison",
    "first_per_rule",
    "hyperparameters",
    "interpret_network",
    "mcnemar_greater",
    "model_entries",
    "perf_by_rule",
    "run",
    "separation",
    "subset_trials",
    "sweep_specs",
    "task_options",
    "timescale_comparison",
    "yang_checks",
]
