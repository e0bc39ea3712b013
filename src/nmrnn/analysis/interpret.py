"""Interpretation of trained neuromodulated networks (paper 000, supplement section 8; R11).

The e-nmRNN trained on the 20 Yang tasks is reported to develop (paper 000, 8.1-8.4): cell types
(each neuron releases mostly one neuromodulator: one-hot columns of the release matrix R), NM
timescales about 8x apart (from the autocorrelation of each concentration), the task context
decodable from the NM state n(t), and hierarchical clusters / modular connectivity. The paper
leaves the methods to its code repository (its section 10); the definitions below are the
library's, each **Choice** marked where the paper is silent.

Every function returns data (arrays, small NamedTuples); none plots or prints. The functions on
arrays work for any source; the model-level ones read the models' hooks only:

* the NM state is the state fields in ``model.modulatory_fields`` (e-nmRNN: ``n``; NM-RNN: ``z``),
  the "activity" the remaining state fields (e-nmRNN: the rates ``r``; NM-RNN: ``x``), concatenated
  in ``state_fields`` order (:func:`split_states`). ``nm_signal="modulation"`` takes
  ``model.modulation(states)`` instead (NM-RNN: its gains ``s``; e-nmRNN: ``n`` again);
* the release matrix is ``model.release_matrix()`` (``(M, N)``, masks applied), the connectivity
  ``model.recurrent_weights()`` and ``model.modulated_weights(n)`` (``W + sum_k n_k T_k``): hooks
  of every model (``None`` where a model has no such matrix). A model
  without them (the NM-RNN has no release matrix and no full recurrent matrix) is refused with a
  message that names the missing hook.

Cell-type specialisation (:func:`cell_type_specialisation`)
----------------------------------------------------------
One-hotness of neuron j: ``h_j = max_k |R_kj| / sum_k |R_kj|``, in ``[1/M, 1]``: 1 for a neuron
that releases one NM only, ``1/M`` for equal release of all M (NaN for a neuron that releases
nothing). Magnitudes, not signs: the model does not constrain R's sign, and a neuron with one
large negative entry still acts through one NM. The dominant NM of j is ``argmax_k |R_kj|``; the
neurons are grouped by it.

**Choice** (the null): each *row* of ``|R|`` is permuted independently across neurons. This keeps
every NM's release profile (the multiset of its release weights: its total release, spread and
sparsity), which the null should not credit, and breaks only the coordination *within* a column
(that a neuron releasing much of NM k releases little of the others), which is what "cell types"
claims. Permuting entries *within* a column would leave every one-hotness unchanged (it is a
symmetric function of the column): it is no null at all. The test statistic is the mean one-hotness;
``p`` is one-sided (specialisation above the null). Against the initialisation (same neurons before
training) the comparison is paired: a one-sided Wilcoxon signed-rank test of ``h_trained - h_init``.

NM timescales (:func:`autocorrelation`, :func:`nm_timescales`)
-------------------------------------------------------------
The autocorrelation of each NM trace within trials, pooled over trials: with ``x`` the centred
trace, ``C(l) = sum_trials sum_t x_t x_{t+l} / sum_trials (L_i - l)`` (every within-trial pair at lag
``l`` counts once; trials of different lengths ``L_i`` are supported), ``ACF(l) = C(l) / C(0)``, a
ratio of averages (an average of per-trial ratios is much noisier on short trials). **Choice**
(centring): ``center="trial"`` (default) removes each trial's own mean, so the ACF describes the
within-trial dynamics (a context-dependent level that differs between trials is not read as an
infinitely slow component); ``center="global"`` removes one mean per NM over all trials and steps.
Removing each trial's mean biases the estimator down by about ``2 tau / L`` at every lag, which
shortens a fitted time constant badly on short trials (tau = 16 steps on 200-step trials: about
-30%); the fit therefore compares the ACF with the *expectation of the same estimator* for an
exponential ACF ``exp(-|l| / tau)`` (closed form, pooled over the trials' lengths), which removes
the bias. ``center="global"`` fits ``A exp(-l / tau)`` itself.

The fit (``fit="exp"``, SciPy ``curve_fit`` of ``A * model(l; tau)``, ``A`` absorbing a white-noise
drop at lag 0) uses the lags from 0 up to (excluding) the first one where the ACF falls below
``floor`` (default 0.1; the noisy tail is left out). ``fit="loglinear"`` is the least-squares line
through ``log ACF`` on the same lags (no bias correction); it is also the fallback when
``curve_fit`` fails. The status of each NM says what was done: ``"exp"``, ``"loglinear"``,
``"fast"`` (the ACF is below ``floor`` already at lag 1: ``tau = -dt / ln ACF(1)``, or 0 if
``ACF(1) <= 0``), ``"no_decay"`` (the ACF never falls below ``1/e`` within ``max_lag``: ``tau =
inf``, slower than the window can measure) and ``"flat"`` (a constant trace: NaN). ``ratio`` is
the slowest over the fastest *finite* time constant (the paper: about 8); ``censored`` says whether
an NM did not decay (then the true ratio is larger). Time constants are in units of ``dt``.

Context encoding (:func:`decode_context`)
----------------------------------------
Cross-validated decoding of a categorical label per trial (the task rule) from a feature vector
per trial: the NM state n, or the activity r for comparison. **Choice** (the paper names no
decoder for the context; for its compositional task it asks for a "weakly expressive" one): linear
classifiers after standardisation, multinomial logistic regression (``"logistic"``, L2 penalty with
scikit-learn's default ``C = 1``) or linear discriminant analysis (``"lda"``); stratified K-fold
(shuffled, seeded); score: the accuracy of the pooled held-out predictions. Null: the same decoder
on permuted labels (permutation test, :func:`nmrnn.analysis.decoding.cross_validated_score`). The
features come from ``(trials, T, F)`` traces through ``window``: the mean over steps
``[start, stop)`` (one pair, or one per trial, e.g. each trial's fixation epoch
``info["epochs"][:, 0]`` of a Yang batch, before any stimulus), or ``bin_size``: a separate
decoder for each bin of ``bin_size`` steps. ``chance`` is the frequency of the most common label
(``balanced=True`` scores the balanced accuracy instead, chance ``1 / labels``). Yang's rule input
is on for the whole trial and drives the neurons directly, so even an untrained network's r, and
through R its n, carry the rule: the untrained network is the comparison that gives the decoding
its meaning.

Clustering and modularity (:func:`task_variance`, :func:`cluster_units`,
:func:`connectivity_modularity`)
-----------------------------------------------------------------------------------------------
Task variance follows Yang et al. 2019's code (gyyang/multitask, ``analysis/variance.py``,
``_compute_variance_bymodel``, and ``analysis/clustering.py``, class ``Analysis``): for each task,
the variance of each unit's activity across the trials of the task's test grid (noise off), at
each time point, averaged over the time points after the fixation epoch (``h[fix1_end:].var(axis=
batch).mean(axis=time)``, NumPy's population variance); units whose total variance over tasks is
at most ``1e-3`` are dropped; each remaining unit's variances are divided by its maximum over tasks
(``normalization_method='max'``, the default there; ``'sum'`` and ``'none'`` also offered).
Clustering as ``Analysis``: KMeans (``n_init=20``, seeded; Yang's ``algorithm='full'`` is today's
``'lloyd'``) for every number of clusters in 2..29, the number with the largest silhouette score
(Euclidean), clusters relabelled in the order of their preferred task (the task with the largest
summed normalised variance). ``method="agglomerative"`` is the alternative left in Yang's code
(cosine distance, average linkage), the paper's "hierarchical clustering".

Modularity: Louvain modularity Q of the strongest ``density`` fraction of ``|W|``'s entries
(:func:`nmrnn.spatial.network_statistics`), for ``W`` and for the NM-gated effective connectivity
``W + sum_k nbar_k T_k`` at the mean concentrations ``nbar``.

For the Yang tasks, :func:`yang_trials` runs a model on the test grids of the 20 rules (noise off,
as Yang's analyses); :func:`yang_task_variance` and :func:`yang_context_features` turn its output
into the inputs of the functions above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_choice, check_positive, check_positive_int, check_seed
from .decoding import NullTest, cross_validated_score

__all__ = [
    "CENTERINGS",
    "CLASSIFIERS",
    "CLUSTER_METHODS",
    "MIN_TASK_VARIANCE",
    "NM_SIGNALS",
    "NORMALIZATIONS",
    "TIMESCALE_FITS",
    "CellTypes",
    "ConnectivityModularity",
    "ContextDecoding",
    "NMStates",
    "TaskVariance",
    "Timescales",
    "UnitClusters",
    "YangTrials",
    "autocorrelation",
    "cell_type_specialisation",
    "cluster_units",
    "connectivity_modularity",
    "decode_context",
    "nm_timescales",
    "one_hotness",
    "release_matrix",
    "split_states",
    "task_variance",
    "window_mean",
    "yang_context_features",
    "yang_task_variance",
    "yang_trials",
]

NM_SIGNALS = ("state", "modulation")
CENTERINGS = ("trial", "global")
TIMESCALE_FITS = ("exp", "loglinear")
CLASSIFIERS = ("logistic", "lda")
CLUSTER_METHODS = ("kmeans", "agglomerative")
NORMALIZATIONS = ("max", "sum", "none")
#: Yang's threshold on a unit's total task variance (``clustering.py``: ``sum > 1e-3``).
MIN_TASK_VARIANCE = 1e-3


# ----------------------------------------------------------------------------------------------
# model hooks
# ----------------------------------------------------------------------------------------------


class NMStates(NamedTuple):
    """A model's trajectories split into the NM state ``nm (*batch, T, M)`` and the activity
    ``activity (*batch, T, N)``, with the state fields each came from."""

    nm: np.ndarray
    activity: np.ndarray
    nm_fields: tuple[str, ...]
    activity_fields: tuple[str, ...]


def _model_name(model) -> str:
    return type(model).__name__


def _nm_fields(model) -> tuple[str, ...]:
    fields = tuple(getattr(model, "modulatory_fields", ()))
    if not fields:
        raise ValueError(
            f"{_model_name(model)} has no neuromodulators (its modulatory_fields is empty); the "
            "interpretation toolkit needs a model with an NM state"
        )
    return fields


def _activity_fields(model) -> tuple[str, ...]:
    nm = _nm_fields(model)
    rest = tuple(f for f in model.state_fields if f not in nm)
    if not rest:
        raise ValueError(f"{_model_name(model)} has no state fields besides its NM state {nm}")
    return rest


def split_states(model, states, *, nm_signal: str = "state") -> NMStates:
    """The NM state and the activity of ``states`` (a model's state NamedTuple, every field
    ``(*batch, T, size)``, e.g. ``simulate(model, inputs).states``), as float64 arrays.

    ``nm_signal="state"``: the fields of ``model.modulatory_fields``; ``"modulation"``:
    ``model.modulation(states)`` (the signal that acts on the network)."""
    check_choice("nm_signal", nm_signal, NM_SIGNALS)
    nm_fields = _nm_fields(model)
    act_fields = _activity_fields(model)
    missing = [f for f in (*nm_fields, *act_fields) if not hasattr(states, f)]
    if missing:
        raise ValueError(f"states lack the field(s) {', '.join(missing)} of {_model_name(model)}")
    if nm_signal == "state":
        nm = np.concatenate([np.asarray(getattr(states, f), float) for f in nm_fields], axis=-1)
    else:
        mod = model.modulation(states)
        if mod is None:
            raise ValueError(f"{_model_name(model)}.modulation() returns nothing; use nm_signal='state'")
        nm = np.asarray(mod, float)
    act = np.concatenate([np.asarray(getattr(states, f), float) for f in act_fields], axis=-1)
    return NMStates(nm, act, nm_fields, act_fields)


def release_matrix(model) -> np.ndarray:
    """The release matrix ``R (M, N)`` of a model (its ``release_matrix()`` hook: masks applied),
    checked against the sizes of its NM state (M) and activity (N)."""
    nm_fields = _nm_fields(model)
    R = model.release_matrix()
    if R is None:
        raise ValueError(
            f"{_model_name(model)} has no release matrix R (its release_matrix() gives none: how much of "
            f"each neuromodulator {'/'.join(nm_fields)} each neuron releases); cell-type specialisation "
            "needs one"
        )
    R = np.asarray(R, float)
    sizes = model.state_sizes()
    M = sum(sizes[f] for f in nm_fields)
    N = sum(sizes[f] for f in _activity_fields(model))
    if R.shape != (M, N):
        raise ValueError(f"{_model_name(model)}.release_matrix() has shape {R.shape}, expected (M, N) = {(M, N)}")
    return R


def _is_model(obj) -> bool:
    from ..models.base import AbstractRecurrentModel

    return isinstance(obj, AbstractRecurrentModel)


# ----------------------------------------------------------------------------------------------
# cell types
# ----------------------------------------------------------------------------------------------


class CellTypes(NamedTuple):
    """Cell-type specialisation of a release matrix (see the module docstring).

    ``one_hotness (N,)`` in ``bounds = (1/M, 1)`` (NaN: a neuron releasing nothing), ``mean`` (over
    the neurons that release something), ``dominant (N,)`` (the NM each neuron releases most;
    -1 for none), ``groups`` (M arrays: the neurons whose dominant NM is k). Null (rows permuted
    independently): ``null_one_hotness (n_null, N)`` (the distribution to compare ``one_hotness``
    with), ``null_means (n_null,)``, ``null_mean``, ``p`` (one-sided). Initialisation
    (NaN / None without one): ``init_one_hotness (N,)``, ``init_mean``, ``init_p`` (paired
    one-sided Wilcoxon signed-rank test, trained above initial)."""

    one_hotness: np.ndarray
    mean: float
    dominant: np.ndarray
    groups: tuple[np.ndarray, ...]
    bounds: tuple[float, float]
    null_one_hotness: np.ndarray
    null_means: np.ndarray
    null_mean: float
    p: float
    init_one_hotness: np.ndarray | None
    init_mean: float
    init_p: float


def _release_array(source, what: str) -> np.ndarray:
    R = release_matrix(source) if _is_model(source) else np.asarray(source, float)
    if R.ndim != 2 or min(R.shape) < 1:
        raise ValueError(f"{what} must be an (M, N) release matrix, got shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"{what} has non-finite entries")
    return R


def one_hotness(R) -> np.ndarray:
    """``max_k |R_kj| / sum_k |R_kj|`` for every column j of ``R (M, N)``: ``(N,)`` in
    ``[1/M, 1]``, NaN for an all-zero column."""
    A = np.abs(_release_array(R, "R"))
    total = A.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, A.max(axis=0) / np.where(total > 0, total, 1.0), np.nan)


def cell_type_specialisation(release, *, init=None, n_null: int = 1000, seed: int = 0) -> CellTypes:
    """One-hotness of the release columns, against the row-permutation null and the
    initialisation.

    Args:
        release: a model (its :func:`release_matrix`) or an ``(M, N)`` array.
        init: the same for the untrained network (optional).
        n_null: number of null matrices (each row of ``|R|`` permuted independently).
        seed: seeds the null's permutations.
    """
    R = _release_array(release, "release")
    M, N = R.shape
    n_null = check_positive_int("n_null", n_null)
    seed = check_seed(seed)
    h = one_hotness(R)
    A = np.abs(R)
    dominant = np.where(A.sum(axis=0) > 0, A.argmax(axis=0), -1)
    groups = tuple(np.flatnonzero(dominant == k) for k in range(M))
    mean = float(np.nanmean(h)) if np.any(np.isfinite(h)) else float("nan")

    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(A, (n_null, M, N)), axis=2)
    total = shuffled.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        null_h = np.where(total > 0, shuffled.max(axis=1) / np.where(total > 0, total, 1.0), np.nan)
    null_means = np.nanmean(null_h, axis=1) if np.any(np.isfinite(null_h)) else np.full(n_null, np.nan)
    p = float((1 + np.sum(null_means >= mean - 1e-12)) / (1 + n_null))

    init_h, init_mean, init_p = None, float("nan"), float("nan")
    if init is not None:
        R0 = _release_array(init, "init")
        if R0.shape != R.shape:
            raise ValueError(f"init has shape {R0.shape}, the release matrix {R.shape}")
        init_h = one_hotness(R0)
        init_mean = float(np.nanmean(init_h)) if np.any(np.isfinite(init_h)) else float("nan")
        diff = (h - init_h)[np.isfinite(h) & np.isfinite(init_h)]
        if diff.size == 0 or np.all(diff == 0):
            init_p = 1.0
        else:
            from scipy.stats import wilcoxon

            init_p = float(wilcoxon(diff, alternative="greater").pvalue)
    return CellTypes(h, mean, dominant, groups, (1.0 / M, 1.0), null_h, null_means,
                     float(np.nanmean(null_means)), p, init_h, init_mean, init_p)


# ----------------------------------------------------------------------------------------------
# timescales
# ----------------------------------------------------------------------------------------------


class Timescales(NamedTuple):
    """NM timescales (see the module docstring): ``lags (max_lag + 1,)`` in units of ``dt``,
    ``acf (max_lag + 1, M)``, ``tau (M,)`` and ``amplitude (M,)`` of the fits, ``status`` per NM,
    ``order`` (NMs from fastest to slowest finite tau), ``ratio`` (slowest / fastest finite tau)
    and ``censored`` (some NM did not decay within the window)."""

    lags: np.ndarray
    acf: np.ndarray
    tau: np.ndarray
    amplitude: np.ndarray
    status: tuple[str, ...]
    order: np.ndarray
    ratio: float
    censored: bool


def _traces(x, name: str) -> np.ndarray:
    x = np.asarray(x, float)
    if x.ndim == 2:  # one trial (T, M)
        x = x[None]
    if x.ndim != 3 or min(x.shape) < 1:
        raise ValueError(f"{name} must be (trials, T, M) or (T, M), got shape {np.shape(x)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite values")
    return x


def _lengths(lengths, B: int, T: int) -> np.ndarray:
    if lengths is None:
        return np.full(B, T)
    L = np.asarray(lengths)
    if L.shape != (B,) or not np.issubdtype(L.dtype, np.integer) or L.min() < 2 or L.max() > T:
        raise ValueError(f"lengths must be {B} integers in [2, {T}] (valid steps per trial), got {lengths!r}")
    return L.astype(int)


def _max_lag(max_lag, L: np.ndarray) -> int:
    if max_lag is None:
        return max(1, int(L.min()) // 2)
    m = check_positive_int("max_lag", max_lag)
    if m >= L.min():
        raise ValueError(f"max_lag={m} must be shorter than the shortest trial ({int(L.min())} steps)")
    return m


def _centred(x: np.ndarray, L: np.ndarray, center: str) -> np.ndarray:
    valid = (np.arange(x.shape[1])[None, :] < L[:, None])[..., None]
    if center == "trial":
        mean = (x * valid).sum(axis=1, keepdims=True) / L[:, None, None]
    else:
        mean = (x * valid).sum(axis=(0, 1), keepdims=True) / L.sum()
    return (x - mean) * valid


def autocorrelation(x, max_lag: int | None = None, *, center: str = "trial", lengths=None) -> np.ndarray:
    """The pooled within-trial autocorrelation of every channel of ``x (trials, T, M)``:
    ``(max_lag + 1, M)``, 1 at lag 0, NaN for a constant channel.

    ``lengths (trials,)``: valid steps of each trial (the rest, e.g. padding, is ignored);
    ``max_lag`` (default half the shortest trial) must be shorter than every trial."""
    check_choice("center", center, CENTERINGS)
    x = _traces(x, "x")
    B, T, M = x.shape
    L = _lengths(lengths, B, T)
    m = _max_lag(max_lag, L)
    xc = _centred(x, L, center)
    cov = np.empty((m + 1, M))
    for lag in range(m + 1):
        pairs = np.maximum(L - lag, 0).sum()
        cov[lag] = np.einsum("btm,btm->m", xc[:, : T - lag], xc[:, lag:]) / pairs
    scale = np.where(cov[0] > 1e-12 * max(1.0, float(np.max(np.abs(x)) ** 2)), cov[0], np.nan)
    return cov / scale


def _expected_acf(lags: np.ndarray, tau: float, L: np.ndarray, center: str) -> np.ndarray:
    """The expectation of :func:`autocorrelation`'s estimate for a stationary series with ACF
    ``exp(-|l| / tau)`` (ratio of the expected pooled covariances; exact for ``"global"`` in the
    limit of many trials, where it is the exponential itself)."""
    lags = np.asarray(lags, float)
    if center == "global":
        return np.exp(-lags / tau)
    a = np.exp(-1.0 / tau)
    one_minus_a = -np.expm1(-1.0 / tau)
    num = np.zeros_like(lags)
    den = np.zeros_like(lags)
    zero = 0.0
    for n_len, count in zip(*np.unique(L, return_counts=True), strict=True):
        t = np.arange(n_len)
        # m_t = mean_s a^|t - s| over the trial, in closed form
        m = ((1.0 - a ** (t + 1)) + a * (1.0 - a ** (n_len - 1 - t))) / one_minus_a / n_len
        q = m.mean()
        cm = np.concatenate([[0.0], np.cumsum(m)])
        li = lags.astype(int)
        ok = li < n_len
        li_ok = np.where(ok, li, 0)
        s = (n_len - li_ok) * (a ** li_ok) - cm[n_len - li_ok] - (cm[n_len] - cm[li_ok]) + (n_len - li_ok) * q
        num += count * np.where(ok, s, 0.0)
        den += count * np.where(ok, n_len - li_ok, 0.0)
        zero += count * (n_len - 2.0 * cm[n_len] + n_len * q)
    total_pairs0 = float(np.sum(L))
    return (num / den) / (zero / total_pairs0)


def _fit_tau(acf: np.ndarray, floor: float, fit: str, L: np.ndarray, center: str) -> tuple[float, float, str]:
    if not np.all(np.isfinite(acf)):
        return float("nan"), float("nan"), "flat"
    if np.min(acf[1:]) >= np.exp(-1.0):
        return float("inf"), float("nan"), "no_decay"
    below = np.flatnonzero(acf < floor)
    n_fit = int(below[0]) if below.size else len(acf)
    if n_fit < 2:  # below the floor at lag 1 already
        a1 = acf[1]
        return (float(-1.0 / np.log(a1)) if 0 < a1 < 1 else 0.0), 1.0, "fast"
    lags = np.arange(n_fit, dtype=float)
    y = acf[:n_fit]
    pos = y > 0
    slope, intercept = np.polyfit(lags[pos], np.log(y[pos]), 1)
    tau_ll = -1.0 / slope if slope < 0 else float("inf")
    if fit == "exp":
        from scipy.optimize import curve_fit

        p0 = (1.0, tau_ll if np.isfinite(tau_ll) and tau_ll > 0 else float(n_fit))
        try:
            with np.errstate(all="ignore"):
                (amp, tau), _ = curve_fit(
                    lambda lg, A, tau: A * _expected_acf(lg, tau, L, center), lags, y, p0=p0,
                    bounds=([0.0, 1e-6], [np.inf, 1e6]),
                )
            if np.isfinite(tau) and tau > 0:
                return float(tau), float(amp), "exp"
        except (RuntimeError, ValueError):
            pass
    if np.isfinite(tau_ll) and tau_ll > 0:
        return float(tau_ll), float(np.exp(intercept)), "loglinear"
    return float("inf"), float("nan"), "no_decay"


def nm_timescales(
    nm,
    *,
    dt: float = 1.0,
    max_lag: int | None = None,
    center: str = "trial",
    fit: str = "exp",
    floor: float = 0.1,
    lengths=None,
) -> Timescales:
    """Autocorrelation time constant of every NM trace ``nm (trials, T, M)`` (see the module
    docstring); ``dt``: the time step (the time constants come out in its unit)."""
    check_choice("fit", fit, TIMESCALE_FITS)
    check_choice("center", center, CENTERINGS)
    dt = check_positive("dt", dt)
    floor = check_positive("floor", floor)
    if floor >= np.exp(-1.0):
        raise ValueError(f"floor must lie below 1/e (the fit needs the decay to 1/e), got {floor}")
    x = _traces(nm, "nm")
    L = _lengths(lengths, x.shape[0], x.shape[1])
    acf = autocorrelation(x, max_lag, center=center, lengths=L)
    taus, amps, status = [], [], []
    for k in range(acf.shape[1]):
        tau, amp, st = _fit_tau(acf[:, k], floor, fit, L, center)
        taus.append(tau * dt)
        amps.append(amp)
        status.append(st)
    tau = np.array(taus)
    finite = np.flatnonzero(np.isfinite(tau) & (tau > 0))
    order = finite[np.argsort(tau[finite], kind="stable")]
    ratio = float(tau[order[-1]] / tau[order[0]]) if len(order) >= 2 else float("nan")
    return Timescales(np.arange(acf.shape[0]) * dt, acf, tau, np.array(amps), tuple(status), order,
                      ratio, "no_decay" in status)


# ----------------------------------------------------------------------------------------------
# context decoding
# ----------------------------------------------------------------------------------------------


class ContextDecoding(NamedTuple):
    """Cross-validated decoding of a trial label. ``accuracy`` (balanced or not), ``null_mean``,
    ``null_95``, ``p``:
    floats, or ``(n_bins,)`` arrays with ``bin_size`` (then ``bins (n_bins, 2)`` holds each bin's
    ``[start, stop)``); ``null``: ``(n_permutations,)`` or ``(n_bins, n_permutations)``;
    ``chance``: the frequency of the most common label (balanced: ``1 / labels``); ``classes``:
    the labels."""

    accuracy: Any
    null_mean: Any
    null_95: Any
    p: Any
    null: np.ndarray
    chance: float
    classes: np.ndarray
    bins: np.ndarray | None


def window_mean(x, window) -> np.ndarray:
    """The mean of ``x (trials, T, F)`` over the steps ``[start, stop)`` of ``window``: one pair
    for every trial, or ``(trials, 2)``, one per trial. Returns ``(trials, F)``."""
    x = _traces(x, "features")
    B, T, _ = x.shape
    w = np.asarray(window)
    if w.shape == (2,):
        w = np.broadcast_to(w, (B, 2))
    if w.shape != (B, 2) or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"window must be (start, stop) or ({B}, 2) integer steps, got shape {w.shape}")
    if np.any(w[:, 0] < 0) or np.any(w[:, 1] > T) or np.any(w[:, 1] <= w[:, 0]):
        raise ValueError(f"every window must satisfy 0 <= start < stop <= {T}")
    t = np.arange(T)[None, :]
    inside = ((t >= w[:, :1]) & (t < w[:, 1:]))[..., None]
    return (x * inside).sum(axis=1) / (w[:, 1] - w[:, 0])[:, None]


def _classifier(name: str):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        # newton-cg: the same convex (L2, C = 1) objective as the default lbfgs, several times faster
        # here
        return make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cg", max_iter=2000))
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())


def decode_context(
    features,
    labels,
    *,
    window=None,
    bin_size: int | None = None,
    classifier: str = "logistic",
    balanced: bool = False,
    n_splits: int = 5,
    n_permutations: int = 200,
    seed: int = 0,
) -> ContextDecoding:
    """Decode ``labels (trials,)`` from ``features``: ``(trials, F)``, or ``(trials, T, F)``
    reduced by ``window`` (see :func:`window_mean`; default: the mean over all steps) or decoded
    per bin of ``bin_size`` steps. Stratified ``n_splits``-fold cross-validation (shuffled, seeded),
    null of ``n_permutations`` label permutations. ``balanced``: score the balanced accuracy (the
    mean of the per-label recalls; chance ``1 / labels``) instead of the accuracy, for unequal
    numbers of trials per label (Yang's test grids hold 40 to 500 trials per rule)."""
    from sklearn.model_selection import StratifiedKFold

    check_choice("classifier", classifier, CLASSIFIERS)
    n_splits = check_positive_int("n_splits", n_splits)
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2, got {n_splits}")
    seed = check_seed(seed)
    X = np.asarray(features, float)
    y = np.asarray(labels)
    if X.ndim not in (2, 3) or y.ndim != 1 or len(y) != len(X):
        raise ValueError(
            f"features must be (trials, F) or (trials, T, F) and labels (trials,), got {X.shape} and {y.shape}"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("features have non-finite values")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError("decoding needs at least two distinct labels")
    if counts.min() < n_splits:
        raise ValueError(
            f"decoding with {n_splits} folds needs at least {n_splits} trials of every label; "
            f"label {classes[np.argmin(counts)]!r} has {counts.min()}"
        )
    if bin_size is not None and window is not None:
        raise ValueError("give either window or bin_size, not both")
    if X.ndim == 2 and (bin_size is not None or window is not None):
        raise ValueError("window and bin_size need features with a time axis (trials, T, F)")

    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed % 2**32)

    def run(Xf: np.ndarray) -> NullTest:
        return cross_validated_score(
            Xf, y, estimator=_classifier(classifier), cv=cv, score=score,
            n_null=n_permutations, seed=seed,
        )

    if balanced:
        from sklearn.metrics import balanced_accuracy_score as score

        chance = 1.0 / len(classes)
    else:
        score = lambda t, p: float(np.mean(t == p))  # noqa: E731
        chance = float(counts.max() / counts.sum())
    if bin_size is None:
        Xf = X if X.ndim == 2 else window_mean(X, (0, X.shape[1]) if window is None else window)
        r = run(Xf)
        return ContextDecoding(r.score, r.null_mean, r.null_95, r.p, r.null, chance, classes, None)
    b = check_positive_int("bin_size", bin_size)
    T = X.shape[1]
    if b > T:
        raise ValueError(f"bin_size={b} is longer than the trials ({T} steps)")
    bins = np.array([(s, s + b) for s in range(0, T - b + 1, b)])
    res = [run(X[:, s:e].mean(axis=1)) for s, e in bins]
    return ContextDecoding(
        np.array([r.score for r in res]), np.array([r.null_mean for r in res]),
        np.array([r.null_95 for r in res]), np.array([r.p for r in res]),
        np.stack([r.null for r in res]), chance, classes, bins,
    )


# ----------------------------------------------------------------------------------------------
# task variance, clustering, modularity
# ----------------------------------------------------------------------------------------------


class TaskVariance(NamedTuple):
    """Yang's task variance: ``variance (N, n_tasks)`` of every unit, ``active`` (the units whose
    total exceeds the threshold), ``normalized (n_active, n_tasks)`` and the ``tasks``' names."""

    variance: np.ndarray
    normalized: np.ndarray
    active: np.ndarray
    tasks: tuple[str, ...]


def task_variance(
    activity: Mapping[str, Any],
    *,
    windows: Mapping[str, tuple[int, int]] | None = None,
    min_total: float = MIN_TASK_VARIANCE,
    normalization: str = "max",
) -> TaskVariance:
    """Task variance per unit (Yang et al. 2019, ``analysis/variance.py`` and
    ``analysis/clustering.py``; see the module docstring).

    Args:
        activity: task name -> ``(trials, T, N)`` activity of that task's trials (aligned: the
            same timing in every trial, as Yang's test grids).
        windows: task name -> ``(start, stop)`` steps to average over (Yang: from the end of the
            fixation epoch to the end of the trial); default the whole trial.
        min_total: units with total variance over tasks at most this are dropped.
        normalization: ``"max"`` (each unit divided by its maximum over tasks), ``"sum"``, ``"none"``.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    if not isinstance(activity, Mapping) or not activity:
        raise ValueError("activity must map at least one task name to a (trials, T, N) array")
    tasks = tuple(activity)
    windows = dict(windows or {})
    unknown = sorted(set(windows) - set(tasks))
    if unknown:
        raise ValueError(f"windows name task(s) without activity: {', '.join(map(str, unknown))}")
    cols, N = [], None
    for name in tasks:
        h = np.asarray(activity[name], float)
        if h.ndim != 3 or h.shape[0] < 2:
            raise ValueError(f"activity[{name!r}] must be (trials >= 2, T, N), got shape {h.shape}")
        if N is None:
            N = h.shape[2]
        elif h.shape[2] != N:
            raise ValueError(f"activity[{name!r}] has {h.shape[2]} units, the others {N}")
        start, stop = windows.get(name, (0, h.shape[1]))
        if not 0 <= int(start) < int(stop) <= h.shape[1]:
            raise ValueError(f"window {(start, stop)} of {name!r} must satisfy 0 <= start < stop <= {h.shape[1]}")
        cols.append(h[:, int(start): int(stop)].var(axis=0).mean(axis=0))
    var = np.stack(cols, axis=1)
    active = np.flatnonzero(var.sum(axis=1) > float(min_total))
    v = var[active]
    if normalization == "max":
        norm = v / v.max(axis=1, keepdims=True)
    elif normalization == "sum":
        norm = v / v.sum(axis=1, keepdims=True)
    else:
        norm = v.copy()
    return TaskVariance(var, norm, active, tasks)


class UnitClusters(NamedTuple):
    """Clusters of units: ``labels (units,)`` relabelled by preferred task, ``n_clusters`` chosen,
    ``candidates`` and their silhouette ``scores``, ``preference (n_clusters,)`` (each cluster's
    preferred feature/task index, ascending) and ``order`` (units sorted by label, stably)."""

    labels: np.ndarray
    n_clusters: int
    candidates: np.ndarray
    scores: np.ndarray
    preference: np.ndarray
    order: np.ndarray


def cluster_units(
    features, *, n_clusters: Sequence[int] = range(2, 30), method: str = "kmeans", seed: int = 0
) -> UnitClusters:
    """Cluster the rows of ``features (units, tasks)`` (e.g. ``TaskVariance.normalized``) as
    Yang's ``clustering.py``: the number of clusters in ``n_clusters`` (those below the number of
    units) with the best silhouette score."""
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.metrics import silhouette_score

    check_choice("method", method, CLUSTER_METHODS)
    seed = check_seed(seed)
    X = np.asarray(features, float)
    if X.ndim != 2 or X.shape[0] < 3 or X.shape[1] < 1:
        raise ValueError(f"features must be (units >= 3, tasks), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features have non-finite values")
    ks = np.array(sorted({check_positive_int("n_clusters", k) for k in n_clusters}))
    ks = ks[(ks >= 2) & (ks < X.shape[0])]
    if ks.size == 0:
        raise ValueError(f"no candidate number of clusters lies in [2, {X.shape[0] - 1}] (units - 1)")
    scores, labelings = [], []
    for k in ks:
        if method == "kmeans":
            model = KMeans(int(k), n_init=20, random_state=seed % 2**32, algorithm="lloyd")
        else:
            model = AgglomerativeClustering(n_clusters=int(k), metric="cosine", linkage="average")
        labels = model.fit_predict(X)
        n_found = len(np.unique(labels))
        scores.append(silhouette_score(X, labels) if 1 < n_found < X.shape[0] else -1.0)
        labelings.append(labels)
    best = int(np.argmax(scores))
    labels = labelings[best]
    uniq = np.unique(labels)
    prefs = np.array([np.argmax(X[labels == lab].sum(axis=0)) for lab in uniq])
    sort = np.argsort(prefs, kind="stable")
    relabel = np.empty_like(labels)
    for new, old in enumerate(uniq[sort]):
        relabel[labels == old] = new
    return UnitClusters(relabel, int(len(uniq)), ks, np.array(scores), prefs[sort],
                        np.argsort(relabel, kind="stable"))


class ConnectivityModularity(NamedTuple):
    """Network statistics (:func:`nmrnn.spatial.network_statistics`) of the recurrent matrix ``W``
    and of the NM-gated ``W_eff = W + sum_k nbar_k T_k`` at ``nbar``; ``modularity_W`` and
    ``modularity_W_eff`` are their Louvain Q."""

    W: dict[str, Any]
    W_eff: dict[str, Any]
    nbar: np.ndarray
    modularity_W: float
    modularity_W_eff: float


def connectivity_modularity(
    model, nbar, *, density: float = 0.1, n_null: int = 20, seed: int = 0
) -> ConnectivityModularity:
    """Modularity of a model's recurrent connectivity with and without the NM gating.

    ``nbar (M,)``: the concentrations to gate with (e.g. the mean NM state over trials and time).
    Needs the model hooks ``recurrent_weights()`` and ``modulated_weights(n)``; ``density``,
    ``n_null`` and ``seed`` go to :func:`nmrnn.spatial.network_statistics`."""
    import jax.numpy as jnp

    from ..spatial import network_statistics

    nm_fields = _nm_fields(model)
    M = sum(model.state_sizes()[f] for f in nm_fields)
    nbar = np.asarray(nbar, float)
    if nbar.shape != (M,) or not np.all(np.isfinite(nbar)):
        raise ValueError(f"nbar must be {M} finite concentrations (M,), got shape {nbar.shape}")
    W, W_eff = model.recurrent_weights(), model.modulated_weights(jnp.asarray(nbar, dtype=jnp.float32))
    if W is None or W_eff is None:
        raise ValueError(
            f"{_model_name(model)} has no full recurrent matrix (its recurrent_weights() and "
            "modulated_weights(n) = W + sum_k n_k T_k give none); connectivity modularity needs both"
        )
    W, W_eff = np.asarray(W, float), np.asarray(W_eff, float)
    s_w = network_statistics(W, density=density, n_null=n_null, seed=seed)
    s_eff = network_statistics(W_eff, density=density, n_null=n_null, seed=seed)
    return ConnectivityModularity(s_w, s_eff, nbar, s_w["modularity"], s_eff["modularity"])


# ----------------------------------------------------------------------------------------------
# the Yang tasks
# ----------------------------------------------------------------------------------------------


class YangTrials(NamedTuple):
    """A model run on Yang tasks: per rule (in ``rules`` order) the NM state ``nm (B, T, M)``, the
    ``activity (B, T, N)`` and the batch ``info`` (NumPy arrays; times in steps)."""

    rules: tuple[str, ...]
    nm: tuple[np.ndarray, ...]
    activity: tuple[np.ndarray, ...]
    info: tuple[dict[str, np.ndarray], ...]


def yang_trials(
    model, rules: Sequence[str] | None = None, *, mode: str = "test", batch_size: int | None = None,
    key=None, nm_signal: str = "state", **task_options: Any,
) -> YangTrials:
    """Run ``model`` noise-free on trials of the Yang ``rules`` (default all 20).

    ``mode="test"`` (default) uses each rule's whole test grid (Yang's analyses use it, without
    noise); ``mode="random"`` draws ``batch_size`` trials per rule from ``key`` (rule ``i`` from
    ``fold_in(key, i)``). ``task_options`` go to :class:`~nmrnn.tasks.yang.YangTask` (e.g. ``dt``,
    ``tau``); the input noise is off (``sigma_x=0``) unless given, and then needs ``key`` too. The
    network runs without recurrent noise."""
    import jax.random as jr

    from ..models.base import simulate
    from ..tasks.yang import RULES, YangTask

    rules = tuple(RULES if rules is None else rules)
    if not rules:
        raise ValueError("rules must name at least one Yang rule")
    options = {"sigma_x": 0.0, **task_options}
    if key is None and (mode != "test" or options["sigma_x"] != 0):
        raise ValueError("yang_trials needs a key for random trials or input noise (mode='test' with sigma_x=0 needs none)")
    if mode == "random" and batch_size is None:
        raise ValueError("mode 'random' needs batch_size")
    # Without noise the test grid ignores the key: any fixed key gives the same trials.
    key = jr.PRNGKey(0) if key is None else key
    nms, acts, infos = [], [], []
    for i, rule in enumerate(rules):
        task = YangTask(rule, mode=mode, **options)
        n = task.grid_size if batch_size is None else check_positive_int("batch_size", batch_size)
        batch = task.sample(jr.fold_in(key, i), n)
        split = split_states(model, simulate(model, batch.inputs).states, nm_signal=nm_signal)
        nms.append(split.nm)
        acts.append(split.activity)
        infos.append({name: np.asarray(v) for name, v in batch.info.items()})
    return YangTrials(rules, tuple(nms), tuple(acts), tuple(infos))


def _fix1_end(info: dict[str, np.ndarray], rule: str) -> tuple[int, int]:
    ends = info["epochs"][:, 0, 1]
    t_end = info["t_end"]
    if np.any(ends != ends[0]) or np.any(t_end != t_end[0]):
        raise ValueError(
            f"the trials of {rule!r} do not share one timing; task variance needs aligned trials "
            "(use mode='test')"
        )
    return int(ends[0]), int(t_end[0])


def yang_task_variance(trials: YangTrials, *, signal: str = "activity", **options: Any) -> TaskVariance:
    """:func:`task_variance` of ``trials`` (from :func:`yang_trials`, test mode) over Yang's
    window: from the end of the fixation epoch to the end of the trial. ``signal``:
    ``"activity"`` (Yang's units) or ``"nm"``."""
    check_choice("signal", signal, ("activity", "nm"))
    data = trials.activity if signal == "activity" else trials.nm
    act = dict(zip(trials.rules, data, strict=True))
    windows = {r: _fix1_end(info, r) for r, info in zip(trials.rules, trials.info, strict=True)}
    return task_variance(act, windows=windows, **options)


def yang_context_features(trials: YangTrials, *, signal: str = "nm", epoch: str = "fix1") -> tuple[np.ndarray, np.ndarray]:
    """Per-trial features for :func:`decode_context`: the mean of ``signal`` (``"nm"`` or
    ``"activity"``) over each trial's ``epoch`` (one of :data:`nmrnn.tasks.yang.EPOCHS`; default
    the fixation epoch, before any stimulus), and the rule index of each trial. Trials whose rule
    has no such epoch are left out. Returns ``(X (trials, F), labels (trials,))``."""
    from ..tasks.yang import EPOCHS

    check_choice("signal", signal, ("activity", "nm"))
    e = EPOCHS.index(check_choice("epoch", epoch, EPOCHS))
    data = trials.nm if signal == "nm" else trials.activity
    xs, ys = [], []
    for x, info in zip(data, trials.info, strict=True):
        w = info["epochs"][:, e]
        has = w[:, 1] > w[:, 0]
        if not np.any(has):
            continue
        xs.append(window_mean(x[has], w[has].astype(int)))
        ys.append(info["rule"][has])
    if not xs:
        raise ValueError(f"no trial of these rules has a {epoch!r} epoch")
    return np.concatenate(xs), np.concatenate(ys)
