"""Helpers of the reproduction tests: interrupting a reproduction's training once, and comparing
summaries without their wall-clock timings."""

from __future__ import annotations

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
