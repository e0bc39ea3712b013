"""Reinforcement-learning runs through run directories: a RunSpec names its objective (the
bandit task with A2C or PPO), ``nmrnn train --objective`` trains one agent, resumes it bit for bit
and writes its metrics; bad names, options and task/objective pairs are refused before anything is
written; specs saved before the objective fields existed still load and count as finished."""

import json

import numpy as np
import pytest
from train_helpers import leaves_equal

from nmrnn.cli import main
from nmrnn.rl import A2C, PPO, evaluate_agent
from nmrnn.train import TrainConfig, fit
from nmrnn.train.checkpoint import read_arrays
from nmrnn.train.run import RunSpec, ensure_run, evaluate_run, finished_metrics, load_run

CFG = TrainConfig(steps=20, lr=1e-2, optimizer="adam", clip=0.5, batch_size=4, steps_per_call=10,
                  checkpoint_every=10, activity_l2=0.5)


def _spec(objective="a2c", options=None, seed=3):
    return RunSpec("vanilla", 6, "bandit", CFG, seed, {"tau": 1.0, "sigma_rec": 0.05}, {"episode_length": 12},
                   objective=objective, objective_options={"entropy_coef": 0.1} if options is None else options)


def test_a_spec_with_an_objective_round_trips_and_builds_it():
    spec = _spec(options={"entropy_coef": 1, "gamma": 0.9})
    assert spec.objective_options == {"entropy_coef": 1.0, "gamma": 0.9}
    assert isinstance(spec.objective_options["entropy_coef"], float)  # typed like --model-opt
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict() == spec.to_dict()
    _, task = spec.build()
    objective, config = spec.training(task)
    assert isinstance(objective, A2C) and objective.n_steps == 12 and [t.name for t in objective.terms] == ["activity_l2"]
    assert float(objective.weights[0]) == 0.5 and config.activity_l2 == 0.0  # the term moved into the objective
    assert config == TrainConfig(**{**CFG.to_dict(), "activity_l2": 0.0, "stages": None})
    ppo, _ = _spec("ppo", {"epochs": 2, "minibatches": 2}).training(task)
    assert isinstance(ppo, PPO) and ppo.epochs == 2
    supervised = RunSpec("vanilla", 6, "flipflop", CFG)
    assert supervised.objective is None and supervised.training(supervised.build()[1]) == (None, CFG)


def test_a_run_trains_the_agent_that_fit_trains_and_evaluates_it_by_playing(tmp_path):
    spec = _spec()
    outcome = ensure_run(tmp_path / "r", spec)
    model, task = spec.build()
    objective, config = spec.training(task)
    expected = fit(model, task, config, key=spec.train_key(), objective=objective)
    assert leaves_equal(outcome.model, expected.model)
    np.testing.assert_array_equal(outcome.losses, expected.losses)
    assert outcome.metrics["test"] == evaluate_agent(expected.model, task, spec.eval_key(), n_envs=64)
    assert "reward_rate" in (tmp_path / "r" / "curve.csv").read_text().splitlines()[0]
    assert evaluate_run(tmp_path / "r")["test"] == outcome.metrics["test"]


@pytest.mark.parametrize("kw, match", [
    ({"objective": "dqn"}, "unknown objective 'dqn'; valid choices: a2c, ppo"),
    ({"objective": None, "options": {}}, "task 'bandit' has no supervised loss: give a training objective (a2c, ppo)"),
    ({"options": {"epochs": 2}}, "unknown option(s) epochs for objective 'a2c'; valid options: critic_coef, entropy_coef"),
    ({"options": {"gamma": "high"}}, "option gamma='high' is not allowed: gamma takes a number"),
    ({"options": {"n_steps": 5}}, "unknown option(s) n_steps"),
])
def test_bad_objectives_are_refused_by_the_spec(kw, match):
    objective = kw.pop("objective", "a2c")
    with pytest.raises(ValueError) as err:
        _spec(objective, kw.get("options"))
    assert match in str(err.value)
    with pytest.raises(ValueError, match="objective 'a2c' does not apply to task 'flipflop'.*trains on: bandit"):
        RunSpec("vanilla", 6, "flipflop", CFG, objective="a2c")
    with pytest.raises(ValueError, match="given without an objective"):
        RunSpec("vanilla", 6, "flipflop", CFG, objective_options={"gamma": 0.9})


