import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from train_helpers import interrupt_and_resume, leaves_equal, small_nmrnn

from nmrnn.models import make_model, simulate
from nmrnn.tasks import MeasureWaitGo, make_task
from nmrnn.tasks.base import AbstractTask, masked_mse
from nmrnn.train import NonFiniteLossError, Stage, TrainConfig, fit, load_checkpoint
from nmrnn.train.loop import CHECKPOINT, loss_fn
from nmrnn.train.run import RunSpec, evaluate_run, load_run, prepare_run_dir, train_run


def test_masked_mse_matches_numpy():
    rng = np.random.default_rng(0)
    y, t = rng.normal(size=(4, 7, 2)), rng.normal(size=(4, 7, 2))
    m = (rng.random((4, 7, 2)) > 0.5).astype(float)
    expected = np.sum(m * (y - t) ** 2) / np.sum(m)
    assert float(masked_mse(jnp.asarray(y), jnp.asarray(t), jnp.asarray(m))) == pytest.approx(expected, rel=1e-6)


def test_loss_fn_regularisers_add_the_documented_terms():
    task = MeasureWaitGo()
    batch = task.fixed_batch()
    model = small_nmrnn()
    base = float(loss_fn(model, batch, None, TrainConfig()))
    traj = simulate(model, batch.inputs)
    act = np.mean([np.mean(np.asarray(s) ** 2) for s in traj.states])
    with_act = float(loss_fn(model, batch, None, TrainConfig(activity_l2=0.5)))
    assert with_act == pytest.approx(base + 0.5 * act, rel=1e-5)
    wsum = sum(float(np.sum(np.asarray(getattr(model, f)) ** 2)) for f in ("W_z", "B_z", "A_z", "b_z", "L", "R", "B_x", "C", "d"))
    with_w = float(loss_fn(model, batch, None, TrainConfig(weight_l2=1e-3)))
    assert with_w == pytest.approx(base + 1e-3 * wsum, rel=1e-5)


def test_short_mwg_training_lowers_the_loss():
    task = make_task("mwg")
    cfg = TrainConfig(steps=300, lr=1e-2, fixed_batch=True, steps_per_call=100)
    res = fit(small_nmrnn(), task, cfg, key=jr.PRNGKey(0))
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-10:].mean() < 0.3 * res.losses[:10].mean()


def test_same_key_same_result_and_fresh_batches_differ_by_key():
    task = make_task("eft")
    model = make_model("vanilla", n_in=1, n_out=1, n_hidden=6, key=jr.PRNGKey(0))
    cfg = TrainConfig(steps=20, batch_size=8, steps_per_call=10)
    a = fit(model, task, cfg, key=jr.PRNGKey(5))
    b = fit(model, task, cfg, key=jr.PRNGKey(5))
    c = fit(model, task, cfg, key=jr.PRNGKey(6))
    assert np.array_equal(a.losses, b.losses) and leaves_equal(a.model, b.model)
    assert not np.array_equal(a.losses, c.losses)


def test_staged_training_updates_only_the_stage_group():
    task = make_task("mwg")
    model = small_nmrnn()
    cfg = TrainConfig(stages=(Stage(20, "nm"),), fixed_batch=True, steps_per_call=20)
    res = fit(model, task, cfg, key=jr.PRNGKey(0))
    for f in ("L", "R", "B_x", "C", "d"):
        assert np.array_equal(getattr(res.model, f), getattr(model, f)), f
    for f in ("W_z", "B_z", "A_z", "b_z"):
        assert not np.array_equal(getattr(res.model, f), getattr(model, f)), f
    assert list(res.stage_index) == [0] * 20


STAGED = TrainConfig(
    stages=(Stage(40, "lowrank"), Stage(40, "nm"), Stage(60, "all", lr=5e-3)),
    fixed_batch=True,
    steps_per_call=20,
    checkpoint_every=20,
)


