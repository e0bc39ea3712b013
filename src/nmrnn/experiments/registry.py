"""The registry of one-command reproductions of published results (``nmrnn reproduce NAME``).

A reproduction is a :class:`Reproduction`: a name, the result id (R1..R11 of the project's list),
the paper and section, a one-line description, the paper's claim, and a
``run(out_dir, profile, seed) -> dict`` function. Profiles: the names of
:data:`~nmrnn.experiments.profiles.PROFILE_NAMES` (``"smoke"``: seconds, exercises every output;
``"quick"``: minutes; ``"paper"``: the published scale, possibly hours); every reproduction
declares its settings per profile as a :class:`~nmrnn.experiments.profiles.Profiles`.

What ``run`` returns (the common format; build checks with :func:`check`):

* ``"checks"``: a non-empty list of ``{"name", "value", "criterion", "passed"}``, one per testable
  part of the claim; a check with ``"decided": False`` could not decide at this profile (e.g. a
  rank test over too few seeds to reach its significance level) and counts as not passed;
* ``"metrics"``: the numbers measured (JSON-able; NumPy values are converted);
* ``"settings"``: everything needed to rerun it (sizes, steps, grids, tolerances);
* ``"figures"``: paths of the figures written, relative to ``out_dir``;
* optional ``"notes"`` (Markdown for the report), ``"criterion"`` (the overall criterion; default
  "every check passes") and ``"reproduced"`` (default: every check passed).

The summary's ``"verdict"`` is ``"reproduced"``, ``"not reproduced"`` (a decided check failed) or
``"undecided"`` (every decided check passed but some could not decide at this profile).

:func:`run_reproduction` validates the arguments, creates the folder, runs the reproduction and
writes ``summary.json`` (atomically: a temporary file renamed into place) and ``report.md``. If
the run raises, a ``summary.json`` with ``"status": "failed"`` and the error is written and the
exception is re-raised.

To add a reproduction: write ``nmrnn/experiments/<module>.py`` with a ``run`` function and add a
:class:`Reproduction` with ``run=lazy("<module>")`` to the list at the end of this file (the
module is imported only when the reproduction runs, so listing stays fast).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import math
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_known_options, check_positive_int, check_seed
from .profiles import PROFILE_NAMES, check_profile

#: The profile names every reproduction accepts (the one profile type, smallest first).
PROFILES = PROFILE_NAMES
RunFn = Callable[[Path, str, int], dict]


@dataclass(frozen=True)
class Reproduction:
    """One published result and the function that reproduces it (see the module docstring).

    ``runtime``: expected wall time per profile name, shown by ``nmrnn reproduce --list``.
    ``options``: the reproduction's named options (:class:`Choice`), for example where the paper and
    its authors' code disagree and both readings can be run (``nmrnn reproduce NAME --opt
    KEY=VALUE``); ``run`` receives each one as a keyword argument.
    ``search``: for a reproduction whose smaller profiles reuse a stored hyperparameter search, the
    function that runs that search at a profile's settings and stores its result
    (``search(out_dir, profile, seed, grid=..., trials=...) -> dict``; :func:`run_search`,
    ``nmrnn reproduce NAME --search``).
    """

    name: str
    result_id: str
    paper: str
    description: str
    claim: str
    run: RunFn
    runtime: Mapping[str, str] = field(default_factory=dict)
    search: RunFn | None = None
    options: Mapping[str, Choice] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """A named option of a reproduction: one of ``values`` (each value -> what it means), and
    ``default`` unless another is chosen."""

    values: Mapping[str, str]
    default: str
    help: str = ""


def resolve_options(rep: Reproduction, given: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every option of ``rep``: the ``given`` ones, checked against its :class:`Choice` s, and the
    defaults of the others. Raises ``ValueError`` naming an unknown option or value."""
    given = dict(given or {})
    if given and not rep.options:
        raise ValueError(f"reproduction {rep.name!r} has no options; got {', '.join(sorted(given))}")
    check_known_options(f"reproduction {rep.name!r}", given, rep.options)
    out = {}
    for key, choice in rep.options.items():
        value = given.get(key, choice.default)
        out[key] = check_choice(f"value of {rep.name}'s option {key}", value, choice.values)
    return out


