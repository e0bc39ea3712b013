import numpy as np
import pytest

from nmrnn.experiments.nmrnn_paper import slope_ratios
from nmrnn.tasks import MeasureWaitGo


def test_slope_ratio_is_one_for_the_target_and_scales_with_the_output():
    task = MeasureWaitGo()
    batch = task.test_batch([4, 12, 26])
    target = np.asarray(batch.targets)
    assert np.allclose(slope_ratios(target, batch, task), 1.0)
    # An output that rises at half the rate over each ramp has ratio 1/2.
    tg, iv = np.asarray(batch.info["t_go"]), np.asarray(batch.info["interval"])
    half = np.full_like(target, -0.5)
    for k in range(3):
        t = np.arange(task.n_steps)
        half[k, :, 0] = -0.5 + 0.5 * np.clip((t - tg[k]) / iv[k], 0, None)
    assert slope_ratios(half, batch, task) == pytest.approx([0.5, 0.5, 0.5])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prop1", "rank1"])
def test_theory_reproductions_quick_profile(tmp_path, name):
    import json

    from nmrnn.experiments import run_reproduction

    summary = run_reproduction(name, tmp_path / name, profile="quick", seed=0)
    assert summary["reproduced"], summary["checks"]
    on_disk = json.loads((tmp_path / name / "summary.json").read_text())
    assert on_disk["reproduced"] and (tmp_path / name / "report.md").exists()
    for fig in on_disk["figures"]:
        assert (tmp_path / name / fig).stat().st_size > 0
