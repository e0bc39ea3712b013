"""Every registered reproduction runs end to end at the smoke profile (seconds each): it writes a
finished ``summary.json`` with checks, ``report.md`` and every figure it lists. The reproductions
in ``SMOKED_IN_OWN_FILE`` run this check in their own test file, beside the tests that reuse their
smoke run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from experiment_helpers import SMOKED_IN_OWN_FILE, check_smoke_outputs

from nmrnn.experiments.registry import REPRODUCTIONS


@pytest.mark.parametrize("name", sorted(set(REPRODUCTIONS) - set(SMOKED_IN_OWN_FILE)))
def test_smoke_profile_writes_summary_report_and_figures(name, smoke_run):
    check_smoke_outputs(name, smoke_run(name), smoke_run.dir(name))


@pytest.mark.parametrize("name", sorted(SMOKED_IN_OWN_FILE))
def test_the_other_smoke_tests_exist(name):
    """Each reproduction left out above is a registered one whose own test file checks its smoke
    outputs."""
    assert name in REPRODUCTIONS
    source = (Path(__file__).parent / SMOKED_IN_OWN_FILE[name]).read_text()
    assert re.search(rf'check_smoke_outputs\(\s*"{name}"', source), SMOKED_IN_OWN_FILE[name]
