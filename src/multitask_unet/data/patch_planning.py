"""Deprecated path: moved to :mod:`multitask_unet.data.planning.patch_size`."""

import warnings

from multitask_unet.data.planning import patch_size as _patch_size
from multitask_unet.data.planning.patch_size import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_patch_size.__all__]

warnings.warn(
    "multitask_unet.data.patch_planning moved to multitask_unet.data.planning.patch_size; import from there",
    DeprecationWarning,
    stacklevel=2,
)
