"""Deprecated path: moved to :mod:`multitask_unet.data.preprocessing.resampling`."""

import warnings

from multitask_unet.data.preprocessing import resampling as _resampling
from multitask_unet.data.preprocessing.resampling import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_resampling.__all__]

warnings.warn(
    "multitask_unet.data.resampling moved to multitask_unet.data.preprocessing.resampling; import from there",
    DeprecationWarning,
    stacklevel=2,
)
