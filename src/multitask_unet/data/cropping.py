"""Deprecated path: moved to :mod:`multitask_unet.data.preprocessing.cropping`."""

import warnings

from multitask_unet.data.preprocessing import cropping as _cropping
from multitask_unet.data.preprocessing.cropping import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_cropping.__all__]

warnings.warn(
    "multitask_unet.data.cropping moved to multitask_unet.data.preprocessing.cropping; import from there",
    DeprecationWarning,
    stacklevel=2,
)
