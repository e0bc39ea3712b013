"""Helpers of the experiment tests: the smoke profile's outputs, interrupting a reproduction's
training once, comparing summaries without their wall-clock timings, and the environment of CLI
subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Reproductions whose smoke test lives in their own test file, beside the tests that reuse that smoke
# run (resume, retraining), so that one pytest worker computes it once; test_smoke.py runs the rest.
SMOKED_IN_OWN_FILE = {
    "flipflop": "test_flipflop.py",
    "multitask": "test_nmrnn_paper.py",
    "rank1": "test_nmrnn_theory.py",
}

TIMING_KEYS = frozenset({"train_seconds", "seconds", "elapsed_s", "started"})


def check_smoke_outputs(name: str, summary: dict, out: Path) -> None:
    """The smoke profile of reproduction ``name`` (its ``summary`` and folder ``out``) wrote a
    finished ``summary.json`` with checks, ``report.md`` and every figure it lists."""
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


class TrainingInterrupted(RuntimeError):
    """Raised from the training callback to interrupt a run (as a crash or a kill would)."""


def interrupt_training_once(monkeypatch, module, *, after_step: int) -> list[int]:
    """Make the first ``module.ensure_run`` call raise :class:`TrainingInterrupted` from its
    training callback once the run has passed ``after_step`` steps (a checkpoint is then on
    disk); later calls train normally. Returns the list of steps at which it fired."""
    original = module.ensure_run
    fired: list[int] = []

    def interrupting(run_dir, spec, **kwargs):
        if fired:
            return original(run_dir, spec, **kwargs)

        def callback(step, losses):
            if step >= after_step and not fired:
                fired.append(step)
                raise TrainingInterrupted(f"interrupted at step {step}")

        return original(run_dir, spec, **{**kwargs, "callback": callback})

    monkeypatch.setattr(module, "ensure_run", interrupting)
    return fired


def without_timings(obj: Any) -> Any:
    """``obj`` (nested dicts and lists) without the keys that hold wall-clock times."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def subprocess_env() -> dict[str, str]:
    """This environment with the repository's ``src`` first on ``PYTHONPATH``, for ``python -m
    nmrnn.cli`` subprocesses."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env
