"""Deprecated path: moved to :mod:`multitask_unet.evaluation.calibration_metrics`."""

from __future__ import annotations

import warnings

from multitask_unet.evaluation import calibration_metrics as _moved
from multitask_unet.evaluation.calibration_metrics import *  # noqa: F403

__all__ = list(_moved.__all__)

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.evaluation.calibration moved to multitask_unet.evaluation.calibration_metrics; "
    "import from there",
    DeprecationWarning,
    stacklevel=2,
)
