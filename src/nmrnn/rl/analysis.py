"""Analyses of a recurrent agent's behaviour and internal states (any agent, any model).

* :func:`fit_q_learning`: a Q-learning model fitted by maximum likelihood to the agent's choices
  and rewards with aind-dynamic-foraging-models (the e-nmRNN paper's fit: preset ``"Bari2019"``,
  the softmax inverse temperature bounded to [0, 100], ``biasL`` clamped to 0, differential
  evolution seeded 42), one session per episode (the model's Q-values restart at 0 with each
  episode, as the agent's state does), and the reward-prediction error of every trial,
  ``RPE_t = r_t - Q_t(c_t)`` with ``Q_t`` the fitted values before trial t's choice.
* :func:`decode`: one-degree-of-freedom linear decoders (``y ~ a x + b``) from each
  neuromodulator's trace to a behavioural variable, cross-validated R^2 over held-out episodes,
  against a null of the same decoder on labels circularly shifted within each episode (which keeps
  each series' autocorrelation, unlike a plain permutation).
* :func:`switch_aligned` and :func:`choice_after_switch`: traces and behaviour around block
  switches (the paper's Fig. 4C-D).
* :func:`win_stay_lose_shift`: the reward rate of the classic heuristic on the same environment,
  a baseline for the agents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The e-nmRNN paper's options for the behavioural fit (supplement, section 6).
PAPER_FIT = {
    "preset": "Bari2019",
    "fit_bounds_override": {"softmax_inverse_temperature": [0, 100]},
    "clamp_params": {"biasL": 0},
    "seed": 42,
}


@dataclass
class QFit:
    """A fitted Q-learning model: its ``params``, the fitted Q-values before each trial's choice
    ``q (S, T, 2)``, the ``rpe (S, T)``, the fraction of choices the model predicts, and the
    negative log-likelihood."""

    params: dict[str, float]
    q: np.ndarray
    rpe: np.ndarray
    prediction_accuracy: float
    neg_log_likelihood: float
    settings: dict[str, Any] = field(default_factory=dict)


def _sessions(choices, rewards) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(choices)
    r = np.asarray(rewards, dtype=float)
    if c.ndim == 1:
        c, r = c[None], r[None]
    if c.ndim != 2 or c.shape != r.shape:
        raise ValueError(f"choices and rewards must have the same shape (episodes, trials), got {c.shape} and {r.shape}")
    if c.size == 0 or not np.isin(c, (0, 1)).all():
        raise ValueError("choices must be 0 or 1 (two arms)")
    if not np.isin(r, (0.0, 1.0)).all():
        raise ValueError("rewards must be 0 or 1")
    return c.astype(int), r


def require_fitting_package() -> None:
    """Raise a clear ``ImportError`` now when the behavioural fit's package is missing (call it
    before training what is to be fitted)."""
    try:
        from aind_dynamic_foraging_models.generative_model import ForagerCollection  # noqa: F401
    except ImportError as err:
        raise ImportError("the Q-learning fit needs aind-dynamic-foraging-models: pip install 'nmrnn[rl]'") from err


def fit_q_learning(choices, rewards, *, preset: str = PAPER_FIT["preset"],
                   fit_bounds_override: dict | None = None, clamp_params: dict | None = None,
                   seed: int = PAPER_FIT["seed"], de_kwargs: dict | None = None) -> QFit:
    """Fit a Q-learning model to ``choices`` and ``rewards`` (``(episodes, trials)`` or one
    episode) with aind-dynamic-foraging-models, by default with the paper's options
    (:data:`PAPER_FIT`); ``de_kwargs`` go to SciPy's differential evolution (``maxiter``,
    ``popsize``, ``workers``...). Needs the extra ``nmrnn[rl]``."""
    c, r = _sessions(choices, rewards)
    require_fitting_package()
    from aind_dynamic_foraging_models.generative_model import ForagerCollection
    bounds = dict(PAPER_FIT["fit_bounds_override"] if fit_bounds_override is None else fit_bounds_override)
    clamp = dict(PAPER_FIT["clamp_params"] if clamp_params is None else clamp_params)
    forager = ForagerCollection().get_preset_forager(preset, seed=seed)
    de = {"workers": 1, "seed": np.random.default_rng(seed)}
    de.update(de_kwargs or {})
    sessions_c = [row.astype(float) for row in c]
    sessions_r = [row for row in r]
    result, _ = forager.fit(sessions_c if len(c) > 1 else sessions_c[0],
                            sessions_r if len(r) > 1 else sessions_r[0],
                            fit_bounds_override=bounds, clamp_params=clamp, DE_kwargs=de)
    params = {k: float(v) for k, v in result.params.items()}
    forager.set_params(**params)
    q = np.empty((*c.shape, 2))
    for s in range(len(c)):  # the fitted model replayed on each episode from Q = 0
        forager.perform_closed_loop(sessions_c[s], sessions_r[s])
        q[s] = np.asarray(forager.q_value)[:, : c.shape[1]].T
    rpe = r - np.take_along_axis(q, c[..., None], -1)[..., 0]
    return QFit(params, q, rpe, float(result.prediction_accuracy), float(result.fun),
                {"preset": preset, "fit_bounds_override": bounds, "clamp_params": clamp, "seed": seed})


def decode(x, y, *, n_splits: int = 5, n_shifts: int = 100, seed: int = 0) -> dict[str, float]:
    """Cross-validated R^2 of the one-variable linear decoder ``y ~ a x + b``.

    ``x``, ``y``: ``(episodes, trials)``. Folds hold out whole episodes. The null: the same
    decoder on ``y`` circularly shifted within each episode by a random offset (at least a tenth
    of the episode); ``p`` is the fraction of ``n_shifts`` shifted R^2 at or above the observed one
    (with the usual +1 correction). Returns ``r2``, ``null_mean``, ``null_95`` and ``p``.

    The cross-validation and the null test are :func:`nmrnn.analysis.decoding.cross_validated_score`
    (shared with the interpretation toolkit's context decoder)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GroupKFold

    from ..analysis.decoding import cross_validated_score

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must both be (episodes, trials), got {x.shape} and {y.shape}")
    n_ep, n_t = x.shape
    if n_ep < n_splits:
        raise ValueError(f"decoding with {n_splits} folds needs at least {n_splits} episodes, got {n_ep}")
    lo = max(1, n_t // 10)

    def r2(t, pred):
        ss = np.sum((t - t.mean()) ** 2)
        return 1.0 - np.sum((t - pred) ** 2) / ss if ss > 0 else 0.0

    def shifted(rng, target):  # a random circular shift of every episode
        rows = target.reshape(n_ep, n_t)
        return np.stack([np.roll(row, rng.integers(lo, n_t - lo + 1)) for row in rows]).reshape(-1)

    res = cross_validated_score(
        x.reshape(-1, 1), y.reshape(-1), estimator=LinearRegression(), cv=GroupKFold(n_splits=n_splits),
        score=r2, groups=np.repeat(np.arange(n_ep), n_t), null_target=shifted, n_null=n_shifts, seed=seed,
    )
    return {"r2": res.score, "null_mean": res.null_mean, "null_95": res.null_95, "p": res.p}


def switch_aligned(values, flips, *, before: int = 5, after: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
    """The mean of ``values (episodes, trials[, k])`` around every block switch: offsets
    ``-before..after`` trials from the first trial of the new block, the mean at each offset, and
    the number of switches used (those with the whole window inside the episode). ``flips``:
    ``(episodes, trials)``, true on the last trial of a block."""
    v = np.asarray(values, float)
    f = np.asarray(flips, bool)
    offsets = np.arange(-before, after + 1)
    rows = []
    for e, t in zip(*np.nonzero(f), strict=True):
        start = t + 1  # first trial of the new block
        if start - before >= 0 and start + after < f.shape[1]:
            rows.append(v[e, start + offsets])
    if not rows:
        return offsets, np.full((len(offsets), *v.shape[2:]), np.nan), 0
    return offsets, np.mean(rows, axis=0), len(rows)


def choice_after_switch(actions, blocks, flips, *, before: int = 5, after: int = 20):
    """Probability of choosing the new block's better arm against trials since the switch
    (before the switch: the arm that is about to become better): ``(offsets, probability,
    n_switches)`` as :func:`switch_aligned`. ``blocks``: the better arm of each trial."""
    a, b, f = np.asarray(actions), np.asarray(blocks), np.asarray(flips, bool)
    offsets = np.arange(-before, after + 1)
    rows = []
    for e, t in zip(*np.nonzero(f), strict=True):
        start = t + 1
        if start - before >= 0 and start + after < f.shape[1]:
            rows.append(a[e, start + offsets] == b[e, start])
    if not rows:
        return offsets, np.full(len(offsets), np.nan), 0
    return offsets, np.mean(rows, axis=0), len(rows)


def win_stay_lose_shift(env, key, n_episodes: int = 256) -> float:
    """Reward per trial of win-stay-lose-shift (first choice random) on ``env``."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    params = env.default_params

    def episode(k):
        k0, k1 = jr.split(k)
        _, state = env.reset(k0, params)

        def body(carry, kk):
            state, prev_a, prev_r, t = carry
            ka, ks = jr.split(kk)
            a = jnp.where(t == 0, jr.bernoulli(ka).astype(jnp.int32),
                          jnp.where(prev_r > 0, prev_a, 1 - prev_a))
            _, state, r, _, _ = env.step_env(ks, state, a, params)
            return (state, a, r, t + 1), r

        _, rs = jax.lax.scan(body, (state, jnp.zeros((), jnp.int32), jnp.zeros(()), 0), jr.split(k1, env.episode_length))
        return rs

    rewards = jax.jit(jax.vmap(episode))(jr.split(key, n_episodes))
    return float(np.mean(np.asarray(rewards)))
