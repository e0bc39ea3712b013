"""Tasks: trial generators as pure functions of a PRNG key, with their metrics.

``make_task(name, **options)`` builds any registered task (``TASKS`` lists them);
``task.sample(key, batch_size)`` returns a :class:`Batch`.
"""

from .base import AbstractTask, Batch, masked_mse
from .composition import Composition, decode_coefficients, variance_explained
from .driscoll import DRISCOLL_TASKS, DRISCOLL_TO_YANG, NMRNN_RULES, DriscollTask
from .eft import ElementFinder
from .mixed import DriscollMultitask, MixedTask
from .mwg import EXTRAPOLATION_INTERVALS, RANK1_TEST_INTERVALS, TRAIN_INTERVALS, MeasureWaitGo
from .neurogym_adapter import NeurogymTask
from .registry import TASKS, make_task, register_task, task_options
from .sine import SineMetaLearning, updates_to_threshold
from .standard import DelayedDiscrimination, FlipFlop, PathIntegration, SineGeneration
from .yang import RULES as YANG_RULES
from .yang import YangMultitask, YangTask

register_task("mwg")(MeasureWaitGo)
register_task("eft")(ElementFinder)
register_task("sine")(SineMetaLearning)
register_task("composition")(Composition)
register_task("flipflop")(FlipFlop)
register_task("sinegen")(SineGeneration)
register_task("romo")(DelayedDiscrimination)
register_task("pathint")(PathIntegration)
register_task("driscoll")(DriscollTask)
register_task("driscoll_multitask")(DriscollMultitask)
register_task("neurogym")(NeurogymTask)
register_task("yang")(YangTask)
register_task("yang_multitask")(YangMultitask)

__all__ = [
    "AbstractTask",
    "Batch",
    "DRISCOLL_TASKS",
    "DRISCOLL_TO_YANG",
    "DriscollMultitask",
    "DriscollTask",
    "EXTRAPOLATION_INTERVALS",
    "ElementFinder",
    "MeasureWaitGo",
    "MixedTask",
    "NMRNN_RULES",
    "NeurogymTask",
    "RANK1_TEST_INTERVALS",
    "Composition",
    "DelayedDiscrimination",
    "FlipFlop",
    "PathIntegration",
    "SineGeneration",
    "SineMetaLearning",
    "TASKS",
    "TRAIN_INTERVALS",
    "YANG_RULES",
    "YangMultitask",
    "YangTask",
    "decode_coefficients",
    "updates_to_threshold",
    "variance_explained",
    "make_task",
    "masked_mse",
    "register_task",
    "task_options",
]