def lazy(module: str, attr: str = "run") -> RunFn:
    """A ``run`` function that imports ``nmrnn.experiments.<module>`` only when called."""

    def run(out_dir: Path, profile: str, seed: int, **options: Any) -> dict:
        mod = importlib.import_module(f"{__package__}.{module}")
        return getattr(mod, attr)(out_dir, profile, seed, **options)

    run.__name__ = f"{module}.{attr}"
    run.target = (f"{__package__}.{module}", attr)  # for checks that the target exists
    return run


def check(name: str, value: Any, passed: bool, criterion: str, decided: bool = True) -> dict[str, Any]:
    """One testable part of a claim: the measured ``value``, the ``criterion`` and the verdict.
    ``decided=False``: the measurement cannot decide the criterion at this scale (``passed`` is
    then recorded as false)."""
    out = {"name": str(name), "value": to_jsonable(value), "criterion": str(criterion),
           "passed": bool(passed) and bool(decided)}
    if not decided:
        out["decided"] = False
    return out


def verdict_of(checks: list[Mapping[str, Any]], reproduced: bool | None = None) -> str:
    """``"reproduced"``, ``"not reproduced"`` or ``"undecided"`` for a list of checks."""
    if any(c.get("decided", True) and not c["passed"] for c in checks):
        return "not reproduced"
    if any(not c.get("decided", True) for c in checks):
        return "undecided"
    if reproduced is False:
        return "not reproduced"
    return "reproduced"


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: NumPy/JAX scalars and arrays -> numbers and lists, complex -> [re, im],
    non-finite floats -> ``None``, paths -> strings, tuples -> lists."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, str | bool) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, int | float | complex):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return to_jsonable(arr.item())
        return [to_jsonable(v) for v in arr.tolist()]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, bool | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, complex):
        return [to_jsonable(obj.real), to_jsonable(obj.imag)]
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


REPRODUCTIONS: dict[str, Reproduction] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def register(rep: Reproduction) -> Reproduction:
    """Add ``rep`` to :data:`REPRODUCTIONS` (names are lower-case slugs and unique)."""
    if not _NAME.match(rep.name):
        raise ValueError(f"reproduction name {rep.name!r} must be a lower-case slug ([a-z][a-z0-9_-]*)")
    if rep.name in REPRODUCTIONS:
        raise ValueError(f"a reproduction named {rep.name!r} is already registered")
    if not callable(rep.run):
        raise ValueError(f"reproduction {rep.name!r}: run must be callable")
    for key, choice in rep.options.items():
        if choice.default not in choice.values:
            raise ValueError(f"reproduction {rep.name!r}: option {key!r} defaults to {choice.default!r}, not one of its values")
    unknown = sorted(set(rep.runtime) - set(PROFILE_NAMES))
    if unknown:
        raise ValueError(
            f"reproduction {rep.name!r}: runtime names unknown profile(s) {unknown}; profiles: "
            f"{', '.join(PROFILE_NAMES)}"
        )
    REPRODUCTIONS[rep.name] = rep
    return rep


def trains_grid(rep: Reproduction) -> bool:
    """Whether the reproduction trains a grid of runs (its ``run`` takes ``grid`` options)."""
    import inspect

    fn = rep.run
    if hasattr(fn, "target"):  # a lazy run: look at the function it calls
        module, attr = fn.target
        fn = getattr(importlib.import_module(module), attr)
    return "grid" in inspect.signature(fn).parameters


def searching() -> list[str]:
    """The names of the reproductions with a stored hyperparameter search."""
    return [name for name, rep in REPRODUCTIONS.items() if rep.search is not None]


