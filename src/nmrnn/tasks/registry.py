"""Task registry: name -> task class, filled by the ``@register_task`` decorator.

The environments of :mod:`nmrnn.rl` are tasks too (``"bandit"``: :class:`nmrnn.rl.BanditTask`),
registered by that module, which this one loads, so that every name is known wherever tasks are."""

from __future__ import annotations

import inspect
from typing import Any

from .._validation import check_choice, check_known_options
from .base import AbstractTask

TASKS: dict[str, type[AbstractTask]] = {}


def register_task(name: str):
    """Class decorator adding a task class to :data:`TASKS` under ``name``."""

    def deco(cls):
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task name {name!r} is already registered to {TASKS[name].__name__}")
        TASKS[name] = cls
        return cls

    return deco


def task_options(name: str) -> dict[str, Any]:
    """Constructor options (with defaults) of task ``name``."""
    cls = TASKS[check_choice("task", name, TASKS)]
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self"}


def make_task(name: str, **options: Any) -> AbstractTask:
    """Build task ``name``; unknown names or options are refused with the valid ones listed."""
    check_choice("task", name, TASKS)
    check_known_options(f"task {name!r}", options, task_options(name))
    return TASKS[name](**options)



def _register_environments() -> None:
    """Load :mod:`nmrnn.rl.a2c`, which registers its environment tasks (``"bandit"``) when it is
    first imported. ``nmrnn.rl`` builds on ``nmrnn.tasks.base``: when it is imported first, it is
    partially initialised here and registers its tasks once it is complete."""
    import importlib

    importlib.import_module("nmrnn.rl.a2c")


_register_environments()
