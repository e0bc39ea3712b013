"""Tasks: trial generators as pure functions of a PRNG key, with their metrics.

``make_task(name, **options)`` builds any registered task (``TASKS`` lists them);
``task.sample(key, batch_size)`` returns a :class:`Batch`.
"""

from .base import AbstractTask, Batch, masked_mse
from .eft import ElementFinder
from .mwg import EXTRAPOLATION_INTERVALS, RANK1_TEST_INTERVALS, TRAIN_INTERVALS, MeasureWaitGo
from .registry import TASKS, make_task, register_task, task_options

register_task("mwg")(MeasureWaitGo)
register_task("eft")(ElementFinder)

__all__ = [
    "AbstractTask",
    "Batch",
    "EXTRAPOLATION_INTERVALS",
    "ElementFinder",
    "MeasureWaitGo",
    "RANK1_TEST_INTERVALS",
    "TASKS",
    "TRAIN_INTERVALS",
    "make_task",
    "masked_mse",
    "register_task",
    "task_options",
]
