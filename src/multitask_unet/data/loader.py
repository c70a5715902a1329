"""Deprecated path: moved to :mod:`multitask_unet.data.sampling.loader`."""

import warnings

from multitask_unet.data.sampling import loader as _loader
from multitask_unet.data.sampling.loader import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_loader.__all__]

warnings.warn(
    "multitask_unet.data.loader moved to multitask_unet.data.sampling.loader; import from there",
    DeprecationWarning,
    stacklevel=2,
)
