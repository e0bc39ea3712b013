"""R6: the 2-neuron Hopf reproduction runs end to end (quick profile) and reproduces the claim."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nmrnn.experiments.registry import run_reproduction


@pytest.fixture(scope="module")
def hopf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hopf")
    return out, run_reproduction("hopf", out, profile="quick", seed=0)


def test_hopf_reproduced_with_numbers_within_tolerance(hopf_run):
    out, summary = hopf_run
    assert json.loads((out / "summary.json").read_text()) == summary
    failed = [c["name"] for c in summary["checks"] if not c["passed"]]
    assert summary["reproduced"] is True, failed
    m = summary["metrics"]["multiplicative"]
    assert abs(m["hopf_n"] - 0.5) < 1e-3
    assert m["max_eigenvalue_error"] < 1e-4
    assert m["max_fixed_point_norm"] < 1e-5
    assert 0.45 < m["amplitude_exponent"] < 0.55
    assert m["hopf_frequency"] == pytest.approx(0.5, abs=1e-3)
    np.testing.assert_allclose(m["hopf_point"], [0.0, 0.0], atol=1e-6)
    a = summary["metrics"]["additive"]
    assert np.linalg.norm(a["hopf_point"]) > 0.1  # the additive Hopf is away from the origin
    np.testing.assert_allclose(a["dr_dr3_numeric"], a["dr_dr3_closed_form"], atol=1e-3)
    assert a["mean_shift_across_hopf"] > 0.1


def test_hopf_summary_states_settings_claim_and_figures(hopf_run):
    out, summary = hopf_run
    assert summary["result_id"] == "R6" and "n = 1/2" in summary["claim"]
    assert summary["profile"] == "quick" and summary["settings"]["additive_n"] == 0.6
    assert summary["criterion"]
    assert set(summary["figures"]) == {"figures/phase_portraits.png", "figures/eigenvalues.png", "figures/bifurcations.png"}
    for f in summary["figures"]:
        assert (out / f).stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "**Reproduced: yes**" in report and "Hopf gain n_H" in report
