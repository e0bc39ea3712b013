"""The agent analyses on synthetic data with known answers: the Q-learning fit recovers a
simulated learner's RPEs, decoders find a planted signal and not a missing one, switch-aligned
averages by hand, and win-stay-lose-shift against its closed form."""

import jax.random as jr
import numpy as np
import pytest

from nmrnn.rl import BlockBandit
from nmrnn.rl.analysis import (
    choice_after_switch,
    decode,
    fit_q_learning,
    switch_aligned,
    win_stay_lose_shift,
)


def simulate_q_learner(n_episodes, n_trials, learn_rate, beta, p_high=0.8, seed=0):
    """A plain Q-learner (no forgetting, no choice kernel, no bias) on coupled blocks of 25."""
    rng = np.random.default_rng(seed)
    choices = np.zeros((n_episodes, n_trials), int)
    rewards = np.zeros((n_episodes, n_trials))
    rpe = np.zeros((n_episodes, n_trials))
    for e in range(n_episodes):
        q = np.zeros(2)
        best = rng.integers(2)
        for t in range(n_trials):
            if t and t % 25 == 0:
                best = 1 - best
            p_right = 1 / (1 + np.exp(-beta * (q[1] - q[0])))
            c = int(rng.random() < p_right)
            r = float(rng.random() < (p_high if c == best else 1 - p_high))
            rpe[e, t] = r - q[c]
            q[c] += learn_rate * (r - q[c])
            choices[e, t], rewards[e, t] = c, r
    return choices, rewards, rpe


def test_q_learning_fit_recovers_a_simulated_learners_rpe():
    pytest.importorskip("aind_dynamic_foraging_models", reason="needs the extra nmrnn[rl]")
    choices, rewards, true_rpe = simulate_q_learner(4, 100, learn_rate=0.4, beta=6.0)
    fit = fit_q_learning(choices, rewards, de_kwargs={"maxiter": 40, "popsize": 8, "polish": False})
    assert fit.params["biasL"] == 0  # clamped, as in the paper
    assert fit.q.shape == (4, 100, 2) and fit.rpe.shape == (4, 100)
    assert np.all(fit.q[:, 0] == 0)  # every episode starts from Q = 0
    assert np.corrcoef(fit.rpe.ravel(), true_rpe.ravel())[0, 1] > 0.9
    assert abs(fit.params["learn_rate"] - 0.4) < 0.2
    assert fit.prediction_accuracy > 0.6
    # RPE is the reward minus the fitted value of the chosen arm
    chosen = np.take_along_axis(fit.q, choices[..., None], -1)[..., 0]
    np.testing.assert_allclose(fit.rpe, rewards - chosen)


def test_bad_behaviour_data_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        fit_q_learning(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="0 or 1"):
        fit_q_learning(np.full((2, 5), 2), np.zeros((2, 5)))


def test_decoder_finds_a_planted_signal_and_not_a_missing_one():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 50)).cumsum(axis=1)  # autocorrelated, like a block or a value
    planted = decode(2.0 * y + rng.normal(size=y.shape), y, n_shifts=40)
    assert planted["r2"] > 0.8 and planted["p"] < 0.05
    unrelated = decode(rng.normal(size=(20, 50)).cumsum(axis=1), y, n_shifts=40)
    assert unrelated["r2"] < 0.1 and unrelated["p"] > 0.05
    with pytest.raises(ValueError, match="folds"):
        decode(np.zeros((3, 5)), np.zeros((3, 5)))


def test_switch_aligned_averages_by_hand():
    values = np.arange(30, dtype=float).reshape(1, 30)
    flips = np.zeros((1, 30), bool)
    flips[0, 9] = flips[0, 27] = True  # second switch too close to the end for the window
    offsets, mean, n = switch_aligned(values, flips, before=2, after=3)
    assert n == 1 and list(offsets) == [-2, -1, 0, 1, 2, 3]
    np.testing.assert_array_equal(mean, [8, 9, 10, 11, 12, 13])
    blocks = np.r_[np.zeros(10), np.ones(20)][None].astype(int)
    actions = np.r_[np.zeros(12), np.ones(18)][None].astype(int)  # follows the switch after 2 trials
    _, p, n = choice_after_switch(actions, blocks, flips, before=2, after=3)
    np.testing.assert_array_equal(p, [0, 0, 0, 0, 1, 1])


def test_win_stay_lose_shift_matches_its_closed_form():
    # with hazard h and contrast p, P(on the better arm) after trial 1 is m = p(1-h) + (1-p)h
    p, h, T = 0.8, 0.05, 100
    env = BlockBandit(block="hazard", hazard=h, p_high=p, episode_length=T)
    m = p * (1 - h) + (1 - p) * h
    expected = (0.5 + (T - 1) * (m * p + (1 - m) * (1 - p))) / T
    rate = win_stay_lose_shift(env, jr.PRNGKey(0), n_episodes=2000)
    assert rate == pytest.approx(expected, abs=0.006)  # s.e. ~0.0015