def run_search(name: str, out_dir: str | Path, profile: str = "quick", seed: int = 0, grid=None,
               trials: int | None = None, log=None) -> dict:
    """Run the hyperparameter search of reproduction ``name`` at ``profile``'s settings into
    ``out_dir`` (resumable: an interrupted search continues where it stopped) and store its result
    with the reproduction, where its ``profile`` reads it. ``trials``: trials per model (default:
    the profile's). Returns the stored result. Raises ``ValueError`` before anything runs for an
    unknown name, a reproduction without a search, a bad profile, seed or trial count.
    """
    check_choice("reproduction", name, REPRODUCTIONS)
    rep = REPRODUCTIONS[name]
    if rep.search is None:
        raise ValueError(f"reproduction {name!r} has no stored search; the ones with a search: {', '.join(searching())}")
    check_profile(profile)
    seed = check_seed(seed)
    if trials is not None:
        trials = check_positive_int("trials", trials)
    from ..train.guard import FolderLock
    from ..train.run import check_run_path
    from .grid import GridOptions

    if grid is not None and not isinstance(grid, GridOptions):
        raise ValueError(f"grid must be GridOptions, got {type(grid).__name__}")
    out = check_run_path(out_dir)
    with FolderLock(out):  # one search per folder
        return rep.search(out, profile, seed, grid=grid, trials=trials, log=log)


def run_reproduction(name: str, out_dir: str | Path, profile: str = "quick", seed: int = 0, grid=None,
                     options: Mapping[str, Any] | None = None) -> dict:
    """Run reproduction ``name`` into ``out_dir``; write ``summary.json`` and ``report.md``.

    ``grid`` (:class:`nmrnn.experiments.grid.GridOptions`): workers and storage for the runs of
    reproductions that train a grid of them (:func:`trains_grid`); the others train one run at a
    time and ignore it. ``options``: the reproduction's options (:func:`resolve_options`; the
    defaults for the others; recorded in the summary). Returns the summary (the content of
    ``summary.json``). Raises ``ValueError`` for an unknown name, profile or option or a negative
    seed, before anything runs.
    """
    check_choice("reproduction", name, REPRODUCTIONS)
    check_profile(profile)
    seed = check_seed(seed)
    rep = REPRODUCTIONS[name]
    options = resolve_options(rep, options)
    from ..train.guard import FolderLock
    from ..train.run import check_run_path
    from .grid import GridOptions

    if grid is not None and not isinstance(grid, GridOptions):
        raise ValueError(f"grid must be GridOptions, got {type(grid).__name__}")
    out = check_run_path(out_dir)
    with FolderLock(out):  # one writer per reproduction folder
        return _run_locked(rep, out, profile, seed, grid, options)


def _run_locked(rep: Reproduction, out: Path, profile: str, seed: int, grid=None, options=None) -> dict:
    from ..train.checkpoint import atomic_write_json, atomic_write_text

    header = {
        "name": rep.name,
        "result_id": rep.result_id,
        "paper": rep.paper,
        "description": rep.description,
        "claim": rep.claim,
        "profile": profile,
        "seed": seed,
    }
    options = dict(options or {})
    if options:
        header["options"] = options
    started = _dt.datetime.now(_dt.UTC)
    t0 = time.perf_counter()
    try:
        kwargs = dict(options, grid=grid) if grid is not None and trains_grid(rep) else options
        result = rep.run(out, profile, seed, **kwargs)
        summary = _summarise(header, result)
    except Exception as err:
        failed = dict(header, status="failed", reproduced=False, error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(), started=started.isoformat(timespec="seconds"),
                      elapsed_s=round(time.perf_counter() - t0, 3))
        atomic_write_json(out / "summary.json", failed)
        raise
    summary["started"] = started.isoformat(timespec="seconds")
    summary["elapsed_s"] = round(time.perf_counter() - t0, 3)
    summary["versions"] = _versions()
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", format_report(summary))
    return summary


