"""Deprecated path: moved to :mod:`multitask_unet.evaluation.reading` (``PredictionTable`` to
:mod:`multitask_unet.prediction_table`)."""

from __future__ import annotations

import warnings

from multitask_unet.evaluation import reading as _moved
from multitask_unet.evaluation.reading import *  # noqa: F403
from multitask_unet.prediction_table import PredictionTable

__all__ = [*_moved.__all__, "PredictionTable"]

__deprecated_path__ = True

warnings.warn(
    "multitask_unet.evaluation.inputs moved to multitask_unet.evaluation.reading; "
    "import from there",
    DeprecationWarning,
    stacklevel=2,
)
