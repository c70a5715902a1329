"""Training: the :class:`Trainer`, its config, schedule, distributed helpers and ``train``.

Example:
    >>> from multitask_unet.training import TrainConfig
    >>> optimizer = TrainConfig().optimization.optimizer
    >>> optimizer.name, optimizer.lr
    ('sgd', 0.01)
"""

from multitask_unet.training.builders import build_loss
from multitask_unet.training.config import (
    DataConfig,
    ModelSpec,
    OptimizationConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrainConfig,
)
from multitask_unet.training.pipeline import prepare_plan, train
from multitask_unet.training.run_folder import run_checkpoint
from multitask_unet.training.schedule import PolyLR, build_optimizer
from multitask_unet.training.trainer import Trainer, TrainResult

__all__ = [
    "DataConfig",
    "ModelSpec",
    "OptimizationConfig",
    "OptimizerConfig",
    "PolyLR",
    "RuntimeConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_loss",
    "build_optimizer",
    "prepare_plan",
    "run_checkpoint",
    "train",
]