def _summarise(header: dict, result: Any) -> dict:
    if not isinstance(result, Mapping):
        raise TypeError(f"reproduction {header['name']!r} returned {type(result).__name__}, not a dict")
    checks = result.get("checks")
    if not checks:
        raise ValueError(f"reproduction {header['name']!r} returned no checks")
    for c in checks:
        missing = {"name", "value", "criterion", "passed"} - set(c)
        if missing:
            raise ValueError(f"check {c.get('name', c)!r} lacks {sorted(missing)}")
    all_passed = all(bool(c["passed"]) for c in checks)
    reproduced = bool(result.get("reproduced", all_passed))
    verdict = result.get("verdict") or verdict_of(checks, reproduced)
    extra = {k: v for k, v in result.items() if k not in {"checks", "metrics", "settings", "figures", "notes", "criterion", "reproduced", "verdict"}}
    summary = dict(
        header,
        status="finished",
        reproduced=reproduced,
        verdict=verdict,
        criterion=str(result.get("criterion", "every check passes")),
        checks=[dict(c, passed=bool(c["passed"])) for c in checks],
        metrics=result.get("metrics", {}),
        settings=result.get("settings", {}),
        figures=[str(f) for f in result.get("figures", [])],
        notes=str(result.get("notes", "")),
        **extra,
    )
    return to_jsonable(summary)


def _versions() -> dict[str, str]:
    from .. import __version__

    out = {"nmrnn": __version__}
    try:
        import jax

        out["jax"] = jax.__version__
        out["backend"] = jax.default_backend()
    except ImportError:  # pragma: no cover - jax is a dependency
        pass
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            return "; ".join(_fmt(v) for v in value)
        if len(value) > 8:
            return "[" + ", ".join(_fmt(v) for v in value[:8]) + f", ... ({len(value)} values)]"
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if value is None:
        return "n/a"
    return str(value)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v))
    return rows


def _result(c: Mapping[str, Any]) -> str:
    if not c.get("decided", True):
        return "undecided"
    return "pass" if c["passed"] else "FAIL"


