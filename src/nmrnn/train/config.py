"""Training configuration: plain, JSON-serialisable dataclasses, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

OPTIMIZERS = ("adamw", "adam")


@dataclass(frozen=True)
class Stage:
    """One stage of staged training: train only parameter ``group`` for ``steps`` steps.

    ``group`` is ``"all"`` or one of the model's ``param_groups`` (e.g. ``"nm"``, ``"lowrank"``
    for the NM-RNN). ``lr`` overrides the config's learning rate for this stage. Each stage starts
    a fresh optimiser state (its moments belong to a different parameter subset).
    """

    steps: int
    group: str = "all"
    lr: float | None = None

    def __post_init__(self):
        check_positive_int("stage steps", self.steps)
        if self.lr is not None:
            check_positive("stage lr", self.lr)


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        steps: number of optimiser steps (ignored when ``stages`` is given).
        lr: learning rate.
        optimizer: ``"adamw"`` (the NM-RNN reference: ``clip(1.0)`` then ``AdamW``) or ``"adam"``.
        weight_decay: AdamW's decoupled weight decay (optax's default 1e-4).
        clip: global-norm gradient clipping threshold; ``None`` for none.
        batch_size: trials per step; ``None`` uses the task's ``default_batch_size``.
        fixed_batch: train on one fixed batch (the task's ``fixed_batch()`` if it has one, else one
            sampled batch) instead of fresh trials every step.
        stages: optional sequence of :class:`Stage`; overrides ``steps``.
        steps_per_call: optimiser steps compiled into one ``lax.scan`` per host call.
        checkpoint_every: steps between checkpoints (rounded up to whole calls).
        weight_l2: coefficient of the sum of squared trainable parameters added to the loss.
        activity_l2: coefficient of the mean squared state (all state fields) added to the loss.
        noise: feed a key to the model's recurrent noise during training.
    """

    steps: int = 1000
    lr: float = 1e-2
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    clip: float | None = 1.0
    batch_size: int | None = None
    fixed_batch: bool = False
    stages: tuple[Stage, ...] | None = None
    steps_per_call: int = 100
    checkpoint_every: int = 1000
    weight_l2: float = 0.0
    activity_l2: float = 0.0
    noise: bool = True

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_nonnegative("weight_decay", self.weight_decay)
        if self.clip is not None:
            check_positive("clip", self.clip)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        check_positive_int("steps_per_call", self.steps_per_call)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_nonnegative("weight_l2", self.weight_l2)
        check_nonnegative("activity_l2", self.activity_l2)
        if self.stages is not None:
            stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
            if not stages:
                raise ValueError("stages must contain at least one stage (or be None)")
            object.__setattr__(self, "stages", stages)

    @property
    def schedule(self) -> tuple[Stage, ...]:
        """The stages to run (a single ``"all"`` stage when none are given)."""
        return self.stages if self.stages is not None else (Stage(self.steps, "all"),)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.schedule)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = None if self.stages is None else [dataclasses.asdict(s) for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown training option(s) {bad}; valid: {sorted(known)}")
        d = dict(d)
        if d.get("stages") is not None:
            d["stages"] = tuple(Stage(**s) for s in d["stages"])
        return cls(**d)


def parse_stages(text: str) -> tuple[Stage, ...]:
    """Parse ``"lowrank:10000,nm:10000,all:50000"`` into stages (``group:steps[:lr]``)."""
    stages = []
    for part in text.split(","):
        bits = part.strip().split(":")
        if len(bits) not in (2, 3):
            raise ValueError(f"bad stage {part!r}; expected group:steps or group:steps:lr")
        try:
            steps = int(bits[1])
            lr = float(bits[2]) if len(bits) == 3 else None
        except ValueError:
            raise ValueError(f"bad stage {part!r}; steps must be an integer, lr a number") from None
        stages.append(Stage(steps=steps, group=bits[0], lr=lr))
    return tuple(stages)

