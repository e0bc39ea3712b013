"""Every registered reproduction runs end to end at the smoke profile (seconds each): it writes a
finished ``summary.json`` with checks, ``report.md`` and every figure it lists."""

from __future__ import annotations

import json

import pytest

from nmrnn.experiments.registry import REPRODUCTIONS


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_smoke_profile_writes_summary_report_and_figures(name, smoke_run):
    summary = smoke_run(name)
    out = smoke_run.dir(name)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["status"] == "finished" and summary["profile"] == "smoke"
    assert summary["checks"] and all({"name", "value", "criterion", "passed"} <= set(c) for c in summary["checks"])
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {summary['result_id']} `{name}`")
    assert summary["figures"], "every reproduction draws at least one figure"
    for fig in summary["figures"]:
        assert (out / fig).stat().st_size > 0, fig
        assert f"]({fig})" in report
