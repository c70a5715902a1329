"""Deprecated path: moved to :mod:`multitask_unet.training.online_evaluation`."""

from __future__ import annotations

import warnings

from multitask_unet.training import online_evaluation as _moved
from multitask_unet.training.online_evaluation import *  # noqa: F403

__all__ = list(_moved.__all__)

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.training.validation moved to multitask_unet.training.online_evaluation; "
    "import from there",
    DeprecationWarning,
    stacklevel=2,
)
