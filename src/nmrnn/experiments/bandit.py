"""R10: recurrent agents on the block-switching two-armed bandit; the e-nmRNN's neuromodulators
track the block and encode the reward-prediction error (e-nmRNN paper, supplement section 6,
Tables 1-2, Fig. 4).

Protocol. Agents: the e-nmRNN (64 units, 4 NMs, ReLU-Tanh) and a vanilla RNN (64 units), the
policy's two logits and the value read out of the same network, hidden-state noise 0.002,
trained with A2C and the paper's Table 2 values (:data:`nmrnn.rl.PAPER_A2C`: lr 7e-4, gamma
0.95, GAE lambda 0.95, entropy 0.3, critic 0.01, max grad norm 0.5, Adam eps 1e-8, 16
environments, 200-trial episodes, one episode per update, activity L2 100). Two readings are
ours: the table's ``tau_n = 0.1`` is taken as the NM leak rate ``dt / tau_n`` (``tau_n = 10 dt``;
as a time constant in units of dt it would be below the Euler step), and the neurons are
discrete-time (``tau_r = dt``), as the table's ``rnn_cell_type vanilla`` is. The table says
A2C; the text says PPO (with a learning rate of 7e-5): the table's A2C is what is run.

The two agents are two run directories (``agents/<agent>``), trained as a grid of
:class:`~nmrnn.train.run.RunSpec` s (:func:`nmrnn.experiments.grid.run_grid`: ``--workers``
apply): task ``"bandit"``, objective ``"a2c"`` with the table's coefficients, the activity L2 as
the training config's regulariser. Every key of a run derives from its spec's seed, the
reproduction's seed (the model's ``fold_in(seed_key(seed), 0)``, training's ``fold_in(.., 1)``).

After training, ``n_eval`` fresh episodes are played noise-free. A Q-learning model is fitted to
the e-nmRNN agent's choices (aind-dynamic-foraging-models, preset Bari2019, the paper's options)
and gives each trial's RPE. Decoders (:func:`nmrnn.rl.analysis.decode`): each NM's
concentration on the step that receives a trial's reward (the next step's input) against that
trial's RPE, and each NM's concentration before a choice against the block (which arm is better).

Claims and criteria, fixed before any run, on the e-nmRNN agent:

* performs the task: reward per trial at least that of win-stay-lose-shift minus 0.05 (the
  oracle that knows the block gets ``p_high``);
* NM states track the block: some NM decodes the block with cross-validated R^2 above its
  circular-shift null at p < 0.05 / 4 (Bonferroni over the 4 NMs);
* NM states encode RPE: the same for the fitted RPE.

The two decoding checks are undecided when the agent did not learn the task (reward per trial
below 0.6): decoding a policy that ignores the block says nothing about the claim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax.random as jr
import numpy as np

from ..models import param_count
from ..rl import PAPER_A2C, evaluate_agent
from ..rl.a2c import _eval_rollout
from ..rl.analysis import (
    choice_after_switch,
    decode,
    fit_q_learning,
    require_fitting_package,
    switch_aligned,
    win_stay_lose_shift,
)
from ..train import TrainConfig
from ..train.run import RunSpec, load_run, read_curve
from .compare import slug
from .grid import GridJob, GridOptions, run_grid
from .profiles import Profiles
from .registry import check, verdict_of

N_NM = 4
ALPHA = 0.05 / N_NM  # Bonferroni over the NMs
LEARNED = 0.6  # reward per trial below which the agent has not learned the task
WSLS_MARGIN = 0.05


@dataclass(frozen=True)
class BanditSettings:
    updates: int
    n_hidden: int
    n_eval: int  # evaluation episodes
    n_fit: int  # episodes the Q-learning model is fitted to
    de_maxiter: int  # differential evolution generations of the fit
    n_shifts: int  # circular shifts of the decoders' null


PROFILES = Profiles(
    smoke=BanditSettings(updates=4, n_hidden=8, n_eval=10, n_fit=5, de_maxiter=3, n_shifts=5),
    quick=BanditSettings(updates=8000, n_hidden=64, n_eval=100, n_fit=20, de_maxiter=60, n_shifts=100),
    paper=BanditSettings(updates=PAPER_A2C["num_updates"], n_hidden=64, n_eval=300, n_fit=50, de_maxiter=200, n_shifts=200),
)

AGENTS = (
    ("e-nmRNN", "enmrnn", {"n_nm": N_NM, "tau_r": 1.0, "tau_n": 10.0, "activation": "relutanh"}),
    ("vanilla RNN", "vanilla", {"tau": 1.0, "activation": "tanh"}),
)


#: The table's A2C coefficients, the objective's options.
A2C_OPTIONS = {k: PAPER_A2C[k] for k in ("gamma", "lam", "entropy_coef", "critic_coef")}


def train_config(updates: int) -> TrainConfig:
    """Table 2's optimiser (Adam, lr 7e-4, eps 1e-8 as optax's default, gradient norm clipped at
    0.5), 16 environments per update and the activity L2 of 100."""
    return TrainConfig(steps=updates, lr=PAPER_A2C["lr"], optimizer="adam", clip=PAPER_A2C["max_grad_norm"],
                       batch_size=PAPER_A2C["n_envs"], steps_per_call=min(100, updates),
                       checkpoint_every=max(100, updates // 20), activity_l2=PAPER_A2C["activity_l2"])


def agent_jobs(settings: BanditSettings, seed: int) -> list[GridJob]:
    """R10's runs: one per agent of :data:`AGENTS`, in ``agents/<agent>``, with the
    reproduction's ``seed``."""
    jobs = []
    for label, name, options in AGENTS:
        spec = RunSpec(name, settings.n_hidden, "bandit", train_config(settings.updates), seed,
                       {**options, "sigma_rec": PAPER_A2C["hidden_noise_std"]},
                       {"episode_length": PAPER_A2C["n_steps"]}, objective="a2c", objective_options=A2C_OPTIONS)
        jobs.append(GridJob(f"agents/{slug(label)}", spec, label))
    return jobs


