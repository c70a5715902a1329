"""Deprecated path: moved to :mod:`multitask_unet.inference.checkpoint_calibration`."""

from __future__ import annotations

import warnings

from multitask_unet.inference import checkpoint_calibration as _moved
from multitask_unet.inference.checkpoint_calibration import *  # noqa: F403

__all__ = list(_moved.__all__)

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.inference.calibrate moved to multitask_unet.inference.checkpoint_calibration; "
    "import from there",
    DeprecationWarning,
    stacklevel=2,
)
