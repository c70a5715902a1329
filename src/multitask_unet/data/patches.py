"""Deprecated path: moved to :mod:`multitask_unet.data.sampling.patches` and :mod:`multitask_unet.data.sampling.crop`."""

import warnings

from multitask_unet.data.sampling import crop as _crop
from multitask_unet.data.sampling import patches as _patches
from multitask_unet.data.sampling.crop import *  # noqa: F403
from multitask_unet.data.sampling.patches import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_patches.__all__, *_crop.__all__]

warnings.warn(
    "multitask_unet.data.patches moved to multitask_unet.data.sampling.patches and multitask_unet.data.sampling.crop; import from there",
    DeprecationWarning,
    stacklevel=2,
)
