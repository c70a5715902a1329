"""Deprecated path: moved to :mod:`multitask_unet.data.planning.fingerprint`."""

import warnings

from multitask_unet.data.planning import fingerprint as _fingerprint
from multitask_unet.data.planning.fingerprint import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_fingerprint.__all__]

warnings.warn(
    "multitask_unet.data.fingerprint moved to multitask_unet.data.planning.fingerprint; import from there",
    DeprecationWarning,
    stacklevel=2,
)
