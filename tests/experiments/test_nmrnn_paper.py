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


# -- R1's criteria on synthetic numbers ----------------------------------------------------------

def _numbers(nm_loss, base_loss, nm_slope=0.1, base_slope=0.3, seeds=10):
    from nmrnn.experiments.nmrnn_paper import BASELINES

    rng = np.random.default_rng(0)
    extra = {"NM-RNN": list(nm_loss + 1e-3 * rng.random(seeds))}
    slope = {"NM-RNN": list(nm_slope + 1e-3 * rng.random(seeds))}
    for b in BASELINES:
        extra[b] = list(base_loss + 1e-3 * rng.random(seeds))
        slope[b] = list(base_slope + 1e-3 * rng.random(seeds))
    return extra, slope


def _by_name(checks):
    return {c["name"].split(": ", 1)[1]: c for c in checks}


def test_r1_criteria_pass_when_the_nmrnn_is_clearly_best():
    from nmrnn.experiments.nmrnn_paper import mwg_checks
    from nmrnn.experiments.registry import verdict_of

    checks = mwg_checks("reference", *_numbers(0.01, 0.05))
    assert all(c["passed"] for c in checks), checks
    assert verdict_of(checks) == "reproduced"
    assert _by_name(checks)["NM-RNN below LSTM"]["value"]["p"] < 1e-4


@pytest.mark.parametrize(
    "kwargs, failing",
    [
        (dict(nm_loss=0.05, base_loss=0.01), {"lowest extrapolated loss", "NM-RNN below LR-RNN", "NM-RNN below vanilla RNN", "NM-RNN below LSTM"}),
        (dict(nm_loss=0.01, base_loss=0.05, nm_slope=0.25, base_slope=0.3), {"ramp slope kept"}),
        (dict(nm_loss=0.01, base_loss=0.05, nm_slope=0.15, base_slope=0.1), {"best ramp slope"}),
    ],
)
def test_r1_criteria_fail_clause_by_clause(kwargs, failing):
    from nmrnn.experiments.nmrnn_paper import mwg_checks
    from nmrnn.experiments.registry import verdict_of

    checks = mwg_checks("standard", *_numbers(**kwargs))
    assert {k for k, c in _by_name(checks).items() if not c["passed"]} == failing
    assert verdict_of(checks) == "not reproduced"


def test_r1_rank_tests_are_undecided_with_three_seeds():
    from nmrnn.experiments.nmrnn_paper import mwg_checks, rank_test
    from nmrnn.experiments.registry import verdict_of

    p, decidable = rank_test([0.01, 0.02, 0.03], [0.1, 0.2, 0.3])
    assert p == pytest.approx(0.05) and not decidable  # 1 / C(6, 3): the smallest p there is
    assert rank_test([0.01] * 4 + [0.02], [0.1] * 4 + [0.2])[1]  # 1 / C(10, 5) < 0.05
    checks = mwg_checks("reference", *_numbers(0.01, 0.05, seeds=3))
    rank = [c for c in checks if "below" in c["name"]]
    assert rank and all(c.get("decided") is False and not c["passed"] for c in rank)
    assert verdict_of(checks) == "undecided"


def test_gain_ablation_holds_each_gain_at_its_mean_and_changes_the_output():
    import jax.random as jr

    from nmrnn.experiments.nmrnn_paper import gain_ablation
    from nmrnn.models import make_model, simulate

    task = MeasureWaitGo()
    model = make_model("nmrnn", n_in=3, n_out=1, n_hidden=30, n_nm=4, rank=3, key=jr.PRNGKey(0))
    numbers, variants = gain_ablation(model, task)
    assert list(variants) == ["intact", "s_1 held", "s_2 held", "s_3 held"]
    batch = task.test_batch([4, 12, 26])
    s = np.asarray(model.modulation(simulate(model, task.test_batch(sorted({*task.intervals, 4, 6, 8, 10, 20, 22, 24, 26})).inputs).states))
    np.testing.assert_allclose(numbers["constants"], s.reshape(-1, 3).mean(0), rtol=1e-5)
    held = np.asarray(variants["s_2 held"].modulation(simulate(variants["s_2 held"], batch.inputs).states))
    np.testing.assert_allclose(held[..., 1], numbers["constants"][1], rtol=1e-6)
    assert set(numbers["loss"]["intact"]) == {"trained", "extrapolated"}
