"""R2 / R5 experiment settings (paper 001): the rank-1 MWG setting builds the paper's network,
and the rank-1 reproduction resumes from its run directory after an interruption."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from nmrnn.analysis.rank1 import exact_rank1_signal, rank1_params
from nmrnn.experiments.nmrnn_theory import make_mwg_rank1_nmrnn, mwg_rank1_setting
from nmrnn.models import simulate
from nmrnn.tasks.mwg import MeasureWaitGo

# ----------------------------------------------------------------------------------------------
# the paper's rank-1 MWG setting
# ----------------------------------------------------------------------------------------------


def test_mwg_rank1_setting_builds_the_paper_network():
    from nmrnn.train import TrainConfig

    setting = mwg_rank1_setting()
    model = make_mwg_rank1_nmrnn(key=jr.PRNGKey(0))
    assert (model.n_hidden, model.n_nm, model.rank) == (100, 20, 1)
    assert (model.tau_x, model.tau_z, model.dt) == (2.0, 10.0, 1.0)
    assert model.symmetric and model._x_phi()(jnp.asarray(3.0)) == 3.0
    assert setting.test_intervals == (7, 15, 23)
    config = TrainConfig(**setting.train)
    assert (config.steps, config.lr, config.batch_size) == (50_000, 1e-3, 40)

    # The theory applies to this network: its own MWG outputs give back its gains.
    batch = MeasureWaitGo().test_batch(list(setting.test_intervals))
    traj = simulate(model, batch.inputs)
    sig = exact_rank1_signal(rank1_params(model), traj.outputs[..., 0], batch.inputs)
    s_model = np.asarray(model.gains(traj.states.z)[..., 0])
    driven = np.isfinite(np.asarray(sig.s))
    assert driven[:, -40:].all()  # after the pulses x has a rank-1 component
    np.testing.assert_allclose(np.asarray(sig.s)[driven], s_model[driven], rtol=5e-3, atol=1e-3)


def test_rank1_profiles_and_run_spec():
    from nmrnn.experiments.nmrnn_theory import MWG_RANK1, PROP1_SIZES, RANK1_PROFILES
    from nmrnn.experiments.profiles import PROFILE_NAMES

    assert [name for name, _ in RANK1_PROFILES.items()] == list(PROFILE_NAMES)
    assert RANK1_PROFILES["quick"]["steps"] == 6000 and RANK1_PROFILES["paper"]["steps"] == 50_000
    assert len(PROP1_SIZES["paper"]) == 5 and len(PROP1_SIZES["smoke"]) >= 1
    spec = MWG_RANK1.run_spec(3, steps=10)
    assert (spec.model, spec.n_hidden, spec.task, spec.seed) == ("nmrnn", 100, "mwg", 3)
    assert spec.train.steps == 10 and spec.train.lr == 1e-3 and spec.task_options == {"mask_pad": 5}
    model, task = spec.build()
    assert (model.n_nm, model.rank, float(model.tau_x)) == (20, 1, 2.0) and task.mask_pad == 5


def test_rank1_smoke_profile_writes_summary_report_and_figures(smoke_run):
    from experiment_helpers import check_smoke_outputs

    check_smoke_outputs("rank1", smoke_run("rank1"), smoke_run.dir("rank1"))


def test_rank1_smoke_reproduction_resumes_after_an_interruption(tmp_path, monkeypatch, smoke_run):
    """Interrupt training after a checkpoint, run again: the numbers equal an uninterrupted run's."""
    import json

    import pytest
    from experiment_helpers import TrainingInterrupted, interrupt_training_once, without_timings

    from nmrnn.experiments import nmrnn_theory
    from nmrnn.experiments.registry import run_reproduction

    reference = smoke_run("rank1")
    out = tmp_path / "interrupted"
    fired = interrupt_training_once(monkeypatch, nmrnn_theory, after_step=200)
    with pytest.raises(TrainingInterrupted):
        run_reproduction("rank1", out, profile="smoke")
    assert fired == [200] and (out / "runs" / "rank1" / "checkpoint.npz").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    resumed = run_reproduction("rank1", out, profile="smoke")
    assert without_timings(resumed["metrics"]) == without_timings(reference["metrics"])
    assert resumed["checks"] == reference["checks"]
    curve = (out / "runs" / "rank1" / "curve.csv").read_text()
    assert curve == (smoke_run.dir("rank1") / "runs" / "rank1" / "curve.csv").read_text()
