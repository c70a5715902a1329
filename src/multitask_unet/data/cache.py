"""Deprecated path: moved to :mod:`multitask_unet.data.preprocessing.cache`."""

import warnings

from multitask_unet.data.preprocessing import cache as _cache
from multitask_unet.data.preprocessing.cache import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_cache.__all__]

warnings.warn(
    "multitask_unet.data.cache moved to multitask_unet.data.preprocessing.cache; import from there",
    DeprecationWarning,
    stacklevel=2,
)
