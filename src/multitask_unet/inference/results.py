"""Deprecated path: ``predictions.csv`` is read and written by
:class:`multitask_unet.prediction_table.PredictionTable`; ``remove_stale_temps`` moved to
``multitask_unet._atomic``.
"""

from __future__ import annotations

import warnings

from multitask_unet._atomic import remove_stale_temps
from multitask_unet.prediction_table import PredictionTable

__all__ = ["PredictionTable", "remove_stale_temps"]

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.inference.results moved to multitask_unet.prediction_table "
    "(remove_stale_temps to multitask_unet._atomic); import from there",
    DeprecationWarning,
    stacklevel=2,
)
