"""Deprecated path: moved to :mod:`multitask_unet.data.sampling.augmentation` and :mod:`multitask_unet.data.sampling.spatial`."""

import warnings

from multitask_unet.data.sampling import augmentation as _augmentation
from multitask_unet.data.sampling import spatial as _spatial
from multitask_unet.data.sampling.augmentation import *  # noqa: F403
from multitask_unet.data.sampling.spatial import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_augmentation.__all__, *_spatial.__all__]

warnings.warn(
    "multitask_unet.data.augmentation moved to multitask_unet.data.sampling.augmentation and multitask_unet.data.sampling.spatial; import from there",
    DeprecationWarning,
    stacklevel=2,
)
