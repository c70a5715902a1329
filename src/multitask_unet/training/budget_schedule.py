"""Moved to :mod:`multitask_unet.training.time_limit`; this path is deprecated."""

import warnings

from multitask_unet.training.time_limit import *  # noqa: F403
from multitask_unet.training.time_limit import __all__, epochs_within_time_limit

__deprecated_path__ = True
#: The former name of :func:`epochs_within_time_limit`.
epochs_within_budget = epochs_within_time_limit
__all__ = [*__all__, "epochs_within_budget"]
warnings.warn(
    "multitask_unet.training.budget_schedule moved to multitask_unet.training.time_limit "
    "(epochs_within_budget is now epochs_within_time_limit); import from there",
    DeprecationWarning,
    stacklevel=2,
)
