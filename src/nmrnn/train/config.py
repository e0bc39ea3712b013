"""Training configuration: plain, JSON-serialisable dataclasses, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .._validation import (
    check_choice,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
)

OPTIMIZERS = ("adamw", "adam")
#: Learning-rate schedules within each stage (multiplying ``lr``): ``constant``; ``cosine`` from 1
#: to ``final_lr_factor``; ``exponential`` from 1 to ``final_lr_factor``. A linear warm-up over
#: ``warmup_steps`` steps applies to all.
SCHEDULES = ("constant", "cosine", "exponential")
LOSSES = ("mse", "cross_entropy")
#: Gradient clipping: ``global_norm`` rescales the whole gradient to norm <= clip;
#: ``value`` clips every element to [-clip, clip] (``optax.clip``, the NM-RNN authors' code).
CLIP_MODES = ("global_norm", "value")


def _opt(default, help: str, **extra):
    """A config field with its command-line help (the CLI is generated from these fields)."""
    return field(default=default, metadata={"help": help, **extra})


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
        clip: gradient clipping threshold; ``None`` for none.
        clip_mode: ``"global_norm"`` (default) or ``"value"`` (element-wise, as the NM-RNN
            authors' ``optax.clip(1.0)``).
        batch_size: trials per step; ``None`` uses the task's ``default_batch_size``.
        fixed_batch: train on one fixed batch (the task's ``fixed_batch()`` if it has one, else one
            sampled batch) instead of fresh trials every step. With a ``batch_size`` smaller than
            that set, every step draws ``batch_size`` of its trials (uniformly, with
            replacement: minibatches of a fixed training set).
        stages: optional sequence of :class:`Stage`; overrides ``steps``.
        steps_per_call: optimiser steps compiled into one ``lax.scan`` per host call.
        checkpoint_every: steps between checkpoints (rounded up to whole calls).
        weight_l2: coefficient of the sum of squared trainable parameters added to the loss.
        activity_l2: coefficient of the mean squared state (all state fields) added to the loss.
        noise: feed a key to the model's recurrent noise during training.
        loss: ``"mse"`` (masked MSE) or ``"cross_entropy"`` (masked softmax cross-entropy).
        weight_l1: coefficient of the sum of absolute trainable parameters.
        lr_schedule, warmup_steps, final_lr_factor: the learning rate within each stage.
        select_best_block: ``None`` keeps each stage's last parameters. A number B splits every
            stage into blocks of B steps (the last one possibly shorter) and ends the stage with
            the parameters at the end of the block whose last recorded loss is the lowest, as
            the NM-RNN authors' training functions do with B = 1000; the next stage starts
            from them.
        restart_each_block: start the optimiser's state afresh at every block boundary of
            ``select_best_block`` (Adam's moments and step count back to zero). The NM-RNN
            authors' training functions do so: each runs its blocks as ``lax.scan`` calls and
            keeps only the parameters of each, dropping the optimiser state.

    The numeric fields (``lr``, ``weight_decay``, ``clip``'s value, the regulariser weights,
    ``warmup_steps``, ``final_lr_factor``, the stages' ``lr``) reach the compiled training loop as
    data: runs that differ only in them share one compilation, and an ensemble
    (:func:`nmrnn.train.fit_ensemble`) can give each member its own.
    """

    steps: int = _opt(1000, "optimiser steps (ignored when stages are given)")
    lr: float = _opt(1e-2, "learning rate")
    optimizer: str = _opt("adamw", "optimiser", choices=OPTIMIZERS)
    weight_decay: float = _opt(1e-4, "AdamW's decoupled weight decay")
    clip: float | None = _opt(1.0, "gradient clipping threshold ('none' disables)")
    clip_mode: str = _opt("global_norm", "gradient clipping: the global norm, or every element", choices=CLIP_MODES)
    batch_size: int | None = _opt(None, "trials per step (default: the task's)")
    fixed_batch: bool = _opt(False, "train on the task's fixed full batch instead of fresh trials")
    stages: tuple[Stage, ...] | None = _opt(
        None, "staged training, e.g. lowrank:10000,nm:10000,all:50000 (group:steps[:lr])"
    )
    steps_per_call: int = _opt(100, "optimiser steps compiled into one call")
    checkpoint_every: int = _opt(1000, "steps between checkpoints (rounded up to whole calls)")
    weight_l2: float = _opt(0.0, "weight of the sum of squared parameters in the loss")
    activity_l2: float = _opt(0.0, "weight of the mean squared state in the loss")
    noise: bool = _opt(True, "feed a key to the model's recurrent noise during training")
    loss: str = _opt("mse", "the supervised loss", choices=LOSSES)
    weight_l1: float = _opt(0.0, "weight of the sum of absolute parameters in the loss")
    lr_schedule: str = _opt("constant", "learning-rate schedule within each stage", choices=SCHEDULES)
    warmup_steps: int = _opt(0, "linear learning-rate warm-up at the start of each stage (steps)")
    final_lr_factor: float = _opt(0.1, "final lr / lr of the cosine and exponential schedules")
    select_best_block: int | None = _opt(
        None, "end each stage with the parameters of its best block of this many steps ('none': the last)"
    )
    restart_each_block: bool = _opt(
        False, "start the optimiser's state afresh at every block of --select-best-block"
    )
    keep_every: int | None = _opt(
        None, "keep the model every this many steps in the run directory's snapshots/ (rounded up to whole calls; 'none': not kept)"
    )

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_nonnegative("weight_decay", self.weight_decay)
        if self.clip is not None:
            check_positive("clip", self.clip)
        check_choice("clip_mode", self.clip_mode, CLIP_MODES)
        if self.select_best_block is not None:
            check_positive_int("select_best_block", self.select_best_block)
        if not isinstance(self.restart_each_block, bool):
            raise ValueError(f"restart_each_block must be true or false, got {self.restart_each_block!r}")
        if self.restart_each_block and self.select_best_block is None:
            raise ValueError("restart_each_block needs select_best_block (the blocks at whose boundaries the optimiser restarts)")
        if self.keep_every is not None:
            check_positive_int("keep_every", self.keep_every)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        check_positive_int("steps_per_call", self.steps_per_call)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_nonnegative("weight_l2", self.weight_l2)
        check_nonnegative("activity_l2", self.activity_l2)
        check_nonnegative("weight_l1", self.weight_l1)
        check_choice("loss", self.loss, LOSSES)
        check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        check_nonnegative_int("warmup_steps", self.warmup_steps)
        check_positive("final_lr_factor", self.final_lr_factor)
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

    def compiled_form(self) -> TrainConfig:
        """This config with every number that reaches the compiled training chunk as data (lr,
        weight decay, clip value, regulariser weights, warm-up, final lr factor, stage lengths and
        lrs) or that only the host loop reads (checkpointing, best-block selection) set to a fixed
        placeholder: configs that differ only in those numbers have equal compiled forms and share
        one compilation."""
        return dataclasses.replace(
            self,
            steps=1,
            lr=1.0,
            weight_decay=0.0,
            clip=None if self.clip is None else 1.0,
            stages=tuple(Stage(1, s.group) for s in self.schedule),
            checkpoint_every=1,
            select_best_block=None,
            restart_each_block=False,
            keep_every=None,
            weight_l2=float(self.weight_l2 > 0),
            activity_l2=float(self.activity_l2 > 0),
            weight_l1=float(self.weight_l1 > 0),
            warmup_steps=0,
            final_lr_factor=1.0,
        )

    def structure(self) -> tuple:
        """What an ensemble's members must share: the compiled form and the stage lengths (two
        configs with the same structure differ only in numbers that are passed as data)."""
        return (self.compiled_form(), tuple(s.steps for s in self.schedule), self.select_best_block,
                self.restart_each_block)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = None if self.stages is None else [dataclasses.asdict(s) for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> TrainConfig:
        """A config from its JSON form; every field is read against its annotation
        (:mod:`nmrnn.options`: booleans are true/false, numbers refuse text and booleans)."""
        return cls(**cls.read_options(d))

    @classmethod
    def read_options(cls, d: Any) -> dict[str, Any]:
        """Some of the fields in their JSON form (or already typed), each read against its
        annotation as :meth:`from_dict` reads them; unknown names are refused."""
        from ..options import coerce

        if not isinstance(d, dict):
            raise ValueError(f"training options must be an object, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - set(fields))
        if bad:
            raise ValueError(f"unknown training option(s) {bad}; valid: {sorted(fields)}")
        out = {}
        for k, v in d.items():
            if k == "stages":
                out[k] = None if v is None else _stages_from_json(v)
            else:
                out[k] = coerce(k, v, fields[k].type)
        return out


def _stages_from_json(value: Any) -> tuple[Stage, ...]:
    from ..options import coerce

    if not isinstance(value, list | tuple):
        raise ValueError(f"stages must be a list of {{steps, group, lr}} objects, got {value!r}")
    stages = []
    types = {f.name: f.type for f in dataclasses.fields(Stage)}
    for item in value:
        if isinstance(item, Stage):
            stages.append(item)
            continue
        if not isinstance(item, dict) or set(item) - set(types) or "steps" not in item:
            raise ValueError(f"a stage must be an object with steps, group and lr, got {item!r}")
        stages.append(Stage(**{k: coerce(f"stage {k}", v, types[k]) for k, v in item.items()}))
    return tuple(stages)


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

