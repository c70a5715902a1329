"""Moved to :mod:`multitask_unet.training.budget.candidates`; this path is deprecated."""

import warnings

from multitask_unet.training.budget.candidates import *  # noqa: F403
from multitask_unet.training.budget.candidates import __all__  # noqa: F401

__deprecated_path__ = True
warnings.warn(
    "multitask_unet.training.budget_candidates moved to multitask_unet.training.budget "
    "(candidates); import from there",
    DeprecationWarning,
    stacklevel=2,
)
