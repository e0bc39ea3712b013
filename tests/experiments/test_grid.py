"""Grids of fixed runs as Optuna studies: compare with 2 workers equals the serial result, a worker
on another process joins a grid, a worker killed mid-run is retried and resumed, a diverging run
fails the grid after the others, and bad options are refused before anything runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from experiment_helpers import subprocess_env, without_timings

from nmrnn.cli import main
from nmrnn.experiments.compare import parse_model_entry, run_compare
from nmrnn.experiments.grid import GridJob, GridOptions, open_grid_study, run_grid
from nmrnn.train import TrainConfig
from nmrnn.train.loop import NonFiniteLossError
from nmrnn.train.run import RunSpec

optuna = pytest.importorskip("optuna")

MODELS = [parse_model_entry("vanilla:8"), parse_model_entry("lowrank:8:rank=2")]


def _cfg(steps=30, lr=1e-2):
    return TrainConfig(steps=steps, lr=lr, fixed_batch=True, steps_per_call=10, checkpoint_every=10)


def _jobs(n=3, steps=30, lr=1e-2):
    return [GridJob(f"runs/v_seed{s}", RunSpec("vanilla", 6, "mwg", _cfg(steps, lr), s), "v") for s in range(n)]


def _study(out: Path, name: str):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "grid.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_compare_with_two_workers_equals_the_serial_result(tmp_path):
    kw = dict(models=MODELS, seeds=2, steps=30, profile="smoke", figures=False, log=None)
    serial = run_compare("mwg", out_dir=tmp_path / "serial", **kw)
    parallel = run_compare("mwg", out_dir=tmp_path / "parallel", workers=2, force=True, **kw)
    assert without_timings(serial["models"]) == without_timings(parallel["models"])
    assert serial["table"] == parallel["table"]
    trials = _study(tmp_path / "parallel", "parallel").get_trials()
    assert sorted(t.user_attrs["run_dir"] for t in trials) == sorted(
        f"runs/{m}_seed{s}" for m in ("vanilla-8", "lowrank-8-rank-2") for s in range(2))
    assert {t.user_attrs["pid"] for t in trials} != {os.getpid()}  # trained by the worker processes
    # a second call trains nothing: every run directory is finished
    again = run_compare("mwg", out_dir=tmp_path / "parallel", workers=2, force=True, **kw)
    assert without_timings(again["models"]) == without_timings(parallel["models"])
    assert len(_study(tmp_path / "parallel", "parallel").get_trials()) == len(trials)


def test_a_worker_joins_a_grid_from_its_storage(tmp_path):
    out = tmp_path / "g"
    jobs = _jobs(2)
    out.mkdir()
    study, _ = open_grid_study(jobs, str(out / "grid.journal"), "shared")
    for j in jobs:
        study.enqueue_trial({}, user_attrs={"run_dir": j.run_dir, "group": j.group})
    r = subprocess.run([sys.executable, "-m", "nmrnn.cli", "worker", "--storage", str(out / "grid.journal"),
                        "--study", "shared", "--no-progress"], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "finished 2 run(s)" in r.stdout
    lines = []
    run_grid(jobs, out, study_name="shared", log=lines.append)
    assert not any("training" in line for line in lines)  # nothing left to train here
    assert all((out / j.run_dir / "metrics.json").exists() for j in jobs)


def test_a_killed_worker_is_retried_and_its_run_resumes(tmp_path):
    out = tmp_path / "kill"
    jobs = _jobs(2, steps=600)
    out.mkdir()
    storage = str(out / "grid.journal")
    study, _ = open_grid_study(jobs, storage, "k")
    for j in jobs:
        study.enqueue_trial({}, user_attrs={"run_dir": j.run_dir, "group": j.group})
    proc = subprocess.Popen([sys.executable, "-m", "nmrnn.cli", "worker", "--storage", storage, "--study", "k",
                             "--no-progress"], env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / jobs[0].run_dir / "checkpoint.npz"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ckpt.exists():
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:]
    before = _study(out, "k").get_trials()
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in before)  # left running by the kill

    metrics = run_grid(jobs, out, study_name="k", log=None)
    assert len(metrics) == 2 and all(m is not None for m in metrics)
    trials = _study(out, "k").get_trials()
    lost = [t for t in trials if t.user_attrs.get("lost")]
    assert lost and all(t.state == optuna.trial.TrialState.FAIL for t in lost)
    complete = [t.user_attrs["run_dir"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(complete) == sorted(j.run_dir for j in jobs)  # each run once
    curve = (out / jobs[0].run_dir / "curve.csv").read_text().splitlines()
    assert len(curve) == 1 + 600  # resumed: one row per step, none repeated


def test_a_diverging_run_fails_the_grid_after_the_others(tmp_path):
    jobs = [GridJob("runs/bad", RunSpec("vanilla", 6, "mwg", _cfg(30, 1e30), 0)), *_jobs(1)]
    with pytest.raises(NonFiniteLossError, match="runs/bad"):
        run_grid(jobs, tmp_path / "nan", log=None)
    assert (tmp_path / "nan" / jobs[1].run_dir / "metrics.json").exists()  # the other run finished
    trials = _study(tmp_path / "nan", "nan").get_trials()
    bad = [t for t in trials if t.user_attrs["run_dir"] == "runs/bad"]
    assert bad[-1].state == optuna.trial.TrialState.FAIL and "step" in bad[-1].user_attrs["error"]


def test_seeds_of_a_group_train_as_one_ensemble(tmp_path):
    lines = []
    metrics = run_grid(_jobs(3), tmp_path / "ens", ensemble=True, log=lines.append)
    assert any("3 runs as one ensemble" in line for line in lines)
    serial = run_grid(_jobs(3), tmp_path / "seq", ensemble=False, log=None)
    for a, b in zip(metrics, serial, strict=True):
        assert a["trained"]["loss"] == pytest.approx(b["trained"]["loss"], rel=1e-3)


def test_a_changed_grid_replaces_a_finished_one_but_not_a_live_one(tmp_path):
    out = tmp_path / "chg"
    run_grid(_jobs(1), out, log=None)
    metrics = run_grid(_jobs(2), out, log=None)  # one more seed: the first is reused
    assert len(metrics) == 2
    study = _study(out, "chg")
    study.enqueue_trial({}, user_attrs={"run_dir": "runs/v_seed0", "group": "v"})
    with pytest.raises(ValueError, match="waiting or under way"):
        open_grid_study(_jobs(3), str(out / "grid.journal"), "chg")


def test_a_sweep_study_is_not_taken_for_a_grid(tmp_path):
    from nmrnn.experiments.sweep import SweepSpec, default_storage, open_study

    spec = SweepSpec.from_dict({"model": "vanilla", "task": "mwg", "n_hidden": 6, "metric": "trained/loss",
                                "train": {"steps": 10}, "params": {"train.lr": {"kind": "float", "low": 1e-3, "high": 1e-1}}})
    open_study(spec, default_storage(tmp_path), "s")
    with pytest.raises(ValueError, match="not a grid"):
        open_grid_study(_jobs(1), default_storage(tmp_path), "s")


@pytest.mark.parametrize("argv,msg", [
    (["compare", "--workers", "0"], "workers must be a positive integer"),
    (["compare", "--workers", "999"], "more than the"),
    (["reproduce", "r1", "--workers", "-1"], "workers must be a positive integer"),
    (["worker", "--storage", "x.journal"], "needs --spec"),
    (["worker", "--storage", "x.journal", "--study", "s", "--cpu", "9999"], "usable CPUs"),
    (["compare", "--workers", "2", "--in-process"], "needs workers=1"),
])
def test_bad_grid_options_are_refused_before_anything_runs(argv, msg, tmp_path, capsys):
    code = main([*argv, "--out", str(tmp_path / "o")] if argv[0] != "worker" else argv)
    err = capsys.readouterr().err
    assert code == 2 and msg in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_grid_options_and_jobs_are_checked():
    with pytest.raises(ValueError, match="workers"):
        GridOptions(workers=0)
    with pytest.raises(ValueError, match="storage"):
        GridOptions(storage="")
    assert GridOptions(study_name="s").part("mwg").study_name == "s-mwg"
    with pytest.raises(ValueError, match="share run directories"):
        run_grid([*_jobs(1), *_jobs(1)], "/tmp/never", log=None)
    with pytest.raises(ValueError, match="relative path"):
        run_grid([GridJob("../x", _jobs(1)[0].spec)], "/tmp/never", log=None)
    assert not Path("/tmp/never").exists()


def test_reproduce_passes_its_workers_to_the_grid(tmp_path):
    from nmrnn.experiments.registry import run_reproduction

    out = tmp_path / "r3"
    summary = run_reproduction("eft", out, profile="smoke", grid=GridOptions(workers=2, force=True))
    assert summary["status"] != "failed", summary.get("error")
    # R3's smoke grid: one configuration of each of the four classes, one seed
    trials = _study(out / "comparison", "comparison").get_trials()
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials}
