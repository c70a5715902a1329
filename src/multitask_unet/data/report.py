"""Deprecated path: moved to :mod:`multitask_unet.data.validation_report`."""

from __future__ import annotations

import warnings

from multitask_unet.data import validation_report as _moved
from multitask_unet.data.validation_report import *  # noqa: F403

__all__ = list(_moved.__all__)

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.data.report moved to multitask_unet.data.validation_report; import from there",
    DeprecationWarning,
    stacklevel=2,
)
