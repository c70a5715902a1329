"""multitask_unet: joint 3D segmentation and classification of medical volumes."""

from __future__ import annotations

from multitask_unet.errors import (
    ConfigError,
    DataError,
    MultitaskUNetError,
    RegistryError,
    ShapeError,
    WeightsError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "MultitaskUNetError",
    "RegistryError",
    "ShapeError",
    "WeightsError",
    "__version__",
]
