"""Cross-validated decoding against a null of the same decoder on scrambled targets.

One routine serves every decoder of the library: the one-degree-of-freedom regressions of the
bandit analysis (:func:`nmrnn.rl.analysis.decode`: R^2 over held-out episodes, null of targets
circularly shifted within each episode) and the task-rule classifiers of the interpretation
toolkit (:func:`nmrnn.analysis.interpret.decode_context`: accuracy over stratified folds, null of
permuted labels).

:func:`cross_validated_score` fits a fresh copy of ``estimator`` on each training fold, predicts
the held-out samples (``cross_val_predict``: every sample is predicted once, by the model that did
not see it), scores the pooled predictions, and repeats the whole procedure on ``n_null`` scrambled
copies of the target drawn by ``null_target``. The p-value is the fraction of null scores at or
above the observed one with the usual +1 correction, ``(1 + #{null >= observed}) / (1 + n_null)``,
so that it is never 0 and is exact for exchangeable nulls (Phipson & Smyth 2010).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_nonnegative_int

__all__ = ["NullTest", "cross_validated_score", "permute_target"]


class NullTest(NamedTuple):
    """A cross-validated score and its null distribution.

    ``score``: the observed score; ``null (n_null,)``: the scores of the scrambled targets;
    ``null_mean``, ``null_95`` (its mean and 95th percentile; NaN without a null) and ``p``."""

    score: float
    null: np.ndarray
    null_mean: float
    null_95: float
    p: float


def permute_target(rng: np.random.Generator, target: np.ndarray) -> np.ndarray:
    """The default null: the target's entries in a uniformly random order (a label shuffle)."""
    return rng.permutation(target)


def cross_validated_score(
    X,
    y,
    *,
    estimator: Any,
    cv: Any,
    score: Callable[[np.ndarray, np.ndarray], float],
    groups=None,
    null_target: Callable[[np.random.Generator, np.ndarray], np.ndarray] = permute_target,
    n_null: int = 100,
    seed: int = 0,
) -> NullTest:
    """Score of ``estimator``'s held-out predictions of ``y`` from ``X``, against a null.

    Args:
        X: ``(samples, features)``; y: ``(samples,)``.
        estimator: a scikit-learn estimator (cloned, never fitted in place).
        cv: a scikit-learn splitter (e.g. ``GroupKFold``, ``StratifiedKFold``); ``groups`` are
            passed to it.
        score: ``score(y_true, y_pred) -> float`` on the pooled held-out predictions.
        null_target: ``null_target(rng, y) -> scrambled y`` (default: a permutation).
        n_null: the number of scrambled targets (0: no null, ``p = 1``).
        seed: seeds the generator that ``null_target`` draws from (drawn in order, one call per
            null target).
    """
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    n_null = check_nonnegative_int("n_null", n_null)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"X must be (samples, features) and y (samples,), got {X.shape} and {y.shape}")

    def run(target: np.ndarray) -> float:
        pred = cross_val_predict(clone(estimator), X, target, groups=groups, cv=cv)
        return float(score(target, pred))

    observed = run(y)
    rng = np.random.default_rng(seed)
    null = np.array([run(null_target(rng, y)) for _ in range(n_null)], dtype=float)
    p = (1 + np.sum(null >= observed)) / (1 + n_null)
    return NullTest(
        score=observed,
        null=null,
        null_mean=float(null.mean()) if n_null else float("nan"),
        null_95=float(np.quantile(null, 0.95)) if n_null else float("nan"),
        p=float(p),
    )
