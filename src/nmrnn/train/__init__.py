"""Training: one loop for every model and task (:func:`fit`), its configuration, checkpoints and
run directories."""

from .checkpoint import atomic_write_json, atomic_write_text, load_checkpoint, save_checkpoint
from .config import OPTIMIZERS, Stage, TrainConfig, parse_stages
from .local_rules import LocalRules, local_gradients
from .loop import NonFiniteLossError, TrainResult, fit, loss_fn, make_optimizer

__all__ = [
    "LocalRules",
    "NonFiniteLossError",
    "OPTIMIZERS",
    "Stage",
    "TrainConfig",
    "TrainResult",
    "atomic_write_json",
    "atomic_write_text",
    "fit",
    "load_checkpoint",
    "local_gradients",
    "loss_fn",
    "make_optimizer",
    "parse_stages",
    "save_checkpoint",
]
