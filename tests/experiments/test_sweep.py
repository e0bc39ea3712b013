"""Hyperparameter sweeps on Optuna: a sweep completes and writes its results, resumes after a
SIGKILL without losing or repeating finished trials, shares one journal study between worker
processes, fails a diverging trial and goes on, and refuses bad specs before writing anything."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from experiment_helpers import subprocess_env

from nmrnn.cli import main
from nmrnn.experiments.sweep import SweepSpec, claimed, load_spec, run_sweep

optuna = pytest.importorskip("optuna")

BASE = {
    "model": "vanilla",
    "task": "mwg",
    "n_hidden": 6,
    "metric": "extrapolated/loss",
    "direction": "minimize",
    "n_trials": 4,
    "study_seed": 3,
    "train": {"steps": 20, "fixed_batch": True, "steps_per_call": 10, "checkpoint_every": 10},
    "params": {
        "train.lr": {"kind": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "train.weight_decay": {"kind": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
}

TOML = """
model = "vanilla"
task = "mwg"
n_hidden = 6
metric = "extrapolated/loss"
n_trials = {n_trials}
study_seed = 5

[train]
steps = {steps}
fixed_batch = true
steps_per_call = 10
checkpoint_every = 10

[params."train.lr"]
kind = "float"
low = 1e-3
high = 1e-1
log = true
"""


def _study(out: Path):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name=out.resolve().name, storage=storage)


def _complete_origins(trials):
    return [t.user_attrs["origin"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_sweep_completes_and_writes_results(tmp_path, capsys):
    spec = SweepSpec.from_dict(BASE)
    out = tmp_path / "sw"
    summary = run_sweep(spec, out, log=None)
    assert summary["counts"] == {"COMPLETE": 4}
    trials = _study(out).trials
    assert sorted(_complete_origins(trials)) == [0, 1, 2, 3]
    for t in trials:  # every seed is an ordinary run directory, its value the run's metric
        metrics = json.loads((out / "trials" / f"{t.number}_seed0" / "metrics.json").read_text())
        assert t.value == pytest.approx(metrics["extrapolated"]["loss"])
        assert (out / "trials" / f"{t.number}_seed0" / "checkpoint.npz").exists()
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"]
    assert {"state", "value", "seconds", "train.lr", "train.weight_decay"} <= set(rows[0])
    best = min(trials, key=lambda t: t.value)
    assert summary["best"][0]["number"] == best.number
    assert f"| 1 | {best.number} |" in (out / "best.md").read_text()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["counts"] == {"COMPLETE": 4} and on_disk["spec"] == spec.to_dict()
    assert "figures/optimization_history.png" in summary["figures"]
    assert "figures/parallel_coordinate.png" in summary["figures"]
    for f in summary["figures"]:
        assert (out / f).stat().st_size > 0
    assert len(summary["figures"]) + len(summary["figure_notes"]) == 3

    # run again: nothing is trained, nothing is repeated; asking for more extends the study
    again = run_sweep(spec, out, n_trials=5, figures=False, log=None)
    assert again["counts"] == {"COMPLETE": 5}
    assert [t.value for t in _study(out).trials][:4] == [t.value for t in trials]

    # a different spec on the same folder, or joining the study with it, is refused
    other = SweepSpec.from_dict({**BASE, "metric": "trained/loss"})
    with pytest.raises(ValueError, match=r"different spec: metric: 'extrapolated/loss' \(saved\) vs 'trained/loss'"):
        run_sweep(other, out, log=None)
    from nmrnn.experiments.sweep import work

    with pytest.raises(ValueError, match="different spec"):
        work(other, out, log=None)


def test_diverging_trial_is_failed_and_the_sweep_goes_on(tmp_path):
    from nmrnn.experiments.sweep import default_storage, open_study

    spec = SweepSpec.from_dict({**BASE, "n_trials": 3,
                                "params": {"train.lr": {"kind": "float", "low": 1e-3, "high": 1e30, "log": True}}})
    out = tmp_path / "nan"
    study = open_study(spec, default_storage(out), "nan")
    study.enqueue_trial({"train.lr": 1e30})  # the first trial diverges, deterministically
    study.enqueue_trial({"train.lr": 1e-2})
    summary = run_sweep(spec, out, figures=False, log=None)
    states = [r["state"] for r in summary["trials"]]
    assert states[:2] == ["FAIL", "COMPLETE"] and len(states) == 3
    assert "step" in summary["trials"][0]["error"]  # the divergence's message, naming the step
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows][:2] == ["FAIL", "COMPLETE"]
    assert not (out / "trials" / "0_seed0" / "metrics.json").exists()


def test_same_spec_same_trials(tmp_path):
    spec = SweepSpec.from_dict({**BASE, "n_trials": 2, "seeds_per_trial": 2})
    a = run_sweep(spec, tmp_path / "a", figures=False, log=None)["trials"]
    b = run_sweep(spec, tmp_path / "b", figures=False, log=None)["trials"]
    assert [(r["params"], r["value"], r["per_seed"]) for r in a] == [(r["params"], r["value"], r["per_seed"]) for r in b]
    assert a[0]["value"] == pytest.approx(sum(a[0]["per_seed"]) / 2)
    assert a[0]["per_seed"][0] != a[0]["per_seed"][1]  # two seeds, two runs
    seeds = [json.loads((tmp_path / "a" / "trials" / f"{n}_seed{k}" / "config.json").read_text())["seed"]
             for n in (0, 1) for k in (0, 1)]
    assert len(set(seeds)) == 4 and seeds[:2] == spec.trial_seeds(0)


def test_killed_sweep_resumes_without_losing_or_repeating_trials(tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=4, steps=400))
    out = tmp_path / "kill"
    proc = subprocess.Popen([sys.executable, "-m", "nmrnn.cli", "sweep", str(spec_file), "--out", str(out),
                             "--no-figures", "--no-progress"], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                trials = _study(out).trials if (out / "study.journal").exists() else []
            except KeyError:  # the journal exists, the study not yet
                trials = []
            if trials:
                done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
                running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and "seeds" in t.user_attrs]
                if done and running:  # kill while it trains (not while it writes the journal)
                    time.sleep(0.2)
                    first = {t.number: t.value for t in _study(out).trials
                             if t.state == optuna.trial.TrialState.COMPLETE}
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert first is not None, proc.stderr.read().decode()[-2000:]

    summary = run_sweep(load_spec(spec_file), out, figures=False, log=None)
    trials = _study(out).trials
    origins = _complete_origins(trials)
    assert len(origins) == len(set(origins)) == 4  # the count is met, no trial is repeated
    assert {t.number: t.value for t in trials if t.number in first} == first  # finished trials are kept
    lost = [t for t in trials if t.user_attrs.get("lost")]
    assert lost and all(t.state == optuna.trial.TrialState.FAIL for t in lost)
    for t in lost:  # retried under its own number: same run directories, resumed
        retry = [r for r in trials if r.user_attrs["origin"] == t.number and r.number != t.number]
        assert len(retry) == 1 and retry[0].params == t.params
    assert len(claimed(trials)) == 4
    assert summary["counts"]["COMPLETE"] == 4


def test_two_workers_share_one_journal_study(tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=4, steps=20))
    out = tmp_path / "two"
    assert main(["sweep", str(spec_file), "--out", str(out), "--workers", "2", "--no-figures", "--no-progress"]) == 0
    trials = _study(out).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 4  # the count exactly, no duplicates
    assert sorted(_complete_origins(trials)) == [0, 1, 2, 3]
    assert all(t.user_attrs["pid"] != os.getpid() for t in trials)  # trained by the workers
    assert len({t.params["train.lr"] for t in trials}) == 4


def test_trial_count_is_exact_when_the_count_is_out_of_date(tmp_path, monkeypatch):
    # on a database another worker may ask between this worker's count and its ask: stand for
    # that with a count that never sees a trial; the trials asked past the count are surplus
    from nmrnn.experiments import sweep

    spec = SweepSpec.from_dict({**BASE, "n_trials": 2})
    out = tmp_path / "stale"
    with monkeypatch.context() as m:
        m.setattr(sweep, "claimed", lambda trials: {})
        assert sweep.work(spec, out, log=None) == 2
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert trials[2].user_attrs["surplus"] is True and not trials[2].params
    assert not (out / "trials" / "2_seed0").exists()
    assert sorted(claimed(trials)) == [0, 1]
    summary = run_sweep(spec, out, figures=False, log=None)  # nothing more is trained
    assert summary["counts"] == {"COMPLETE": 2} and summary["surplus"] == 1
    assert [r["number"] for r in summary["trials"]] == [0, 1]
    assert [r["number"] for r in csv.DictReader((out / "trials.csv").open())] == ["0", "1"]
    assert len(_study(out).trials) == 3


def test_a_retry_of_a_taken_origin_is_surplus(tmp_path):
    # a lost trial reaped by two workers at once is enqueued twice: the second retry does not run
    # while the first runs, nor once its origin completed
    import socket

    from nmrnn.experiments.sweep import default_storage, open_study, work

    spec = SweepSpec.from_dict({**BASE, "n_trials": 1})
    out = tmp_path / "dup"
    study = open_study(spec, default_storage(out), out.name)
    lost = study.ask()
    lost.set_user_attr("lost", True)
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    params = {"train.lr": 1e-2, "train.weight_decay": 1e-4}
    study.enqueue_trial(params, user_attrs={"origin": 0})
    study.enqueue_trial(params, user_attrs={"origin": 0})
    first = study.ask()  # the first retry, running in this (live) process
    first.set_user_attr("pid", os.getpid())
    first.set_user_attr("host", socket.gethostname())
    assert work(spec, out, log=None) == 0  # the second retry is taken and dropped
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "FAIL"]
    assert trials[2].user_attrs["surplus"] is True and trials[2].user_attrs["origin"] == 0
    assert [t.number for t in claimed(trials).values()] == [1]

    study.tell(first, 0.5)  # the origin completes; a retry enqueued after that is dropped too
    study.enqueue_trial(params, user_attrs={"origin": 0})
    assert work(spec, out, log=None) == 0
    trials = _study(out).trials
    assert trials[3].state.name == "FAIL" and trials[3].user_attrs["surplus"] is True
    assert {o: t.number for o, t in claimed(trials).items()} == {0: 1}
    assert not (out / "trials").exists()


@pytest.mark.parametrize(
    "change, msg",
    [
        ({"params": {"train.lr": {"kind": "float", "low": 0.1, "high": 0.01}}}, "empty range low=0.1 >= high=0.01"),
        ({"params": {"train.lr": {"kind": "float", "low": 0.1, "high": 0.1}}}, "empty range"),
        ({"params": {"train.lr": {"kind": "float", "low": 0.0, "high": 0.1, "log": True}}}, "log range needs low > 0"),
        ({"params": {"train.lr": {"kind": "float", "low": -1.0, "high": 0.1}}}, "lr must be a positive number"),
        ({"params": {"train.colour": {"kind": "float", "low": 0.0, "high": 1.0}}}, "unknown training field 'colour'"),
        ({"params": {"model.rank": {"kind": "int", "low": 1, "high": 3}}}, "model 'vanilla' has no option 'rank'"),
        ({"params": {"model.tau": {"kind": "float", "low": -1.0, "high": 3.0}}}, "tau must be a positive number"),
        ({"params": {"task.nope": {"kind": "int", "low": 1, "high": 3}}}, "task 'mwg' has no option 'nope'"),
        ({"params": {"wiring": {"kind": "float", "low": 0.0, "high": 1.0}}}, "unknown parameter target 'wiring'"),
        ({"params": {"train.steps": {"kind": "float", "low": 10, "high": 20}}}, 'use kind = "int"'),
        ({"params": {"n_hidden": {"kind": "int", "low": 0, "high": 4}}}, "n_hidden must be a positive integer"),
        ({"params": {"train.lr": {"kind": "categorical", "choices": []}}}, "choices must be a non-empty list"),
        ({"params": {"train.lr": {"kind": "normal", "low": 0, "high": 1}}}, "unknown kind 'normal'"),
        ({"params": {}}, "params is empty"),
        ({"sampler": "NopeSampler"}, "unknown sampler 'NopeSampler'; valid samplers: "),
        ({"direction": "down"}, "unknown direction 'down'; valid directions: minimize, maximize"),
        ({"n_trials": 0}, "n_trials must be a positive integer, got 0"),
        ({"seeds_per_trial": 0}, "seeds_per_trial must be a positive integer"),
        ({"metric": "extrapolated/nope"}, "unknown metric 'extrapolated/nope'; extrapolated has: extrapolated/loss"),
        ({"metric": "nope/loss"}, "unknown metric 'nope/loss'; valid metrics: trained/<metric>"),
        ({"model": "nope"}, "unknown model 'nope'"),
        ({"colour": 3}, "unknown sweep field(s) colour"),
    ],
)
def test_bad_specs_are_refused_before_anything_is_written(change, msg, tmp_path, capsys):
    with pytest.raises(ValueError) as err:
        SweepSpec.from_dict({**BASE, **change})
    assert msg in str(err.value)
    assert "\n" not in str(err.value)
    # the same through the command line: exit 2, one line, no folder
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**BASE, **change}))
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "X")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("workers, msg", [("0", "workers must be a positive integer, got 0"),
                                          ("4096", "more than the")])
def test_bad_worker_counts_are_refused(workers, msg, tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=2, steps=20))
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "X"), "--workers", workers]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "X").exists()


def test_worker_needs_an_out_folder_with_a_spec_file(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=2, steps=20))
    assert main(["worker", "--spec", str(spec_file)]) == 2
    assert "give --out DIR" in capsys.readouterr().err


@pytest.mark.parametrize("sub", ["sweep", "worker"])
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    assert "usage: nmrnn" in capsys.readouterr().out


def test_toml_example_loads_and_seeds_are_deterministic():
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "sweep_mwg.toml")
    assert spec.metric == "extrapolated/loss" and {p.target for p in spec.params} == {
        "train.lr", "train.weight_decay", "model.tau"}
    assert spec.trial_seeds(3) == spec.trial_seeds(3) and spec.trial_seeds(3) != spec.trial_seeds(4)
    assert SweepSpec.from_dict(spec.to_dict()) == spec
