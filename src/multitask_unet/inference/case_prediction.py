"""What a :class:`~multitask_unet.inference.Predictor` returns.

:class:`CasePrediction` is one case, in memory, on the grid of its image file
(:meth:`Predictor.predict_case <multitask_unet.inference.Predictor.predict_case>`);
:class:`PredictionRun` says what :meth:`Predictor.predict
<multitask_unet.inference.Predictor.predict>` wrote into a prediction folder (its layout is
described in :mod:`multitask_unet.inference.predictor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CasePrediction", "PredictionRun"]


@dataclass(frozen=True, eq=False)
class CasePrediction:
    """The prediction of one case.

    Attributes:
        case_id: The case.
        segmentation: ``(I, J, K)`` label map (uint8) on the grid of the image file.
        affine: The image file's ``(4, 4)`` affine (save the label map with it).
        probabilities: ``(K,)`` class probabilities of the classification head, or ``None``.
        predicted: Predicted class (argmax of the head's logits; of an ensemble, argmax of the
            mean uncalibrated probabilities), or ``None``.
        logits: Raw ``(K,)`` logits of every classification head, by head name (of an
            ensemble, the mean of the models' logits).
        uncalibrated: ``(K,)`` probabilities before calibration when a calibration was
            applied, else ``None``.
        seg_probabilities: ``(labels, I, J, K)`` float16 segmentation probabilities on the
            image file's grid, with ``save_probabilities``; else ``None``.
    """

    case_id: str
    segmentation: np.ndarray
    affine: np.ndarray
    probabilities: np.ndarray | None
    predicted: int | None
    logits: dict[str, np.ndarray]
    uncalibrated: np.ndarray | None = None
    seg_probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class PredictionRun:
    """What :meth:`Predictor.predict <multitask_unet.inference.Predictor.predict>` did.

    Attributes:
        output_dir: The prediction folder.
        predicted: Cases predicted in this run.
        skipped: Cases found finished and left as they were.
        csv_path: ``OUT/predictions.csv``, or ``None`` for a model without classification head.
    """

    output_dir: Path
    predicted: tuple[str, ...]
    skipped: tuple[str, ...]
    csv_path: Path | None
