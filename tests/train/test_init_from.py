"""Runs that start from another run's final model (``RunSpec.init_from``, ``nmrnn train
--init-from``), and run directories written before a spec field existed."""

import json

import pytest
from train_helpers import leaves_equal

from nmrnn.cli import main
from nmrnn.train import Stage, TrainConfig, fit
from nmrnn.train.run import RunSpec, ensure_run, load_run


def _spec(task="mwg", steps=20, init_from=None, stages=None, **kw):
    cfg = TrainConfig(steps=steps, batch_size=4, steps_per_call=10, stages=stages)
    return RunSpec("vanilla", 6, task, cfg, seed=3, model_options={"tau": 5.0}, init_from=init_from, **kw)


def test_a_run_starts_from_the_final_model_of_another(tmp_path):
    ensure_run(tmp_path / "first", _spec())
    second_spec = _spec(stages=(Stage(10, "readout"),), init_from="../first", task_options={"delay": 10})
    ensure_run(tmp_path / "second", second_spec)
    _, start, _ = load_run(tmp_path / "first")
    _, end, task = load_run(tmp_path / "second")
    expected = fit(start, task, second_spec.train, key=second_spec.train_key()).model
    assert leaves_equal(end, expected)
    assert leaves_equal(end.W, start.W) and not leaves_equal(end.C, start.C)  # only the readout moved


def test_init_from_must_name_a_finished_run_of_the_same_model(tmp_path):
    with pytest.raises(ValueError, match="not a finished run directory"):
        ensure_run(tmp_path / "b", _spec(init_from="../nowhere"))
    assert not (tmp_path / "b").exists()
    ensure_run(tmp_path / "a", _spec())
    other = RunSpec("vanilla", 7, "mwg", TrainConfig(steps=10, batch_size=4), init_from="../a")
    with pytest.raises(ValueError, match="not this run's vanilla"):
        ensure_run(tmp_path / "c", other)
    assert not (tmp_path / "c").exists()
    with pytest.raises(ValueError, match="do not have this run's shapes"):
        ensure_run(tmp_path / "d", _spec(task="flipflop", init_from="../a"))  # 3 outputs, not 1
    with pytest.raises(ValueError, match="init_from"):
        _spec(init_from="")


def test_a_run_written_before_new_spec_fields_resumes_and_counts_as_finished(tmp_path):
    spec = _spec()
    ensure_run(tmp_path / "old", spec)
    cfg = tmp_path / "old" / "config.json"
    saved = json.loads(cfg.read_text())
    del saved["init_from"], saved["train"]["keep_every"]  # as an earlier version wrote it
    cfg.write_text(json.dumps(saved))
    from nmrnn.train.run import finished_metrics

    assert finished_metrics(tmp_path / "old", spec) is not None


def test_the_command_line_retrains_from_a_run(tmp_path, capsys):
    base = ["train", "--model", "vanilla", "--hidden", "6", "--no-progress", "--batch-size", "4", "--steps-per-call", "10"]
    assert main([*base, "--task", "mwg", "--steps", "20", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--task", "mwg", "--stages", "readout:10", "--init-from", str(tmp_path / "a"),
                 "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["init_from"] == "../a"
    assert leaves_equal(load_run(tmp_path / "b")[1].W, load_run(tmp_path / "a")[1].W)
    capsys.readouterr()
    assert main([*base, "--task", "mwg", "--steps", "10", "--init-from", str(tmp_path / "zzz"),
                 "--out", str(tmp_path / "c")]) == 2
    assert "not a finished run directory" in capsys.readouterr().err and not (tmp_path / "c").exists()