def test_a_run_written_before_the_objective_fields_still_loads_and_counts_as_finished(tmp_path):
    spec = RunSpec("vanilla", 6, "flipflop", TrainConfig(steps=10, batch_size=4, steps_per_call=10))
    ensure_run(tmp_path / "old", spec)
    cfg = tmp_path / "old" / "config.json"
    saved = json.loads(cfg.read_text())
    del saved["objective"], saved["objective_options"]  # as an earlier version wrote it
    cfg.write_text(json.dumps(saved))
    assert finished_metrics(tmp_path / "old", spec) is not None
    assert load_run(tmp_path / "old")[0] == spec
    assert ensure_run(tmp_path / "old", spec).spec == spec  # reused, not trained again


BASE = ["train", "--model", "vanilla", "--hidden", "6", "--task", "bandit", "--task-opt", "episode_length=12",
        "--objective", "a2c", "--objective-opt", "entropy_coef=0.3", "--model-opt", "sigma_rec=0.05",
        "--steps", "30", "--steps-per-call", "10", "--checkpoint-every", "10", "--batch-size", "4",
        "--optimizer", "adam", "--activity-l2", "0.5", "--no-progress"]


def test_the_command_line_trains_an_agent_and_resumes_it_bit_identically(tmp_path, capsys, monkeypatch):
    assert main([*BASE, "--out", str(tmp_path / "whole")]) == 0
    printed = capsys.readouterr().out
    assert "on bandit with a2c for 30 steps" in printed and "reward_rate=" in printed
    saved = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert saved["objective"] == "a2c" and saved["objective_options"] == {"entropy_coef": 0.3}
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"reward_rate", "p_best", "oracle_reward_rate"}

    import nmrnn.train.run as run_module

    def interrupted_fit(*args, **kwargs):
        def stop(step, losses):
            if step == 20:
                raise KeyboardInterrupt

        return fit(*args, **{**kwargs, "callback": stop})

    monkeypatch.setattr(run_module, "fit", interrupted_fit)
    assert main([*BASE, "--out", str(tmp_path / "cut")]) == 130
    assert not (tmp_path / "cut" / "metrics.json").exists()
    assert int(read_arrays(tmp_path / "cut" / "checkpoint.npz")["array/step"]) == 20
    monkeypatch.setattr(run_module, "fit", fit)
    assert main([*BASE, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    a, b = read_arrays(tmp_path / "whole" / "checkpoint.npz"), read_arrays(tmp_path / "cut" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "whole" / "curve.csv").read_text() == (tmp_path / "cut" / "curve.csv").read_text()
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["test"] == metrics["test"]


@pytest.mark.parametrize("extra, msg", [
    (["--objective", "dqn"], "unknown objective 'dqn'; valid choices: a2c, ppo"),
    (["--objective-opt", "epochs=2"], "unknown option(s) epochs for objective 'a2c'; valid options"),
    (["--objective-opt", "entropy_coef=lots"], "option entropy_coef='lots' is not allowed: entropy_coef takes a number"),
    (["--objective-opt", "gamma=1.5"], "gamma must lie in (0, 1]"),
    (["--task", "flipflop", "--task-opt", "n_bits=2"], "objective 'a2c' does not apply to task 'flipflop'"),
    (["--objective", "none"], "unknown objective 'none'"),
])
def test_bad_objectives_on_the_command_line_exit_2_before_anything_is_written(extra, msg, tmp_path, capsys):
    argv = BASE if "--task" not in extra else [a for a in BASE if a not in ("--task-opt", "episode_length=12")]
    assert main([*argv, *extra, "--out", str(tmp_path / "X")]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "X").exists()


def test_an_environment_task_without_an_objective_exits_2(tmp_path, capsys):
    argv = [a for a in BASE if a not in ("--objective", "a2c", "--objective-opt", "entropy_coef=0.3")]
    assert main([*argv, "--out", str(tmp_path / "X")]) == 2
    assert "task 'bandit' has no supervised loss: give a training objective (a2c, ppo)" in capsys.readouterr().err
    assert not (tmp_path / "X").exists()


def test_agents_of_several_seeds_train_as_one_vmapped_ensemble(tmp_path):
    """``train_runs`` hands each run's objective to the ensemble: two seeds trained as one vmapped
    program equal the same runs trained one at a time (to float tolerance)."""
    from nmrnn.train.run import train_runs

    specs = [_spec(seed=s) for s in (1, 2)]
    ensemble = train_runs([tmp_path / "e1", tmp_path / "e2"], specs, vmap=True)
    for spec, result, name in zip(specs, ensemble, ("s1", "s2"), strict=True):
        alone = ensure_run(tmp_path / name, spec)
        np.testing.assert_allclose(result.losses, alone.losses, rtol=1e-4, atol=1e-6)
        assert json.loads((tmp_path / f"e{spec.seed}" / "config.json").read_text())["objective"] == "a2c"
    assert not np.allclose(ensemble[0].losses, ensemble[1].losses)  # the seeds differ
