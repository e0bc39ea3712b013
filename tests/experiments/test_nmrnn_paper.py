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
