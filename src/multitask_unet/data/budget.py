"""Deprecated path: moved to :mod:`multitask_unet.data.planning.budget_section`."""

import warnings

from multitask_unet.data.planning import budget_section as _budget_section
from multitask_unet.data.planning.budget_section import *  # noqa: F403

__deprecated_path__ = True
__all__ = [*_budget_section.__all__]

warnings.warn(
    "multitask_unet.data.budget moved to multitask_unet.data.planning.budget_section; import from there",
    DeprecationWarning,
    stacklevel=2,
)
