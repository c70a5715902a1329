"""multitask_unet: joint 3D segmentation and classification of medical volumes.

The network, its parts and the losses import eagerly; names from the heavier layers (data,
inference, training, evaluation) load on first use, so ``import multitask_unet`` stays fast
in worker processes.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain").eval()
    >>> sorted(model(torch.zeros(1, 1, 16, 32, 32)))
    ['seg']
"""

from __future__ import annotations

import importlib
from typing import Any

from multitask_unet.errors import (
    ConfigError,
    DataError,
    MultitaskUNetError,
    RegistryError,
    ShapeError,
    WeightsError,
)
from multitask_unet.features import FeatureInfo, Features
from multitask_unet.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    MultiTaskLoss,
    MultiTaskLossConfig,
    create_loss,
)
from multitask_unet.models import ModelConfig, MultiTaskUNet, create_model, list_models

__version__ = "0.1.0"

# Public names served lazily: name -> module that defines it.
_LAZY = {
    "Batch": "multitask_unet.data",
    "read_dataset": "multitask_unet.data",
    "validate_dataset": "multitask_unet.data",
    "write_phantom_dataset": "multitask_unet.data",
    "Predictor": "multitask_unet.inference",
    "sliding_window_predict": "multitask_unet.inference",
    "evaluate": "multitask_unet.evaluation",
    "EvaluationConfig": "multitask_unet.evaluation",
    "Trainer": "multitask_unet.training",
    "TrainConfig": "multitask_unet.training",
    "train": "multitask_unet.training",
    "load_checkpoint": "multitask_unet.checkpoints",
    "save_checkpoint": "multitask_unet.checkpoints",
}

__all__ = [
    "Batch",
    "ConfigError",
    "DataError",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "EvaluationConfig",
    "FeatureInfo",
    "Features",
    "ModelConfig",
    "MultiTaskLoss",
    "MultiTaskLossConfig",
    "MultiTaskUNet",
    "MultitaskUNetError",
    "Predictor",
    "RegistryError",
    "ShapeError",
    "TrainConfig",
    "Trainer",
    "WeightsError",
    "__version__",
    "create_loss",
    "create_model",
    "evaluate",
    "list_models",
    "load_checkpoint",
    "read_dataset",
    "save_checkpoint",
    "sliding_window_predict",
    "train",
    "validate_dataset",
    "write_phantom_dataset",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'multitask_unet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
