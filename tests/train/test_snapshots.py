"""Snapshots of a run over training (``TrainConfig.keep_every``): the models kept are the models a
shorter run reaches, a resumed run keeps the same ones, and they load back through the run
directory."""

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest
from train_helpers import interrupt_and_resume, leaves_equal, small_nmrnn

from nmrnn.tasks import MeasureWaitGo
from nmrnn.train import TrainConfig, fit
from nmrnn.train.checkpoint import load_checkpoint
from nmrnn.train.loop import SNAPSHOTS, snapshot_path
from nmrnn.train.run import RunSpec, ensure_run, load_run, load_snapshots

TASK = MeasureWaitGo()
KEY = jr.PRNGKey(3)


def _config(steps=60, keep_every=20):
    return TrainConfig(steps=steps, lr=1e-2, batch_size=8, steps_per_call=10, checkpoint_every=30, keep_every=keep_every)


def _steps(run_dir):
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / SNAPSHOTS).glob("step-*.npz"))


def test_snapshots_are_the_models_of_shorter_runs(tmp_path):
    result = fit(small_nmrnn(), TASK, _config(), key=KEY, run_dir=tmp_path / "run")
    assert _steps(tmp_path / "run") == [0, 20, 40, 60]
    skeleton = eqx.filter(small_nmrnn(), eqx.is_array)
    kept = {s: eqx.combine(load_checkpoint(snapshot_path(tmp_path / "run", s), {"model": skeleton})[0]["model"], small_nmrnn())
            for s in (0, 20, 40, 60)}
    assert leaves_equal(kept[0], small_nmrnn())
    assert leaves_equal(kept[60], result.model)
    shorter = fit(small_nmrnn(), TASK, _config(steps=40, keep_every=None), key=KEY)
    assert leaves_equal(kept[40], shorter.model)
    assert not leaves_equal(kept[20], kept[40])


def test_a_resumed_run_keeps_the_same_snapshots(tmp_path):
    fit(small_nmrnn(), TASK, _config(), key=KEY, run_dir=tmp_path / "whole")
    # stopped after step 50: the checkpoint is at 30, the snapshot of 40 was kept before the stop
    interrupt_and_resume(TASK, _config(), KEY, tmp_path / "resumed", stop_at=50)
    assert _steps(tmp_path / "resumed") == _steps(tmp_path / "whole")
    for s in _steps(tmp_path / "whole"):
        a = np.load(snapshot_path(tmp_path / "whole", s))
        b = np.load(snapshot_path(tmp_path / "resumed", s))
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_snapshots_load_through_the_run_directory(tmp_path):
    spec = RunSpec("vanilla", 6, "mwg", TrainConfig(steps=30, batch_size=4, steps_per_call=10, keep_every=10), seed=2)
    ensure_run(tmp_path / "r", spec)
    snaps = load_snapshots(tmp_path / "r")
    assert [s for s, _ in snaps] == [0, 10, 20, 30]
    assert leaves_equal(snaps[0][1], spec.build()[0])
    assert leaves_equal(snaps[-1][1], load_run(tmp_path / "r")[1])
    (tmp_path / "r" / SNAPSHOTS / "step-00000010.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="step-00000010"):
        load_snapshots(tmp_path / "r")


def test_keep_every_must_be_a_positive_integer():
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="keep_every"):
            TrainConfig(keep_every=bad)
    assert TrainConfig(keep_every=10).compiled_form() == TrainConfig().compiled_form()
