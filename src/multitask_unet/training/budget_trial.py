"""Moved to :mod:`multitask_unet.training.budget.trial`; this path is deprecated."""

import warnings

from multitask_unet.training.budget.trial import *  # noqa: F403
from multitask_unet.training.budget.trial import __all__  # noqa: F401

__deprecated_path__ = True
warnings.warn(
    "multitask_unet.training.budget_trial moved to multitask_unet.training.budget (trial); "
    "import from there",
    DeprecationWarning,
    stacklevel=2,
)
