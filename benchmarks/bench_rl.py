"""Environment steps per second of A2C on the block-switching bandit: the library's compiled
program (environment, rollout and update in one ``lax.scan`` over updates, through ``fit``)
against the usual stack, gymnasium environments stepped from Python with an eager PyTorch agent.

Same agent on both sides: a discrete-time tanh RNN of 64 units (``vanilla``, tau = dt; PyTorch's
``nn.RNNCell``), the two logits and the value read out linearly, 16 environments, 200-step
rollouts (one episode), GAE (gamma 0.95, lambda 0.95), the paper's A2C loss and coefficients,
Adam (lr 7e-4, eps 1e-8) with gradient-norm clipping at 0.5. The PyTorch side's environments are a
NumPy gymnasium environment of the same dynamics in ``gymnasium.vector.SyncVectorEnv`` (what a
PyTorch user would write; wrapping our JAX environment instead would only add dispatch cost).

Both sides are warmed up (compiled) first; then each runs ``--updates`` updates, interleaved over
``--rounds`` rounds. Reported: environment steps per second (median over rounds) and the ratio.

``--breakdown`` prints instead where the library's update spends its time: the CPU time per update
(``time.process_time``, less sensitive to other jobs on the machine than the wall clock) of the
rollout alone, the rollout and the agent's replay (``model.forward``) without derivatives, both
with the replay's backward pass, and the whole A2C update (adding advantages, loss, clipping and
Adam).

Run: ``python benchmarks/bench_rl.py`` (needs ``.[rl,bench]``: gymnasium and PyTorch;
``--no-write`` to print only). Results are appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import jax
import jax.random as jr
import numpy as np
from results_file import publish

from nmrnn.models import make_model
from nmrnn.rl import A2C, PAPER_A2C, BlockBandit, EnvironmentTask
from nmrnn.train import TrainConfig, fit

N_ENVS, N_STEPS, HIDDEN = PAPER_A2C["n_envs"], PAPER_A2C["n_steps"], 64


def ours(updates: int, objective=None):
    env = BlockBandit(episode_length=N_STEPS)
    task = EnvironmentTask(env)
    obj = A2C(env, n_steps=N_STEPS) if objective is None else objective
    config = TrainConfig(steps=updates, lr=PAPER_A2C["lr"], optimizer="adam", clip=PAPER_A2C["max_grad_norm"],
                         batch_size=N_ENVS, steps_per_call=updates)
    model = make_model("vanilla", n_in=env.obs_size, n_out=3, n_hidden=HIDDEN, tau=1.0, key=jr.PRNGKey(0))

    def run():
        res = fit(model, task, config, key=jr.PRNGKey(1), objective=obj)
        jax.block_until_ready(res.model)

    return run


def breakdown(updates: int, rounds: int) -> None:
    """CPU time per update of the parts of the compiled A2C update (see the module docstring)."""
    import equinox as eqx
    import jax.numpy as jnp

    from nmrnn.rl import rollout
    from nmrnn.train.objectives import AbstractObjective

    env = BlockBandit(episode_length=N_STEPS)

    class Part(AbstractObjective):
        upto: str = eqx.field(static=True)

        def __call__(self, model, data, *, key):
            zero = sum(jnp.sum(p) for p in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))) * 0
            ro = rollout(jax.lax.stop_gradient(model), env, data, key, N_STEPS)
            used = jnp.mean(ro.rewards) + 0 * (jnp.sum(ro.obs) + jnp.sum(ro.actions) + jnp.sum(ro.dones))
            if self.upto == "rollout":
                return used + zero, {}
            traj = model.forward(jnp.moveaxis(ro.obs, 0, 1), key=ro.noise_key)
            if self.upto == "replay":
                return used + jnp.mean(jax.lax.stop_gradient(traj.outputs)) + zero, {}
            return used + jnp.mean(traj.outputs**2), {}

    parts = {"rollout (no derivatives)": Part("rollout"), "+ replay (model.forward)": Part("replay"),
             "+ replay's backward pass": Part("backward"), "whole A2C update": A2C(env, n_steps=N_STEPS)}
    runs = {k: ours(updates, v) for k, v in parts.items()}
    for run in runs.values():
        run()
    cpu = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            t0 = time.process_time()
            run()
            cpu[k].append(time.process_time() - t0)
    print(f"CPU time per update ({updates} updates, median of {rounds} rounds; load {os.getloadavg()[0]:.1f}):")
    for k, ts in cpu.items():
        print(f"  {k:28s} {1000 * np.median(ts) / updates:6.2f} ms")


def theirs(updates: int):
    import gymnasium
    import torch
    from gymnasium import spaces

    torch.set_num_threads(os.cpu_count() or 1)

    class NumpyBandit(gymnasium.Env):
        """The same coupled blocks (truncated-exponential lengths 40-80, beta 20, p_high 0.8)."""

        def __init__(self):
            self.action_space = spaces.Discrete(2)
            self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)

        def _length(self):
            return int(min(40 + self.np_random.exponential(20.0), 80))

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t, self.block, self.left = 0, int(self.np_random.random() < 0.5), self._length()
            return np.zeros(3, np.float32), {}

        def step(self, a):
            p = 0.8 if a == self.block else 0.2
            r = float(self.np_random.random() < p)
            self.left -= 1
            if self.left <= 0:
                self.block, self.left = 1 - self.block, self._length()
            self.t += 1
            obs = np.array([a == 0, a == 1, r], np.float32)
            return obs, r, self.t >= N_STEPS, False, {}

    # gymnasium < 1.0 resets a finished environment within the same step; 1.x needs it asked for
    kw = {}
    if hasattr(gymnasium.vector, "AutoresetMode"):
        kw["autoreset_mode"] = gymnasium.vector.AutoresetMode.SAME_STEP
    envs = gymnasium.vector.SyncVectorEnv([NumpyBandit for _ in range(N_ENVS)], **kw)
    cell = torch.nn.RNNCell(3, HIDDEN)
    head = torch.nn.Linear(HIDDEN, 3)
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=PAPER_A2C["lr"], eps=PAPER_A2C["adam_eps"])
    g, lam = PAPER_A2C["gamma"], PAPER_A2C["lam"]

    def update(obs):
        h = torch.zeros(N_ENVS, HIDDEN)
        logps, ents, values, rewards, dones = [], [], [], [], []
        for _ in range(N_STEPS):
            h = cell(torch.as_tensor(obs), h)
            y = head(h)
            dist = torch.distributions.Categorical(logits=y[:, :2])
            a = dist.sample()
            obs, r, term, trunc, _ = envs.step(a.numpy())
            logps.append(dist.log_prob(a))
            ents.append(dist.entropy())
            values.append(y[:, 2])
            rewards.append(torch.as_tensor(r, dtype=torch.float32))
            dones.append(torch.as_tensor(term, dtype=torch.float32))
        v = torch.stack(values)
        with torch.no_grad():
            adv = torch.zeros_like(v)
            acc = torch.zeros(N_ENVS)
            for t in reversed(range(N_STEPS)):
                nv = v[t + 1] if t + 1 < N_STEPS else torch.zeros(N_ENVS)
                nd = 1 - dones[t]
                acc = rewards[t] + g * nd * nv - v[t] + g * lam * nd * acc
                adv[t] = acc
            ret = adv + v
        loss = (-(adv * torch.stack(logps)).mean() + PAPER_A2C["critic_coef"] * ((ret - v) ** 2).mean()
                - PAPER_A2C["entropy_coef"] * torch.stack(ents).mean())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, PAPER_A2C["max_grad_norm"])
        opt.step()
        return obs

    def run():
        obs, _ = envs.reset(seed=0)
        for _ in range(updates):
            obs = update(obs)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=20, help="updates per timed run of each side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="print the CPU time of the update's parts and stop")
    args = ap.parse_args()
    if args.breakdown:
        breakdown(args.updates, args.rounds)
        return
    sides = {"nmrnn (JAX, compiled, fit)": ours(args.updates)}
    try:
        sides["gymnasium + eager PyTorch"] = theirs(args.updates)
    except ImportError as err:
        print(f"skipping the PyTorch side: {err}")
    for run in sides.values():  # compile and warm up
        run()
    times = {k: [] for k in sides}
    for _ in range(args.rounds):
        for k, run in sides.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    steps = args.updates * N_ENVS * N_STEPS
    ref = "gymnasium + eager PyTorch"
    lines = [
        f"## bench_rl.py, {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"A2C on the block-switching bandit, {N_ENVS} environments x {N_STEPS} steps per update, "
        f"{args.updates} updates per run, {args.rounds} rounds; {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, jax {jax.__version__}.",
        "",
        "| implementation | env steps / s (median) | s per update | speed-up |",
        "| --- | --- | --- | --- |",
    ]
    base = np.median(times[ref]) if ref in times else None
    for k, ts in times.items():
        med = float(np.median(ts))
        ratio = f"{base / med:.1f}x" if base else "-"
        lines.append(f"| {k} | {steps / med:,.0f} | {med / args.updates:.4f} | {ratio} |")
    publish("\n".join(lines) + "\n", write=not args.no_write)


if __name__ == "__main__":
    main()