def bandit_checks(reward_rate: float, wsls: float, block_p: list[float], rpe_p: list[float]) -> list[dict]:
    """R10's checks from the e-nmRNN agent's reward per trial, win-stay-lose-shift's, and the
    per-NM decoding p-values against the block and the RPE."""
    learned = reward_rate >= LEARNED
    return [
        check("performs the task", [reward_rate, wsls], reward_rate >= wsls - WSLS_MARGIN,
              f"e-nmRNN reward per trial >= win-stay-lose-shift's - {WSLS_MARGIN:g}"),
        check("NM states track the block", block_p, min(block_p) < ALPHA,
              f"some NM decodes the block above its circular-shift null, p < 0.05/{N_NM}", decided=learned),
        check("NM states encode RPE", rpe_p, min(rpe_p) < ALPHA,
              f"some NM decodes the fitted Q-learning RPE above its circular-shift null, p < 0.05/{N_NM}",
              decided=learned),
    ]


def train_agents(out_dir: Path, settings: BanditSettings, seed: int, grid: GridOptions | None = None) -> list[GridJob]:
    """Train (or reuse) R10's agents in ``out_dir`` as one grid of runs; returns its jobs."""
    jobs = agent_jobs(settings, seed)
    run_grid(jobs, out_dir, **(grid or GridOptions()).kwargs(), log=None)
    return jobs


