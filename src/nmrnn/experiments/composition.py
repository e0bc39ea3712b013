"""R8: compositional generalisation against task complexity (e-nmRNN paper 000, supplement 9.2,
Table 3 and Fig. 3).

The claim: on the compositional task (T6, :mod:`nmrnn.tasks.composition`: the input
``sum_k a_k mu_k(t)`` must be mapped to ``sum_k a_k eta_k(t)``, tested on coefficient vectors never
trained on), with every model tuned by a TPE search at K = 8 and matched at about 50k parameters,
the e-nmRNN generalises as well as the gated models (GRU, LSTM) over K = 1..20, with more
robustness to its hyperparameters, and the spatially embedded variant improves its generalisation.

What runs
---------
Nine models. The e-nmRNN (ReLU-Tanh, 4 NMs) comes first and fixes the parameter count; the
paper's sizes are kept where it gives them (vanilla RNN with twice the e-nmRNN's neurons, 256 at
the paper's scale; GRU with as many, 128) and :func:`nmrnn.models.match_size` sizes the others to
the e-nmRNN's count (the smallest size that reaches it): the same e-nmRNN with its neurons on a
3-D grid and its recurrent weights masked by ``exp(-d / lambda)``, ``lambda`` = 10% of the grid's
largest side (:mod:`nmrnn.spatial`; R7's spatial variant), LSTM, NM-RNN (16 NM units, rank = the
e-nmRNN's ``t_rank``), causal Transformer, HiPPO-LegT and coRNN, each with its library defaults.

**Choice (e-nmRNN size).** A full T at N = 128 with 4 NMs gives the e-nmRNN 83,089 parameters.
The factorised T of rank ``t_rank`` = 32 (``T_k = sum_j a_kj b_kj^T``) gives 50,321, the paper's
"parameter-matched ~50k" (the GRU at 128 has 50,177; the paper's vanilla RNN at 256 has 66,049:
its sizes are not matched to each other, and the issue keeps them). The quick profile keeps the
same proportions at N = 32, ``t_rank`` = 8 (3,377 parameters). The NM-RNN's parameter count
grows with its hidden size only through its rank-``t_rank`` factors, so its matched size is large
(N = 751 at the paper's scale).

**Choice (time constants).** Table 3 tunes ``tau_n`` in [0.1, 10]; the Euler step needs
``dt <= tau_n``. The e-nmRNN runs with ``dt = 0.1`` and ``tau_r = 1`` (the rate ``dt / tau_r`` = 0.1
per step of the library's default ``dt = 1, tau_r = 10``), so the searched ``tau_n`` moves the NMs
at rates from 1 down to 0.01 per step. A range end outside a model's valid values (e.g. ``tau_n``
below ``dt``) is refused, naming it, before anything trains.

Training (Table 3): Adam (global-norm clip 1, the library's default), batch 16, no activity
regularisation, weight L2 ``weight_l2 * sum(theta^2)`` added to the loss (PyTorch's Adam
``weight_decay`` w corresponds to ``weight_l2`` = w / 2; the paper does not say which it used).
The training set is the task's ``n_train`` = 512 coefficient vectors (dense, uniform in [-1, 1]),
trained in minibatches of 16 drawn with replacement (``fixed_batch=True, batch_size=16``): one
epoch is ``n_train / 16`` = 32 updates, 1000 epochs 32,000 updates. Validation is the ``n_test``
= 128 unseen compositions. One comparison (:func:`nmrnn.experiments.compare.run_compare`: a grid,
so ``--workers`` apply) per K; the runs keep their model every ``keep_every`` updates
(``TrainConfig.keep_every``).

Hyperparameters: a TPE search per model at ``K = k_tuned`` (8) over ``lr`` in [1e-4, 1e-2],
``weight_l2`` in [1e-6, 1e-4] (both log-uniform) and, for the two e-nmRNNs, ``tau_n`` in [0.1, 10]
(log; the other models have no ``tau_n``, the NM-RNN's NM time constant stays at its default);
objective: the validation variance explained of the model after ``sweep_epochs`` epochs (maximised;
one seed per trial; :mod:`nmrnn.experiments.sweep`). Every K trains with the best trial's values.
The searches share their study seed, so the models searched over the same two parameters draw
the same random start-up trials (common random numbers for the robustness comparison; the
e-nmRNNs' third parameter changes their draws).
The paper profile runs the search (100 trials per model) into the output folder
(``hyperparameters.json``, reused when the profile runs again); the quick profile reuses the
stored search at its own sizes (``composition_sweep.json`` next to this module, made by ``nmrnn
reproduce composition --search --profile quick``; its settings, trials and date are stored with it);
the smoke profile runs a 2-trial search.

Measurements
------------
* **Metric** of a run: the *best validation variance explained* over training, the paper's
  quantity: the largest ``1 - SSE / SST`` (:func:`nmrnn.tasks.composition.variance_explained`) on
  the unseen compositions over the kept models (the initial one included). Selecting on the set
  that is reported is optimistic; the final model's value is reported beside it.
* **Robustness** of a model: the interquartile range (IQR) of the search objective over its
  completed search trials (diverged trials are counted and reported, not included). TPE samples
  adaptively, so the spread depends on the sampler as well as the model; the IQR over the first
  :data:`STARTUP_TRIALS` trials (TPE's random start-up draws from the search ranges) and the
  fraction of trials within :data:`NEAR_BEST` of the model's best are reported beside it.
* **Decoding**: a ridge decoder (:func:`nmrnn.tasks.composition.decode_coefficients`, alpha 1e-3)
  of the K coefficients from the state when the whole input has been seen (step
  ``input_steps - 1``), fitted on the training compositions and scored (R^2, mean over the K
  coefficients) on the unseen ones; from the hidden state (each model's first state variable:
  the e-nmRNN's rates r, the GRU's h, ...) and from the NM state (the e-nmRNNs' n, the NM-RNN's
  z), of the model at its best validation point. Reported against K, not checked (the paper uses
  it to describe the failure to generalise at large K, not as a claim).

Checks (criteria fixed here before any run; never loosened afterwards)
--------------------------------------------------------------------
(a) **matches the gated models at K = k_tuned**: the e-nmRNN's per-seed metric is not below the
    best gated model's (GRU or LSTM, whichever has the higher median) by more than
    :data:`TOLERANCE` = 0.05: a one-sided exact rank test (non-inferiority,
    :func:`nmrnn.experiments.statistics.rank_test` of the gated values minus the tolerance against
    the e-nmRNN's), p < 0.05;
(a') **matches them over K**: the same test on each seed's mean of the metric over the K grid
    (undecided with a single K);
(b) **more robust than the GRU**, **than the LSTM**: the e-nmRNN's IQR over its search trials is
    smaller: the one-sided 95% bootstrap upper bound of IQR(e-nmRNN) / IQR(gated) (trials
    resampled with replacement within each model, :data:`BOOTSTRAP` resamples) is below 1;
    undecided with fewer than :data:`MIN_TRIALS` completed trials for either model;
(c) **spatial embedding improves generalisation**: the spatially embedded e-nmRNN's metric at
    K = k_tuned is larger than the plain one's (one-sided exact rank test, p < 0.05).

The rank tests are undecided with too few seeds for p to reach 0.05 (fewer than 4 per model);
every check is undecided at the smoke profile's size. The report says which clauses a profile
decides.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..tasks.composition import MAX_BASIS
from ..train.checkpoint import atomic_write_json
from .compare import ModelEntry, grid_arguments, resolve_sizes, run_compare, slug
from .grid import GridOptions
from .profiles import Profiles, search_and_store
from .registry import check, verdict_of
from .statistics import ALPHA, rank_test

TOLERANCE = 0.05  # (a), (a'): largest shortfall of variance explained against the best gated model
MIN_TRIALS = 20  # (b): completed search trials per model needed to decide
BOOTSTRAP = 4000  # (b): bootstrap resamples
CONFIDENCE = 0.95  # (b): one-sided level of the bootstrap bound
STARTUP_TRIALS = 10  # TPE's random start-up trials (Optuna's default), reported
NEAR_BEST = 0.1  # reported: fraction of search trials within this of the model's best
DECODER_ALPHA = 1e-3
LR_RANGE = (1e-4, 1e-2)  # Table 3, log-uniform
WEIGHT_L2_RANGE = (1e-6, 1e-4)  # Table 3, log-uniform
TAU_N_RANGE = (0.1, 10.0)  # Table 3, log-uniform (e-nmRNNs only)
TAU_N_DEFAULT = 1.0  # the e-nmRNN's tau_n when no search gives one
STORED = Path(__file__).with_name("composition_sweep.json")
OBJECTIVE = "test/variance_explained"

E_NM, E_NM_SPATIAL = "e-nmRNN", "e-nmRNN spatial"
GATED = ("GRU", "LSTM")
#: Every model of R8, in order (the first fixes the parameter count).
MODEL_LABELS = (E_NM, E_NM_SPATIAL, "vanilla RNN", "GRU", "LSTM", "NM-RNN", "Transformer", "HiPPO-LegT", "coRNN")
#: The models the checks need.
REQUIRED = (E_NM, E_NM_SPATIAL, *GATED)


def _range(name: str, r: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {r!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"{name} must satisfy 0 < low < high (searched log-uniformly), got {r!r}")
    return low, high


@dataclass(frozen=True)
class CompositionSettings:
    """One scale of R8. Every field is checked on construction (no training needed); the checks
    that build models and tasks (the basis size against K, the search ranges against each model)
    are :func:`validate`'s."""

    n_hidden: int  # e-nmRNN neurons (GRU: as many; vanilla RNN: twice as many)
    t_rank: int  # rank of the e-nmRNN's factorised T (and of the NM-RNN's low-rank part)
    spatial_grid: tuple[int, int, int]  # the spatial variant's grid (holds n_hidden neurons)
    k_values: tuple[int, ...]  # the K grid
    epochs: int  # training epochs over the n_train training compositions
    seeds: int
    keep_every_epochs: int  # epochs between kept models
    hyper: str | Mapping[str, Any] = "stored"  # "stored", "tune" or {"lr", "weight_l2", "tau_n"} for every model
    k_tuned: int = 8  # K of the search and of checks (a), (c)
    n_nm: int = 4
    sweep_trials: int = 100
    sweep_epochs: int = 1000
    models: tuple[str, ...] = MODEL_LABELS
    n_train: int = 512
    n_test: int = 128
    input_steps: int = 50
    output_steps: int = 50
    n_harmonics: int = 16
    batch_size: int = 16
    dt: float = 0.1  # e-nmRNN Euler step (see the module docstring)
    tau_r: float = 1.0
    lr_range: tuple[float, float] = LR_RANGE
    weight_l2_range: tuple[float, float] = WEIGHT_L2_RANGE
    tau_n_range: tuple[float, float] = TAU_N_RANGE

    def __post_init__(self):
        for name in ("n_hidden", "t_rank", "epochs", "seeds", "keep_every_epochs", "k_tuned", "n_nm",
                     "sweep_trials", "sweep_epochs", "n_train", "n_test", "input_steps", "output_steps",
                     "n_harmonics", "batch_size"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        ks = tuple(self.k_values) if isinstance(self.k_values, Sequence) else None
        if not ks:
            raise ValueError(f"k_values must be a non-empty list of integers, got {self.k_values!r}")
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_BASIS:
                raise ValueError(f"every K must be an integer in 1..{MAX_BASIS}, got {k!r} in k_values={list(ks)}")
        if len(set(ks)) != len(ks):
            raise ValueError(f"k_values must be distinct, got {list(ks)}")
        object.__setattr__(self, "k_values", tuple(sorted(int(k) for k in ks)))
        if not 1 <= self.k_tuned <= MAX_BASIS or self.k_tuned not in self.k_values:
            raise ValueError(f"k_tuned={self.k_tuned} (the K of the search and the checks) must be one of k_values {list(self.k_values)}")
        from ..spatial import check_grid

        object.__setattr__(self, "spatial_grid", check_grid(self.spatial_grid, self.n_hidden))
        models = tuple(self.models)
        unknown = sorted(set(models) - set(MODEL_LABELS))
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; R8's models: {', '.join(MODEL_LABELS)}")
        missing = [m for m in REQUIRED if m not in models]
        if missing:
            raise ValueError(f"models must include {', '.join(REQUIRED)} (the checks compare them); missing {missing}")
        object.__setattr__(self, "models", tuple(m for m in MODEL_LABELS if m in models))
        for name in ("lr_range", "weight_l2_range", "tau_n_range"):
            object.__setattr__(self, name, _range(name, getattr(self, name)))
        for name in ("dt", "tau_r"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if isinstance(self.hyper, Mapping):
            need = {"lr", "weight_l2"}
            bad = sorted(set(self.hyper) - {"lr", "weight_l2", "tau_n"})
            if bad or not need <= set(self.hyper):
                raise ValueError(f"fixed hyperparameters take lr, weight_l2 and optionally tau_n, got {dict(self.hyper)!r}")
        elif self.hyper not in ("stored", "tune"):
            raise ValueError(f"hyper must be 'stored', 'tune' or a dict of fixed values, got {self.hyper!r}")

    @property
    def updates_per_epoch(self) -> float:
        return self.n_train / self.batch_size

    def updates(self, epochs: int) -> int:
        """Optimiser updates of ``epochs`` epochs (at least one)."""
        return max(1, round(epochs * self.updates_per_epoch))

    @property
    def steps(self) -> int:
        return self.updates(self.epochs)

    @property
    def keep_every(self) -> int:
        return min(self.updates(self.keep_every_epochs), self.steps)

    @property
    def sweep_steps(self) -> int:
        return self.updates(self.sweep_epochs)

    def task_options(self, k: int) -> dict[str, Any]:
        return {"n_basis": int(k), "n_train": self.n_train, "n_test": self.n_test, "input_steps": self.input_steps,
                "output_steps": self.output_steps, "n_harmonics": self.n_harmonics}


PROFILES = Profiles(
    smoke=CompositionSettings(n_hidden=6, t_rank=2, n_nm=2, spatial_grid=(3, 2, 1), k_values=(2,), k_tuned=2,
                              epochs=10, seeds=1, keep_every_epochs=5, hyper="tune", sweep_trials=2, sweep_epochs=5,
                              models=REQUIRED, n_train=16, n_test=16, input_steps=20, output_steps=20),
    quick=CompositionSettings(n_hidden=32, t_rank=8, spatial_grid=(4, 4, 2), k_values=(1, 4, 8, 16), epochs=48,
                              seeds=4, keep_every_epochs=8, sweep_trials=20, sweep_epochs=48),
    paper=CompositionSettings(n_hidden=128, t_rank=32, spatial_grid=(8, 4, 4), k_values=tuple(range(1, 21)),
                              epochs=1000, seeds=5, keep_every_epochs=50, hyper="tune", sweep_trials=100,
                              sweep_epochs=1000),
)


def model_entries(s: CompositionSettings, hyper: Mapping[str, Mapping[str, float]] | None = None) -> list[ModelEntry]:
    """R8's models (those of ``s.models``; the e-nmRNN first: the other sizes are matched to its
    count unless the paper gives them), each with its hyperparameters from ``hyper`` (label ->
    ``{"lr", "weight_l2", "tau_n"}``) and the kept models over training."""
    train = {"optimizer": "adam", "clip": 1.0, "batch_size": s.batch_size, "fixed_batch": True,
             "activity_l2": 0.0, "keep_every": s.keep_every, "steps_per_call": s.keep_every,
             "checkpoint_every": max(s.keep_every, s.steps // 10)}
    enm = {"n_nm": s.n_nm, "t_rank": s.t_rank, "activation": "relutanh", "dt": float(s.dt), "tau_r": float(s.tau_r),
           "tau_n": TAU_N_DEFAULT}
    catalogue = {
        E_NM: ModelEntry(E_NM, "enmrnn", s.n_hidden, enm),
        E_NM_SPATIAL: ModelEntry(E_NM_SPATIAL, "enmrnn", s.n_hidden, {**enm, "spatial_grid": list(s.spatial_grid)}),
        "vanilla RNN": ModelEntry("vanilla RNN", "vanilla", 2 * s.n_hidden, {}),
        "GRU": ModelEntry("GRU", "gru", s.n_hidden, {}),
        "LSTM": ModelEntry("LSTM", "lstm", None, {}),
        "NM-RNN": ModelEntry("NM-RNN", "nmrnn", None, {"n_nm": 16, "rank": s.t_rank}),
        "Transformer": ModelEntry("Transformer", "transformer", None, {}),
        "HiPPO-LegT": ModelEntry("HiPPO-LegT", "hippo_legt", None, {}),
        "coRNN": ModelEntry("coRNN", "cornn", None, {}),
    }
    out = []
    for label in s.models:
        e = catalogue[label]
        options, extra = dict(e.options), {}
        if hyper is not None:
            h = hyper[label]
            extra = {"lr": float(h["lr"]), "weight_l2": float(h["weight_l2"])}
            if e.model == "enmrnn" and h.get("tau_n") is not None:
                options["tau_n"] = float(h["tau_n"])
        out.append(ModelEntry(e.label, e.model, e.n_hidden, options, None, {**train, **extra}))
    return out


def sized_entries(s: CompositionSettings, hyper=None) -> list[tuple[ModelEntry, int, int]]:
    """``(entry, n_hidden, parameter count)`` of every model (the task has one input and one
    output channel)."""
    return resolve_sizes(model_entries(s, hyper), 1, 1)


# ----------------------------------------------------------------------------------------------
# validation and the search
# ----------------------------------------------------------------------------------------------


def sweep_specs(s: CompositionSettings, seed: int = 0) -> dict[str, Any]:
    """The TPE search of every model at ``K = s.k_tuned`` (:class:`~nmrnn.experiments.sweep.SweepSpec`,
    which checks every range end against the model: a range outside its valid values is refused
    here, naming the model)."""
    from .sweep import ParamSpec, SweepSpec

    specs = {}
    for entry, n_hidden, _ in sized_entries(s):
        steps = s.sweep_steps
        train = {k: v for k, v in entry.train.items() if k != "keep_every"}
        # the main runs' chunk length: the search's compiled programs serve them at K = k_tuned
        train.update(steps=steps, steps_per_call=min(s.keep_every, steps), checkpoint_every=steps)
        params = [ParamSpec("train.lr", "float", *s.lr_range, log=True),
                  ParamSpec("train.weight_l2", "float", *s.weight_l2_range, log=True)]
        if entry.model == "enmrnn":
            params.append(ParamSpec("model.tau_n", "float", *s.tau_n_range, log=True))
        try:
            specs[entry.label] = SweepSpec(
                model=entry.model, task="composition", n_hidden=n_hidden, model_options=dict(entry.options),
                task_options=s.task_options(s.k_tuned), train=train, metric=OBJECTIVE, direction="maximize",
                n_trials=s.sweep_trials, seeds_per_trial=1, sampler="TPESampler", study_seed=seed, params=tuple(params))
        except ValueError as err:
            raise ValueError(f"the search of the {entry.label} is refused: {err}") from None
    return specs


def validate(s: CompositionSettings, seed: int = 0) -> dict[str, Any]:
    """Every check that needs models and tasks, before anything trains: the task at each K
    (K within the basis size: the input basis must be linearly independent), the model sizes,
    and each model's search (every range end against the model). Returns the search specs."""
    from ..tasks.composition import Composition

    for k in s.k_values:
        try:
            Composition(**s.task_options(k))
        except ValueError as err:
            raise ValueError(f"K={k} is refused: {err}") from None
    specs = sweep_specs(s, seed)
    if isinstance(s.hyper, Mapping):
        from .sweep import SweepSpec

        for label, spec in specs.items():
            values = {"train.lr": s.hyper["lr"], "train.weight_l2": s.hyper["weight_l2"]}
            if spec.model == "enmrnn" and s.hyper.get("tau_n") is not None:
                values["model.tau_n"] = s.hyper["tau_n"]
            try:  # the training config and the model, on shapes only
                SweepSpec._abstract_build(spec.run_spec(values, seed=0))
            except (TypeError, ValueError) as err:
                raise ValueError(f"the fixed hyperparameters of the {label} are refused: {err}") from None
    return specs


def _search_key(s: CompositionSettings) -> dict[str, Any]:
    """What a stored search must match to be reused: the sizes, the task, the ranges, the objective."""
    return {"n_hidden": s.n_hidden, "t_rank": s.t_rank, "n_nm": s.n_nm, "spatial_grid": list(s.spatial_grid),
            "k_tuned": s.k_tuned, "sweep_epochs": s.sweep_epochs, "batch_size": s.batch_size,
            "task": s.task_options(s.k_tuned), "dt": s.dt, "tau_r": s.tau_r,
            "lr_range": list(s.lr_range), "weight_l2_range": list(s.weight_l2_range), "tau_n_range": list(s.tau_n_range)}


def _trial_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"number": r["number"], "state": r["state"], "value": r["value"], "params": r["params"]}
            for r in summary["trials"]]


def tune_hyperparameters(s: CompositionSettings, out_dir: Path, *, seed: int = 0, grid: GridOptions | None = None,
                         log=None, specs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The TPE search of every model at ``K = s.k_tuned`` (one sweep per model in
    ``out_dir/sweeps/<model>``; resumable). Returns ``{"best": {label: {"lr", "weight_l2",
    "tau_n"}}, "best_value", "trials": {label: [trial rows]}, "settings", "date"}``."""
    from .sweep import run_sweep

    specs = validate(s, seed) if specs is None else specs
    grid = grid or GridOptions()
    best, values, trials = {}, {}, {}
    for label, spec in specs.items():
        summary = run_sweep(spec, Path(out_dir) / "sweeps" / slug(label), workers=grid.workers, force=grid.force,
                            figures=False, log=log)
        if not summary["best"]:
            raise RuntimeError(f"the search of the {label} finished no trial")
        p = summary["best"][0]["params"]
        best[label] = {"lr": float(p["train.lr"]), "weight_l2": float(p["train.weight_l2"]),
                       "tau_n": float(p["model.tau_n"]) if "model.tau_n" in p else None}
        values[label] = float(summary["best"][0]["value"])
        trials[label] = _trial_rows(summary)
    return {"best": best, "best_value": values, "trials": trials,
            "settings": {**_search_key(s), "sweep_trials": s.sweep_trials, "models": list(specs),
                         "objective": f"{OBJECTIVE} after {s.sweep_epochs} epochs ({s.sweep_steps} updates)"},
            "date": datetime.date.today().isoformat()}


def _matches(found: Mapping[str, Any], s: CompositionSettings) -> bool:
    st = found.get("settings", {})
    return (all(st.get(k) == v for k, v in json.loads(json.dumps(_search_key(s))).items())
            and set(s.models) <= set(found.get("best", {})))


def hyperparameters(s: CompositionSettings, profile: str, out_dir: Path, seed: int, grid: GridOptions | None,
                    specs: Mapping[str, Any] | None = None) -> tuple[dict[str, dict], str, dict[str, list] | None]:
    """Each model's hyperparameters for this profile, a sentence saying where they came from, and
    the search trials of each model (``None`` without a search). ``specs``: the searches of
    :func:`validate` (made again when not given)."""
    if isinstance(s.hyper, Mapping):
        h = {"lr": float(s.hyper["lr"]), "weight_l2": float(s.hyper["weight_l2"]),
             "tau_n": None if s.hyper.get("tau_n") is None else float(s.hyper["tau_n"])}
        return {k: dict(h) for k in s.models}, "fixed hyperparameters for every model (no search)", None
    if s.hyper == "tune":
        saved = Path(out_dir) / "hyperparameters.json"
        if saved.exists():
            found = json.loads(saved.read_text())
            if found.get("settings", {}).get("sweep_trials") == s.sweep_trials and _matches(found, s):
                return found["best"], f"the TPE search of this folder ({saved.name}, {s.sweep_trials} trials per model)", found["trials"]
        found = tune_hyperparameters(s, out_dir, seed=seed, grid=grid, specs=specs)
        atomic_write_json(saved, found)
        return found["best"], f"a TPE search run by this profile ({s.sweep_trials} trials per model; {saved.name})", found["trials"]
    stored = json.loads(STORED.read_text()).get(profile) if STORED.exists() else None
    if stored is None or not _matches(stored, s):
        raise ValueError(f"no stored search for the {profile} profile's settings in {STORED.name}; "
                         f"run nmrnn reproduce composition --search --profile {profile}")
    st = stored["settings"]
    return stored["best"], (f"the stored TPE search at these sizes ({STORED.name}: {st['sweep_trials']} trials per model, "
                            f"objective {st['objective']}, {stored['date']})"), stored["trials"]


# ----------------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------------


def best_index(values: Sequence[float]) -> int:
    """Index of the largest finite value (the first on ties; 0 when none is finite)."""
    v = np.asarray(values, dtype=float)
    v = np.where(np.isfinite(v), v, -np.inf)
    return int(np.argmax(v))


def validation_curve(models: Sequence, batch) -> list[float]:
    """The variance explained of each model on ``batch`` (NaN for a non-finite output)."""
    from ..models import simulate
    from ..tasks.composition import variance_explained

    out = []
    for m in models:
        ve = float(variance_explained(simulate(m, batch.inputs).outputs, batch.targets, batch.mask))
        out.append(ve if math.isfinite(ve) else math.nan)
    return out


def decoding(model, task) -> dict[str, float | None]:
    """Test R^2 of the ridge decoding of the coefficients from the hidden state (the model's first
    state variable) and the NM state (its ``modulatory_fields``; ``None`` without) at step
    ``input_steps - 1``, fitted on the training compositions."""
    from ..models import simulate
    from ..tasks.composition import decode_coefficients

    train, test = task.train_batch(), task.test_batch()
    tr, te = simulate(model, train.inputs), simulate(model, test.inputs)
    t = task.input_steps - 1
    out: dict[str, float | None] = {}
    for key, fields in (("hidden", model.state_fields[:1]), ("nm", tuple(model.modulatory_fields))):
        if not fields:
            out[key] = None
            continue
        d = decode_coefficients(tr, train.info["coefficients"], te, test.info["coefficients"], field=fields[0],
                                time_index=t, alpha=DECODER_ALPHA)
        out[key] = d.r2_test
    return out


def measure_run(run_dir: Path, task) -> dict[str, Any]:
    """The per-seed numbers of one run directory: the validation variance explained of every kept
    model, its best (the metric), the final one, and the decoding at the best kept model."""
    from ..train.run import load_snapshots

    kept = load_snapshots(run_dir)
    steps = [st for st, _ in kept]
    ve = validation_curve([m for _, m in kept], task.test_batch())
    i = best_index(ve)
    return {"best_ve": ve[i], "best_step": steps[i], "final_ve": ve[-1], "kept_steps": steps, "validation_ve": ve,
            "decoding": decoding(kept[i][1], task)}


def iqr(values: Sequence[float]) -> float:
    """Interquartile range (linear interpolation of the quartiles, NumPy's default)."""
    q25, q75 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q75 - q25)


def spread_ratio(a: Sequence[float], b: Sequence[float], *, n_boot: int = BOOTSTRAP, confidence: float = CONFIDENCE,
                 seed: int = 0) -> dict[str, float]:
    """``IQR(a) / IQR(b)`` and its percentile-bootstrap bounds: each sample resampled with
    replacement within itself ``n_boot`` times (``seed``); ``upper`` is the ``confidence``
    quantile of the resampled ratios (one-sided bound), ``lower`` the ``1 - confidence`` one. A
    resample of ``b`` with zero IQR gives an infinite ratio."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size < 2 or b.size < 2:
        raise ValueError(f"spread_ratio needs two 1-D samples of at least 2 values, got shapes {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("spread_ratio needs finite values")
    rng = np.random.default_rng(seed)
    qa = np.percentile(a[rng.integers(0, a.size, (n_boot, a.size))], [25, 75], axis=1)
    qb = np.percentile(b[rng.integers(0, b.size, (n_boot, b.size))], [25, 75], axis=1)
    num, den = qa[1] - qa[0], qb[1] - qb[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)
    ib = iqr(b)
    # quantiles without interpolation (the resampled ratios may be infinite)
    return {"ratio": iqr(a) / ib if ib > 0 else math.inf,
            "lower": float(np.quantile(ratios, 1 - confidence, method="inverted_cdf")),
            "upper": float(np.quantile(ratios, confidence, method="inverted_cdf"))}


def robustness(trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The spread of a model's search objective over its trials (see the module docstring)."""
    done = [t for t in sorted(trials, key=lambda t: t["number"]) if t["state"] == "COMPLETE" and t["value"] is not None]
    values = [float(t["value"]) for t in done]
    startup = [float(t["value"]) for t in done if t["number"] < STARTUP_TRIALS]
    best = max(values) if values else math.nan
    return {"completed": len(values), "failed": sum(t["state"] == "FAIL" for t in trials),
            "values": values, "iqr": iqr(values) if len(values) >= 2 else math.nan,
            "iqr_startup": iqr(startup) if len(startup) >= 2 else math.nan,
            "median": float(np.median(values)) if values else math.nan, "best": best,
            "near_best": float(np.mean([v >= best - NEAR_BEST for v in values])) if values else math.nan}


# ----------------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------------


def _best_gated(values: Mapping[str, Sequence[float]]) -> str:
    return max(GATED, key=lambda g: (float(np.median(values[g])), -GATED.index(g)))


def _noninferiority(name: str, enm: Sequence[float], values: Mapping[str, Sequence[float]], where: str, decided: bool) -> dict:
    gated = _best_gated(values)
    p, decidable = rank_test(np.asarray(values[gated], dtype=float) - TOLERANCE, enm)
    med_e, med_g = float(np.median(enm)), float(np.median(values[gated]))
    return check(name, {"median e-nmRNN": med_e, f"median {gated}": med_g, "best gated": gated, "p": p},
                 p < ALPHA,
                 f"{where}: one-sided exact rank test that the {gated}'s per-seed values minus {TOLERANCE:g} fall below the "
                 f"e-nmRNN's (non-inferiority within {TOLERANCE:g} of the best gated model, GRU or LSTM by median), p < {ALPHA}",
                 decided=decided and decidable)


def composition_checks(per_seed: Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]],
                       trials: Mapping[str, Sequence[Mapping[str, Any]]] | None, k_tuned: int, *,
                       can_decide: bool = True, seed: int = 0) -> tuple[list[dict], dict]:
    """R8's checks from the per-seed measurements (``{label: {K: [run, ...]}}``, each run with
    ``best_ve``) and the search trials of each model (``{label: [{"number", "state", "value"}]}``;
    ``None``: no search). ``can_decide=False`` (the smoke profile) makes every check undecided."""
    at_k = {label: [float(m["best_ve"]) for m in runs[k_tuned]] for label, runs in per_seed.items()}
    ks = sorted(per_seed[E_NM])
    over_k = {label: list(np.mean([[float(m["best_ve"]) for m in runs[k]] for k in ks], axis=0))
              for label, runs in per_seed.items()}
    checks = [
        _noninferiority(f"e-nmRNN matches the gated models at K = {k_tuned}", at_k[E_NM], at_k,
                        f"per-seed best validation variance explained at K = {k_tuned}", can_decide),
        _noninferiority("e-nmRNN matches the gated models over K", over_k[E_NM], over_k,
                        f"per-seed mean over K = {ks} of the best validation variance explained",
                        can_decide and len(ks) > 1),
    ]
    rob = {label: robustness(t) for label, t in (trials or {}).items()}
    for g in GATED:
        if E_NM in rob and g in rob and rob[E_NM]["completed"] >= 2 and rob[g]["completed"] >= 2:
            sr = spread_ratio(rob[E_NM]["values"], rob[g]["values"], seed=seed)
            enough = min(rob[E_NM]["completed"], rob[g]["completed"]) >= MIN_TRIALS
            value = {"IQR e-nmRNN": rob[E_NM]["iqr"], f"IQR {g}": rob[g]["iqr"], "ratio": sr["ratio"],
                     "upper bound": sr["upper"], "trials": [rob[E_NM]["completed"], rob[g]["completed"]]}
            passed = sr["upper"] < 1.0
        else:
            enough, value, passed = False, {"trials": [rob.get(E_NM, {}).get("completed", 0), rob.get(g, {}).get("completed", 0)]}, False
        checks.append(check(f"e-nmRNN is more robust to its hyperparameters than the {g}", value, passed,
                            f"IQR of the search objective over completed trials: one-sided {CONFIDENCE:.0%} bootstrap upper "
                            f"bound of IQR(e-nmRNN) / IQR({g}) below 1 ({BOOTSTRAP} resamples; needs >= {MIN_TRIALS} "
                            "completed trials per model)", decided=can_decide and enough))
    p, decidable = rank_test(at_k[E_NM], at_k[E_NM_SPATIAL])
    med_s, med_e = float(np.median(at_k[E_NM_SPATIAL])), float(np.median(at_k[E_NM]))
    checks.append(check(f"spatial embedding improves the e-nmRNN's generalisation at K = {k_tuned}",
                        {"median spatial": med_s, "median plain": med_e, "p": p}, p < ALPHA and med_s > med_e,
                        f"one-sided exact rank test: the spatially embedded e-nmRNN's per-seed best validation variance "
                        f"explained above the plain one's, p < {ALPHA}", decided=can_decide and decidable))
    facts = {"median_best_ve": {label: {str(k): float(np.median([m["best_ve"] for m in runs[k]])) for k in ks}
                                for label, runs in per_seed.items()},
             "robustness": {label: {k: v for k, v in r.items() if k != "values"} for label, r in rob.items()}}
    return checks, facts


# ----------------------------------------------------------------------------------------------
# the reproduction
# ----------------------------------------------------------------------------------------------


def _run_dir(out: Path, k: int, label: str, seed: int) -> Path:
    return out / "comparison" / f"K{k:02d}" / "runs" / f"{slug(label)}_seed{seed}"


def run(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None, *,
        settings: CompositionSettings | None = None) -> dict[str, Any]:
    """R8 (registry format). ``settings`` replaces the profile's (checked before anything trains)."""
    from ..tasks.composition import Composition

    s = PROFILES[profile] if settings is None else settings
    if not isinstance(s, CompositionSettings):
        raise ValueError(f"settings must be CompositionSettings, got {type(s).__name__}")
    out = Path(out_dir)
    specs = validate(s, seed)  # every refusal comes before anything trains
    hyper, source, trials = hyperparameters(s, profile, out, seed, grid, specs)
    entries = model_entries(s, hyper)
    per_seed: dict[str, dict[int, list[dict]]] = {label: {} for label in s.models}
    models_info: dict[str, Any] = {}
    for k in s.k_values:
        summary = run_compare("composition", out_dir=out / "comparison" / f"K{k:02d}", models=entries, profile=profile,
                              steps=s.steps, seeds=s.seeds, task_options=s.task_options(k), figures=False, log=None,
                              **grid_arguments(grid))
        task = Composition(**s.task_options(k))
        for label in s.models:
            per_seed[label][k] = [measure_run(_run_dir(out, k, label, i), task) for i in range(s.seeds)]
        models_info = {label: {kk: vv for kk, vv in v.items() if kk not in ("per_seed", "mean", "sem")}
                       for label, v in summary["models"].items()}
    checks, facts = composition_checks(per_seed, trials, s.k_tuned, can_decide=profile != "smoke", seed=seed)
    decoding_table = {label: {str(k): {key: [m["decoding"][key] for m in runs[k]] for key in ("hidden", "nm")}
                              for k in s.k_values} for label, runs in per_seed.items()}
    figures = _figures(out, s, per_seed, trials, hyper)
    return {
        "checks": checks,
        "metrics": {**facts,
                    "per_seed": {label: {str(k): [{kk: vv for kk, vv in m.items() if kk != "decoding"} for m in runs[k]]
                                         for k in s.k_values} for label, runs in per_seed.items()},
                    "decoding_r2_test": decoding_table, "models": models_info},
        "settings": {**asdict(s), "profile": profile,
                     "updates": s.steps, "keep_every_updates": s.keep_every, "sweep_updates": s.sweep_steps,
                     "hyperparameters": hyper, "hyperparameter_source": source, "tolerance": TOLERANCE,
                     "min_trials": MIN_TRIALS, "bootstrap": BOOTSTRAP, "confidence": CONFIDENCE,
                     "decoder_alpha": DECODER_ALPHA},
        "figures": figures,
        "notes": _notes(s, profile, checks, per_seed, facts, hyper, source, models_info),
        "reproduced": verdict_of(checks) == "reproduced",
    }


def _fmt_ms(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else f"{v.mean():.3f}"


def _notes(s, profile, checks, per_seed, facts, hyper, source, models_info) -> str:
    decided = [c["name"] for c in checks if c.get("decided", True)]
    decides = ("every clause" if len(decided) == len(checks) else
               ("these clauses: " + "; ".join(decided)) if decided else "no clause")
    head = ["| model | N | params | lr | weight L2 | tau_n | " + " | ".join(f"K = {k}" for k in s.k_values) + " |",
            "| --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in s.k_values) + " |"]
    for label in s.models:
        h, info = hyper[label], models_info[label]
        tau = f"{h['tau_n']:.3g}" if h.get("tau_n") is not None and info["model"] == "enmrnn" else "-"
        head.append(f"| {label} | {info['n_hidden']} | {info['params']} | {h['lr']:.3g} | {h['weight_l2']:.3g} | {tau} | "
                    + " | ".join(_fmt_ms([m["best_ve"] for m in per_seed[label][k]]) for k in s.k_values) + " |")
    dec = ["| model | " + " | ".join(f"K = {k} hidden / NM" for k in s.k_values) + " |",
           "| --- | " + " | ".join("---:" for _ in s.k_values) + " |"]
    for label in s.models:
        cells = []
        for k in s.k_values:
            hid = np.median([m["decoding"]["hidden"] for m in per_seed[label][k]])
            nms = [m["decoding"]["nm"] for m in per_seed[label][k] if m["decoding"]["nm"] is not None]
            cells.append(f"{hid:.2f} / {np.median(nms):.2f}" if nms else f"{hid:.2f} / -")
        dec.append(f"| {label} | " + " | ".join(cells) + " |")
    rob = facts["robustness"]
    rtab = []
    if rob:
        rtab = ["| model | completed (failed) trials | median | best | IQR | IQR of the first 10 | within 0.1 of best |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, r in rob.items():
            rtab.append(f"| {label} | {r['completed']} ({r['failed']}) | {r['median']:.3f} | {r['best']:.3f} | {r['iqr']:.3f} | "
                        f"{r['iqr_startup']:.3f} | {r['near_best']:.0%} |")
    parts = [
        f"Hyperparameters: {source}. Training: {s.epochs} epochs of the {s.n_train} training compositions in minibatches "
        f"of {s.batch_size} ({s.steps} updates), models kept every {s.keep_every} updates; validation on {s.n_test} unseen "
        f"compositions; {s.seeds} seed(s) per model and K. This profile decides {decides}.",
        "",
        "Best validation variance explained (mean ± s.d. over seeds):",
        "",
        *head,
        "",
        "Decoding of the coefficients (test R^2, median over seeds) from the hidden / NM state at the end of the input:",
        "",
        *dec,
    ]
    if rtab:
        parts += ["", f"Search objective ({OBJECTIVE} at K = {s.k_tuned}) over each model's trials:", "", *rtab]
    if profile != "paper":
        smallest = 1 / math.comb(2 * s.seeds, s.seeds)
        parts += ["", f"The {profile} profile runs models of about {models_info[E_NM]['params']:,} parameters (the paper: "
                  f"about 50k), {s.epochs} epochs (1000), K in {list(s.k_values)} (1..20) and {s.sweep_trials} search trials "
                  f"per model (100): its verdict is about these sizes, not the paper's. With {s.seeds} seed(s) per model the "
                  f"smallest p of a rank test is {smallest:.3g} (decidable at {ALPHA} when below it); (b) needs at least "
                  f"{MIN_TRIALS} completed trials per model, and with few trials its bootstrap bound is wide."]
    return "\n".join(parts)


def _figures(out: Path, s: CompositionSettings, per_seed, trials, hyper) -> list[str]:
    from ..plotting import composition as plots
    from ..tasks.composition import Composition
    from ..train.run import load_snapshots

    best = {label: {k: [m["best_ve"] for m in runs[k]] for k in s.k_values} for label, runs in per_seed.items()}
    written = [plots.plot_ve_against_k(best, out / "variance_explained.png")]
    dec = {label: {k: {key: [m["decoding"][key] for m in runs[k]] for key in ("hidden", "nm")} for k in s.k_values}
           for label, runs in per_seed.items()}
    written.append(plots.plot_decoding(dec, out / "decoding.png"))
    if trials:
        written.append(plots.plot_robustness({label: robustness(t)["values"] for label, t in trials.items()},
                                             out / "robustness.png"))
    task = Composition(**s.task_options(s.k_tuned))
    models = {}
    for label in (E_NM, *GATED):
        m = per_seed[label][s.k_tuned][0]
        kept = dict(load_snapshots(_run_dir(out, s.k_tuned, label, 0)))
        models[label] = kept[m["best_step"]]
    written.append(plots.plot_traces(models, task, out / "traces.png"))
    return [str(Path(w).relative_to(out)) for w in written]


def search(out_dir: Path, profile: str, seed: int = 0, *, grid: GridOptions | None = None, trials: int | None = None,
           log=None) -> dict[str, Any]:
    """The TPE search at ``profile``'s settings (``trials`` per model; default the profile's), run
    into ``out_dir`` and stored in ``composition_sweep.json``, where that profile reads it
    (``nmrnn reproduce composition --search``)."""
    return search_and_store(PROFILES, profile, trials, STORED,
                            lambda s: tune_hyperparameters(s, out_dir, seed=seed, grid=grid, log=log))
