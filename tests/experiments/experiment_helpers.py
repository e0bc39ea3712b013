"""Helpers of the experiment tests: interrupting a reproduction's training once, comparing
summaries without their wall-clock timings, and the environment of CLI subprocesses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TIMING_KEYS = frozenset({"train_seconds", "seconds", "elapsed_s", "started"})


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