def run(out_dir: Path, profile: str, seed: int, grid: GridOptions | None = None) -> dict[str, Any]:
    """R10 (registry format); ``grid``: workers and storage of the agents' runs."""
    s = PROFILES[profile]
    require_fitting_package()  # before hours of training, not after
    out = Path(out_dir)
    jobs = train_agents(out, s, seed, grid)
    key = jr.PRNGKey(seed)
    results: dict[str, Any] = {}
    rollouts = {}
    curves = {}
    for job in jobs:
        label = job.group
        _, model, task = load_run(out / job.run_dir)
        env = task.env
        metrics = evaluate_agent(model, task, jr.fold_in(key, 2), n_envs=s.n_eval)
        start = task.sample(jr.fold_in(key, 3), s.n_eval)
        rollouts[label] = (model, _eval_rollout(model, env, start, jr.fold_in(key, 4), task.n_steps, False))
        curves[label] = read_curve(out / job.run_dir, "reward_rate")
        results[label] = {**metrics, "params": param_count(model), "n_hidden": s.n_hidden}
    wsls = win_stay_lose_shift(env, jr.fold_in(key, 5), n_episodes=max(s.n_eval, 256))

    # the e-nmRNN agent's behaviour, RPE and NM codes
    model, ro = rollouts["e-nmRNN"]
    actions = np.asarray(ro.actions).T  # (episodes, trials)
    rewards = np.asarray(ro.rewards).T
    blocks = np.asarray(ro.info["block"]).T
    flips = np.asarray(ro.info["flip"]).T
    nm = np.moveaxis(np.asarray(model.modulation(ro.states)), 0, 1)  # (episodes, trials, M)
    n_fit = min(s.n_fit, s.n_eval)
    qfit = fit_q_learning(actions[:n_fit], rewards[:n_fit], de_kwargs={"maxiter": s.de_maxiter, "popsize": 8})
    rpe = qfit.rpe
    n_fit_nm = nm[:n_fit]
    folds = min(5, n_fit)
    block_codes = [decode(nm[..., k], blocks, n_splits=min(5, s.n_eval), n_shifts=s.n_shifts, seed=k) for k in range(N_NM)]
    # the reward of trial t reaches the network with the input of step t + 1
    rpe_codes = [decode(n_fit_nm[:, 1:, k], rpe[:, :-1], n_splits=folds, n_shifts=s.n_shifts, seed=10 + k)
                 for k in range(N_NM)]
    reward_rate = results["e-nmRNN"]["reward_rate"]
    checks = bandit_checks(reward_rate, wsls, [c["p"] for c in block_codes], [c["p"] for c in rpe_codes])
    figures = _figures(out, curves, nm, actions, blocks, flips, rpe, n_fit_nm)
    table = "\n".join(
        ["| agent | reward per trial | P(better arm) | parameters |", "| --- | --- | --- | --- |"]
        + [f"| {label} | {r['reward_rate']:.3f} | {r['p_best']:.3f} | {r['params']} |" for label, r in results.items()]
        + [f"| win-stay-lose-shift | {wsls:.3f} | | |", f"| oracle (knows the block) | {env.oracle_reward_rate():.3f} | | |"]
    )
    codes = "\n".join(
        ["| NM | block R^2 (null 95%) | block p | RPE R^2 (null 95%) | RPE p |", "| --- | --- | --- | --- | --- |"]
        + [f"| n_{k + 1} | {b['r2']:.3f} ({b['null_95']:.3f}) | {b['p']:.3g} | {r['r2']:.3f} ({r['null_95']:.3f}) | {r['p']:.3g} |"
           for k, (b, r) in enumerate(zip(block_codes, rpe_codes, strict=True))]
    )
    learned = reward_rate >= LEARNED
    note = "" if learned else (
        f"The e-nmRNN agent did not learn the task at this profile (reward per trial below {LEARNED:g}): "
        "the decoding checks are undecided.\n\n")
    return {
        "checks": checks,
        "verdict": verdict_of(checks),
        "metrics": {"agents": results, "win_stay_lose_shift": wsls, "oracle": env.oracle_reward_rate(),
                    "block_decoding": block_codes, "rpe_decoding": rpe_codes,
                    "q_learning_fit": {"params": qfit.params, "prediction_accuracy": qfit.prediction_accuracy,
                                       "neg_log_likelihood": qfit.neg_log_likelihood}},
        "settings": {"profile": profile, **asdict(s), "a2c": PAPER_A2C,
                     "environment": {"p_high": env.p_high, "block": env.block, "block_min": env.block_min,
                                     "block_max": env.block_max, "block_beta": env.block_beta,
                                     "episode_length": env.episode_length},
                     "agents": {label: {"model": name, **options} for label, name, options in AGENTS},
                     "runs": {job.group: {"run_dir": job.run_dir, "spec": job.spec.to_dict()} for job in jobs},
                     "q_fit": qfit.settings, "alpha": ALPHA, "learned": LEARNED},
        "figures": figures,
        "notes": note + "Task performance (noise-free evaluation episodes):\n\n" + table
        + "\n\nDecoding from each NM of the e-nmRNN agent (one-variable linear decoders, "
        "cross-validated over episodes; the criterion is significance against the circular-shift "
        "null, so read the R^2 for the size of the code):\n\n" + codes,
    }


def _figures(out: Path, curves, nm, actions, blocks, flips, rpe, nm_fit) -> list[str]:
    from ..plotting._common import plt, save

    paths = []
    fig, ax = plt.subplots(figsize=(5, 3))
    for label, c in curves.items():
        w = max(1, len(c) // 50)
        ax.plot(np.convolve(c, np.ones(w) / w, mode="valid"), label=label)
    ax.set_xlabel("update")
    ax.set_ylabel("reward per trial (training)")
    ax.legend(frameon=False)
    paths.append(save(fig, out / "learning_curves.png"))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    # NM traces around switches, signed by the new block (Fig. 4C): flip the sign for switches
    # towards arm 0 so that both directions add up
    sign = np.where(blocks == 1, 1.0, -1.0)[..., None]
    offsets, trace, n = switch_aligned((nm - nm.mean(axis=(0, 1))) * sign, flips)
    for k in range(nm.shape[-1]):
        axes[0].plot(offsets, trace[:, k], label=f"n_{k + 1}")
    axes[0].axvline(0, color="0.6", lw=0.8)
    axes[0].set_xlabel("trials since block switch")
    axes[0].set_ylabel("NM (centred, signed by new block)")
    axes[0].set_title(f"NM around switches ({n})")
    axes[0].legend(fontsize=7, frameon=False)
    offsets, p, n = choice_after_switch(actions, blocks, flips)
    axes[1].plot(offsets, p, "k.-")
    axes[1].axvline(0, color="0.6", lw=0.8)
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("trials since block switch")
    axes[1].set_ylabel("P(choose the new better arm)")
    axes[1].set_title("behaviour around switches")
    paths.append(save(fig, out / "switches.png"))

    fig, axes = plt.subplots(1, nm.shape[-1], figsize=(3 * nm.shape[-1], 2.8), squeeze=False)
    for k in range(nm.shape[-1]):
        axes[0, k].plot(rpe[:, :-1].ravel(), nm_fit[:, 1:, k].ravel(), ".", ms=1, alpha=0.3)
        axes[0, k].set_xlabel("fitted RPE of the trial")
        axes[0, k].set_title(f"n_{k + 1} after the reward")
    paths.append(save(fig, out / "rpe_codes.png"))
    return [str(p.relative_to(out)) for p in paths]