def format_report(summary: Mapping[str, Any]) -> str:
    """The Markdown report of a summary (the common format of every reproduction)."""
    verdict = "yes" if summary["reproduced"] else "NO"
    if summary.get("verdict") == "undecided":
        verdict = "NO, undecided at this profile"
    parts = [
        f"# {summary['result_id']} `{summary['name']}`: {summary['description']}",
        "",
        f"Paper: {summary['paper']}",
        "",
        f"**Claim.** {summary['claim']}",
        "",
        f"**Reproduced: {verdict}** (criterion: {summary['criterion']}). Profile `{summary['profile']}`, "
        f"seed {summary['seed']}"
        + "".join(f", {k} `{v}`" for k, v in summary.get("options", {}).items())
        + f", {summary.get('elapsed_s', 0):.1f} s, {summary.get('started', '')}.",
        "",
        "## Checks",
        "",
        _table(
            [(c["name"], _fmt(c["value"]), c["criterion"], _result(c)) for c in summary["checks"]],
            ("check", "value", "criterion", "result"),
        ),
    ]
    if summary.get("metrics"):
        parts += ["", "## Numbers", "", _table([(k, _fmt(v)) for k, v in _flatten(summary["metrics"])], ("quantity", "value"))]
    if summary.get("settings"):
        parts += ["", "## Settings", "", _table([(k, _fmt(v)) for k, v in _flatten(summary["settings"])], ("setting", "value"))]
    if summary.get("figures"):
        parts += ["", "## Figures", ""]
        parts += [f"![{Path(f).stem}]({f})" for f in summary["figures"]]
    if summary.get("notes"):
        parts += ["", "## Notes", "", summary["notes"].strip()]
    versions = summary.get("versions")
    if versions:
        parts += ["", "---", "", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# the reproductions
# ----------------------------------------------------------------------------------------------

_NMRNN_PAPER = "Costacurta et al. 2024, NM-RNN (paper 001, supplement; figures in paper 002)"

register(
    Reproduction(
        name="mwg",
        result_id="R1",
        paper=_NMRNN_PAPER,
        description="Measure-Wait-Go, rank 3, parameter-matched NM-RNN / LR-RNN / vanilla / LSTM under the authors' protocol and the standard one: extrapolation to untrained intervals",
        claim=(
            "At equal parameter count (NM-RNN N=100; LR-RNN N=106; vanilla N=31; LSTM N=15), the NM-RNN "
            "has the lowest L2 loss on extrapolated intervals and its ramps keep the right slope."
        ),
        run=lazy("nmrnn_paper", "run_mwg"),
        options={"restarts": Choice(
            values={"off": "one optimiser state per training stage, as the supplement describes the training",
                    "on": "a fresh optimiser state at every 1000-step block of the reference arm, as the "
                          "authors' code does"},
            default="off", help="the reference arm's optimiser between 1000-step blocks, where the paper's text "
                                "and the authors' code differ")},
        runtime={"smoke": "about 1 min on 2 CPU cores", "quick": "about 5 min on 2 CPU cores with --workers 2 (4.7 min measured)",
                 "paper": "about 1.5 h on 2 CPU cores with --workers 2 (two arms; 90 min measured)"},
    )
)
register(
    Reproduction(
        name="rank1",
        result_id="R2",
        paper=_NMRNN_PAPER,
        description="Rank-1 linearised NM-RNN on MWG: the learned gain s(t) against the theory (eq. 16)",
        claim=(
            "The learned neuromodulatory signal s(t) of a rank-1 linearised NM-RNN matches the theory "
            "(supplement eq. 16) on trained (15) and extrapolated (7, 23) intervals."
        ),
        run=lazy("nmrnn_theory", "run_rank1"),
        runtime={"smoke": "about 15 s on a CPU", "quick": "about 40 s on a CPU", "paper": "about 5 min on a CPU"},
    )
)
register(
    Reproduction(
        name="eft",
        result_id="R3",
        paper=_NMRNN_PAPER,
        description="Element Finder at ~500 parameters over the paper's grid: NM-RNNs vs LR-RNNs, vanilla RNNs and the LSTM",
        claim="At about 500 parameters NM-RNNs beat LR-RNNs and vanilla RNNs, close to the LSTM.",
        run=lazy("nmrnn_paper", "run_eft"),
        runtime={"smoke": "about 1 min on 2 CPU cores", "quick": "about 9 min on 2 CPU cores with --workers 2 (8.9 min measured)",
                 "paper": "about 23 min on 2 CPU cores with --workers 2 (22.8 min measured)"},
    )
)

register(
    Reproduction(
        name="multitask",
        result_id="R4",
        paper=_NMRNN_PAPER,
        description="Multitask: train on DelayPro/DelayAnti/MemoryPro, retrain only the NM subnetwork on MemoryAnti",
        claim=(
            "After training on DelayPro, DelayAnti and MemoryPro, retraining only the NM subnetwork of the "
            "NM-RNN learns MemoryAnti while keeping the other three tasks."
        ),
        run=lazy("multitask"),
        options={"reading": Choice(
            values={"supplement": "the supplement's C.3: NM-RNN K=3, M=20, 150k iterations; vanilla N=18, LSTM N=8, "
                                  "LR-RNN rank 3",
                    "script": "the authors' script: NM-RNN rank 4, M=5, 100k iterations; baselines matched to its "
                              "1487 parameters (vanilla N=34, LSTM N=16, LR-RNN rank 4)"},
            default="supplement", help="the model sizes, where the supplement and the authors' code disagree")},
        runtime={"smoke": "about 1 min on a CPU",
                 "quick": "about 4 min on 2 CPU cores with --workers 2 (3.4 min measured with its compiled programs cached)",
                 "paper": "about 5-6 h on 2 CPU cores with --workers 2, 10 seeds (estimate from measured step costs)"},
    )
)
register(
    Reproduction(
        name="prop1",
        result_id="R5",
        paper=_NMRNN_PAPER,
        description="Proposition 1: a semilinear LSTM reproduces a linearised symmetric NM-RNN exactly",
        claim=(
            "The semilinear LSTM of hidden size K + M + P built from a linearised symmetric NM-RNN "
            "reproduces its outputs exactly (with a one-step lag)."
        ),
        run=lazy("nmrnn_theory", "run_prop1"),
        runtime={"smoke": "about 8 s on a CPU", "quick": "about 30 s on a CPU", "paper": "about 1 min on a CPU"},
    )
)
register(
    Reproduction(
        name="hopf",
        result_id="R6",
        paper="e-nmRNN supplement (paper 000), section 5, eq. 22-27",
        description="2-neuron RNN: multiplicative gain n gives a Hopf at n = 1/2 at the origin; an additive input r3 moves the fixed point",
        claim=(
            "In dr_i/dt = -r_i + tanh(n (W r)_i + r_3) with W = [[2,-1],[1,2]] and r_3 = 0 the origin "
            "stays a fixed point for every n, with eigenvalues (2n-1) +/- i n: a Hopf bifurcation at "
            "n = 1/2, from a stable spiral to an unstable spiral surrounded by a stable limit cycle, "
            "without shifting the fixed point. An additive r_3 != 0 moves the fixed point; "
            "bifurcations it induces occur at non-zero operating points and shift the mean activity."
        ),
        run=lazy("hopf"),
        runtime={"smoke": "about 10 s on a CPU", "quick": "about 10-30 s on a CPU", "paper": "about 15-60 s on a CPU"},
    )
)
register(
    Reproduction(
        name="flipflop",
        result_id="T8",
        paper="Sussillo & Barak 2013 (3-bit flip-flop), standard task of paper 004",
        description="3-bit flip-flop: 8 stable memories at the output corners and the saddles between them, vanilla RNN and NM-RNN",
        claim=(
            "A network trained on the 3-bit flip-flop has, without input, 8 stable fixed points whose "
            "readouts sit at the 8 corners of {-1,+1}^3, and between memories that differ in one bit "
            "a saddle with one unstable direction whose unstable manifold leads to those two "
            "memories; for the NM-RNN this holds with its neuromodulatory state z free and with z "
            "clamped at its mean over the memory periods."
        ),
        run=lazy("flipflop"),
        runtime={"smoke": "about 40 s on 2 CPU cores", "quick": "about 1 min on 2 CPU cores", "paper": "about 5 min on 2 CPU cores"},
    )
)

register(
    Reproduction(
        name="bandit",
        result_id="R10",
        paper="e-nmRNN supplement (paper 000), section 6, Tables 1-2, Fig. 4",
        description="A2C-trained e-nmRNN and vanilla agents on the block-switching bandit; NM states decoded against the block and the fitted Q-learning RPE",
        claim=(
            "An e-nmRNN agent (64 units, 4 NMs) trained with A2C on the block-switching two-armed "
            "bandit performs the task, its neuromodulator concentrations track the hidden block "
            "state, and they encode the reward-prediction error of a Q-learning model fitted to "
            "its behaviour."
        ),
        run=lazy("bandit"),
        runtime={"smoke": "about 50 s on 2 CPU cores", "quick": "about 4 min on 2 CPU cores",
                 "paper": "about 30 min on 2 CPU cores (50k updates per agent)"},
    )
)

register(
    Reproduction(
        name="lif-rate",
        result_id="M6",
        paper="e-nmRNN supplement (paper 000), section 1, eq. 1-21 and Fig. 1",
        description="LIF network with volume-transmitted NMs: the rate curve of eq. 9 against simulation, and the rate reduction against the input's timescale",
        claim=(
            "The steady-state rate of a LIF neuron is f_LIF of eq. 9 (saturating through the refractory "
            "period); a higher excitability (lower threshold) lowers the rheobase, steepens the linear "
            "regime and saturates at a smaller current; and the LIF network with neuromodulated synapses "
            "reduces to the e-nmRNN's rate equations (W = Q_tot W_base, T = Q_tot T_LIF, R = tau_n R_LIF, "
            "Z'' = tau_n Z_LIF), a reduction that holds only for slow directions."
        ),
        run=lazy("lif"),
        runtime={"smoke": "about 25 s on a CPU", "quick": "about 1 min on a CPU", "paper": "about 7 min on a CPU"},
    )
)

register(
    Reproduction(
        name="local-rules",
        result_id="M4",
        paper="e-nmRNN supplement (paper 000), section 3",
        description="The leading-order local learning rules (NM-gated T rule, input, release and interaction rules) against BPTT: loss and gradient alignment",
        claim=(
            "The leading-order local learning rules of the e-nmRNN (dL/dT_k ~ D^T eps phi'(A) n_k r^T at "
            "O(dt), the input rule, and the O(dt^2) rules for R and Z) are sensible learning rules: "
            "training with them lowers the loss, and each update is aligned with the true gradient."
        ),
        run=lazy("local_rules"),
        runtime={"smoke": "about 30 s on a CPU", "quick": "about 10 min on 2 CPU cores",
                 "paper": "about 4 h on 2 CPU cores (estimate)"},
    )
)

register(
    Reproduction(
        name="sine-meta",
        result_id="R7",
        paper="e-nmRNN supplement (paper 000), section 9.1 and Fig. 3C",
        description="Sine meta-learning in the continual regime: e-nmRNN (plain and spatially embedded) against parameter-matched vanilla RNN, GRU, LSTM, NM-RNN and coRNN at TPE-tuned learning rates; updates to a loss threshold, Hopf traces and the epiphany",
        claim=(
            "At learning rates tuned per model by a TPE search (held-out loss after 1000 updates) and batch 16 "
            "of fresh curves, the e-nmRNN reaches high performance in many fewer updates than the baselines, "
            "spatial embedding improves it further, and the drop of the validation loss coincides with the "
            "emergence of the oscillation (rest for A = 0, a limit cycle for A > 0)."
        ),
        run=lazy("sine_meta"),
        search=lazy("sine_meta", "search"),
        runtime={"smoke": "about 1 min on a CPU", "quick": "about 4 min on 2 CPU cores with --workers 2 (3.2 min measured on an idle machine, 3.8 min beside other jobs)",
                 "paper": "about 3 h on 2 CPU cores with --workers 2, the TPE search included (estimate)"},
    )
)

register(
    Reproduction(
        name="gradient-alignment",
        result_id="R9",
        paper="e-nmRNN supplement (paper 000), section 4 (with the sine meta-learning demo, section 9.1)",
        description="Sine meta-learning e-nmRNN: cosine between the NM direction sum_k T_k dn_k/dt and the descent direction of the surrogate frozen at W + sum_k T_k nbar_k, over training, against the null N(0, 1/N^2)",
        claim=(
            "During training of an e-nmRNN (128 neurons, 4 NMs) on sine meta-learning, the direction in "
            "which the neuromodulators move the effective weights, sum_k T_k dn_k/dt, aligns with the "
            "gradient-descent direction -grad_W L of the surrogate RNN frozen at W_eff = W + sum_k T_k nbar_k "
            "over windows of 100 steps: cosine about 0.13-0.15, about 16 standard deviations of the null "
            "N(0, 1/D), D = N^2, and the alignment is learned (it grows over training)."
        ),
        run=lazy("alignment"),
        runtime={"smoke": "about 20-30 s on a CPU", "quick": "about 2-3.5 min on 2 CPU cores",
                 "paper": "about 7 min on 2 CPU cores"},
    )
)

register(
    Reproduction(
        name="degeneracy",
        result_id="T8",
        paper="Huang et al., solution degeneracy across task-trained RNNs (paper 004, first abstract)",
        description="Solution degeneracy of populations of trained RNNs at the levels of behaviour, dynamics (DSA) and weights against task complexity, learning regime, size and regularisation; NM-RNN and e-nmRNN against vanilla at equal parameters",
        claim=(
            "Higher task complexity and stronger feature learning reduce degeneracy in neural dynamics but "
            "increase it in weight space (mixed effects on behaviour); larger networks and structural "
            "regularisation reduce degeneracy at all three levels."
        ),
        run=lazy("degeneracy"),
        runtime={"smoke": "about 50 s of CPU on 2 cores", "quick": "about 5 min on 2 idle CPU cores with --workers 2 "
                 "(4.6 min measured; 28 min beside other jobs at load 8)",
                 "paper": "many hours (3,100 networks; estimate) with workers and ensembles"},
    )
)

register(
    Reproduction(
        name="composition",
        result_id="R8",
        paper="e-nmRNN supplement (paper 000), section 9.2, Table 3 and Fig. 3",
        description="Compositional generalisation against K: e-nmRNN (plain and spatially embedded) against parameter-matched vanilla RNN, GRU, LSTM, NM-RNN, Transformer, HiPPO-LegT and coRNN, each TPE-tuned at K = 8; best validation variance explained on unseen compositions, spread over the search trials, and linear decoding of the coefficients",
        claim=(
            "With every model matched at about 50k parameters and tuned by a TPE search at K = 8 (lr, weight L2, "
            "tau_n), the e-nmRNN generalises to unseen compositions as well as the gated models (GRU, LSTM) over "
            "K = 1..20, with more robustness to its hyperparameters, and spatial embedding improves its "
            "generalisation."
        ),
        run=lazy("composition"),
        search=lazy("composition", "search"),
        runtime={"smoke": "about 40 s on a CPU", "quick": "about 10 min on 2 idle CPU cores with --workers 2 (25 min beside other jobs; stored search)",
                 "paper": "about 6 days on 2 CPU cores with --workers 2, the TPE search included (estimate)"},
    )
)

register(
    Reproduction(
        name="yang-multitask",
        result_id="R11",
        paper="e-nmRNN supplement (paper 000), sections 7, 8.1-8.4, 9.3, Table 4 and Fig. 5",
        description="e-nmRNN (128 neurons, 4 NMs, ~50k parameters) trained on the 20 Yang tasks beside a 224-unit vanilla RNN (and a spatially embedded e-nmRNN with Dale's law at the paper profile): per-task percent correct, cell types in R, NM timescales, the rule decoded from n, task-variance clusters",
        claim=(
            "An e-nmRNN trained to high performance on the 20 tasks of Yang et al. 2019 develops cell types "
            "(the release matrix R becomes one-hot: each neuron releases mostly one neuromodulator), "
            "neuromodulators on separated timescales (about 8x between the fastest and the slowest, from their "
            "autocorrelation), and an NM state n(t) from which the task context is decodable."
        ),
        run=lazy("yang_multitask"),
        runtime={"smoke": "about 30 s on a CPU (70 s beside other jobs)", "quick": "about 5 min on 2 CPU cores with --workers 2 (5.0 min measured on a first run, 4.1 min with its compiled programs cached; 22 min beside other jobs)",
                 "paper": "about 10 h on 2 CPU cores with --workers 2, the TPE search included (estimate from measured step costs)"},
    )
)

__all__ = [
    "PROFILES",
    "REPRODUCTIONS",
    "Reproduction",
    "check",
    "run_search",
    "searching",
    "format_report",
    "lazy",
    "register",
    "run_reproduction",
    "to_jsonable",
]