@pytest.mark.parametrize("stop_at", [40, 60])  # at a stage boundary, and mid-stage
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, stop_at):
    task = make_task("mwg")
    full = fit(small_nmrnn(), task, STAGED, key=jr.PRNGKey(3))
    resumed = interrupt_and_resume(task, STAGED, jr.PRNGKey(3), tmp_path, stop_at)
    assert np.array_equal(full.losses, resumed.losses)
    assert leaves_equal(full.model, resumed.model)
    rows = (tmp_path / "curve.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + STAGED.total_steps


class PoisonedMWG(AbstractTask):
    """MWG whose targets are NaN for a (key-determined) 2% of steps."""

    n_in: int = 3
    n_out: int = 1
    n_steps: int = 110

    def sample(self, key, batch_size):
        b = MeasureWaitGo().sample(key, batch_size)
        bad = jr.uniform(jr.fold_in(key, 7)) < 0.02
        return eqx.tree_at(lambda x: x.targets, b, jnp.where(bad, jnp.nan, b.targets))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(steps=2000, steps_per_call=10, checkpoint_every=10, batch_size=8)
    model = small_nmrnn()
    with pytest.raises(NonFiniteLossError, match=r"at step (\d+)") as err:
        fit(model, PoisonedMWG(), cfg, key=jr.PRNGKey(1), run_dir=tmp_path)
    bad_step = int(err.value.args[0].split("at step ")[1].split()[0])
    assert bad_step > 10 and "last good checkpoint" in str(err.value)
    # The checkpoint is the last multiple of 10 before the bad step, loads, and is finite.
    arrays_part = eqx.filter(model, eqx.is_array)
    trees, arrays = load_checkpoint(tmp_path / CHECKPOINT, {"model": arrays_part})
    assert int(arrays["step"]) == (bad_step // 10) * 10
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(trees["model"]))
    assert np.all(np.isfinite(arrays["losses"]))


def test_killed_checkpoint_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    task = make_task("mwg")
    cfg = TrainConfig(steps=40, fixed_batch=True, steps_per_call=20, checkpoint_every=20)
    calls = {"n": 0}
    real = np.savez

    def dying_savez(f, **payload):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies half-way through writing
            f.write(b"PK\x03\x04 partial")
            raise KeyboardInterrupt
        return real(f, **payload)

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        fit(small_nmrnn(), task, cfg, key=jr.PRNGKey(0), run_dir=tmp_path)
    monkeypatch.setattr(np, "savez", real)
    _, arrays = load_checkpoint(tmp_path / CHECKPOINT, {})
    assert int(arrays["step"]) == 20
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "sgdx"}, "valid choices: adamw, adam"),
        ({"batch_size": 0}, "batch_size"),
        ({"stages": ()}, "at least one stage"),
        ({"clip": 0.0}, "clip"),
    ],
)
def test_bad_training_config_is_refused(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kwargs)


def test_unknown_group_and_mismatched_widths_are_refused_before_compiling():
    task = make_task("mwg")
    with pytest.raises(ValueError, match="unknown parameter group 'nmx'.*valid groups: all, nm, lowrank"):
        fit(small_nmrnn(), task, TrainConfig(stages=(Stage(5, "nmx"),)), key=jr.PRNGKey(0))
    wrong = make_model("vanilla", n_in=2, n_out=1, n_hidden=4, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="n_in=2 .* 3 input channels"):
        fit(wrong, task, TrainConfig(steps=5), key=jr.PRNGKey(0))


def test_run_directory_roundtrip_and_resume_with_other_config_refused(tmp_path):
    spec = RunSpec("vanilla", 8, "mwg", TrainConfig(steps=30, fixed_batch=True, steps_per_call=10), seed=1)
    res = train_run(tmp_path / "run", spec)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) >= {"trained", "extrapolated"}
    spec2, model, _ = load_run(tmp_path / "run")
    assert spec2 == spec and leaves_equal(model, res.model)
    again = evaluate_run(tmp_path / "run")
    assert again["trained"]["loss"] == pytest.approx(metrics["trained"]["loss"])
    with pytest.raises(FileExistsError, match="already holds a run"):
        prepare_run_dir(tmp_path / "run", spec, resume=False)
    other = RunSpec("vanilla", 8, "mwg", TrainConfig(steps=60, fixed_batch=True), seed=1)
    with pytest.raises(ValueError, match=r"train.steps: 30 \(saved\) vs 60 \(now\)"):
        prepare_run_dir(tmp_path / "run", other, resume=True)


def test_read_curve_gives_each_column_and_training_does_not_load_plotting(tmp_path):
    """``read_curve`` reads the per-step losses (or any named column) that training wrote; the
    training path (a grid worker's) does not import matplotlib, which would add a third of a
    second to every worker process's start."""
    import subprocess
    import sys

    from nmrnn.train.run import read_curve

    code = (
        "import sys\n"
        "from nmrnn.train import TrainConfig\n"
        "from nmrnn.train.run import RunSpec, ensure_run\n"
        "import nmrnn.experiments.grid, nmrnn.experiments.sweep\n"
        f"ensure_run({str(tmp_path / 'r')!r}, RunSpec('vanilla', 6, 'mwg', TrainConfig(steps=20, steps_per_call=10), 0))\n"
        "print('matplotlib' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    loss = read_curve(tmp_path / "r")
    assert loss.shape == (20,) and np.all(np.isfinite(loss))
    np.testing.assert_array_equal(read_curve(tmp_path / "r", "mse"), loss)  # plain MSE: loss = mse
    with pytest.raises(ValueError, match="no column 'reward'"):
        read_curve(tmp_path / "r", "reward")
