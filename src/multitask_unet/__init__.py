"""multitask_unet: joint 3D segmentation and classification of medical volumes.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain").eval()
    >>> sorted(model(torch.zeros(1, 1, 16, 32, 32)))
    ['seg']
"""

from __future__ import annotations

from multitask_unet.errors import (
    ConfigError,
    DataError,
    MultitaskUNetError,
    RegistryError,
    ShapeError,
    WeightsError,
)
from multitask_unet.features import FeatureInfo, Features
from multitask_unet.models import ModelConfig, MultiTaskUNet, create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "FeatureInfo",
    "Features",
    "ModelConfig",
    "MultiTaskUNet",
    "MultitaskUNetError",
    "RegistryError",
    "ShapeError",
    "WeightsError",
    "__version__",
    "create_model",
    "list_models",
]
