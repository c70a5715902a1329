"""Deprecated path: moved to :mod:`multitask_unet.data.sampling.batch`."""

import warnings

from multitask_unet.data.sampling import batch as _batch
from multitask_unet.data.sampling.batch import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_batch.__all__]

warnings.warn(
    "multitask_unet.data.batch moved to multitask_unet.data.sampling.batch; import from there",
    DeprecationWarning,
    stacklevel=2,
)
