"""Per-case segmentation metrics: Dice per label and per region, NSD and HD95 per region.

Empty references follow *Metrics Reloaded* (Maier-Hein et al., Nature Methods 2024) as its
reference implementation (``MetricsReloaded.metrics.pairwise_measures``) computes them:

* reference **and** prediction empty: a true negative. Dice = 1 (Metrics Reloaded's F-beta
  returns 1 when there is neither a false positive nor a false negative) and HD95 = 0 mm (its
  distance measures return 0 for two empty masks). NSD = 1 by the same reasoning (the package
  leaves its NSD at 0/0 there; we score agreement on nothing as agreement). With
  ``both_empty="nan"`` Dice and NSD are NaN instead, so means leave such cases out.
* reference empty, prediction not (or the reverse): Dice = NSD = 0; HD95 has no finite value
  and is NaN (undefined) rather than an arbitrary "worst" distance.

Aggregates (see :mod:`multitask_unet.evaluation.report`) average over the cases where a value is
defined and report how many were left out (``n_undefined``); the per-case CSV keeps the NaN, so
a different policy (e.g. a worst-case distance) can be applied afterwards.

Example:
    >>> import numpy as np
    >>> ref = np.zeros((4, 5, 6), np.uint8); ref[1:3, 1:4, 1:5] = 1; ref[2, 2, 2:4] = 2
    >>> pred = ref.copy(); pred[1, 1, 1] = 0
    >>> row = evaluate_segmentation(pred, ref, spacing=(2.0, 1.0, 1.0))
    >>> round(row["dice_foreground"], 4), row["dice_label_2"], row["hd95_label_2"]
    (0.9787, 1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from multitask_unet.errors import ShapeError
from multitask_unet.evaluation.config import EvaluationConfig, Region
from multitask_unet.evaluation.surface import surface_metrics

__all__ = ["dice", "evaluate_segmentation", "region_mask"]


def dice(pred: np.ndarray, ref: np.ndarray, *, both_empty: float = 1.0) -> float:
    """Dice similarity coefficient ``2 |P & R| / (|P| + |R|)`` of two binary masks.

    Args:
        pred: Binary prediction, any shape, e.g. ``(D, H, W)``.
        ref: Binary reference, same shape.
        both_empty: Value when both masks are empty (Metrics Reloaded: 1.0).

    Returns:
        Dice in ``[0, 1]``; 0.0 when exactly one mask is empty.

    Example:
        >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.6666666666666666
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ShapeError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    if total == 0:
        return float(both_empty)
    return 2.0 * int(np.count_nonzero(pred & ref)) / total


def region_mask(label_map: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels whose label is one of ``labels``.

    Args:
        label_map: Integer label map, e.g. ``(D, H, W)`` with values 0, 1, 2.
        labels: Labels forming the region, e.g. ``(1, 2)`` for the whole pancreas.
    """
    return np.isin(label_map, np.asarray(labels, dtype=np.int64))


def evaluate_segmentation(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    config: EvaluationConfig | None = None,
) -> dict[str, float]:
    """All segmentation metrics of one case.

    Args:
        pred: Predicted integer label map, shape ``(D, H, W)``.
        ref: Reference label map on the same grid.
        spacing: Voxel size in mm per axis, in the arrays' axis order.
        config: Regions, labels, tolerance and empty conventions. Regions or labels left None
            are those of the labels found in ``pred`` and ``ref``, named ``label_<k>`` (see
            :meth:`EvaluationConfig.for_labels`); :func:`~multitask_unet.evaluation.evaluate`
            fills them from the dataset's label names instead.

    Returns:
        ``dice_label_<k>`` for every label of ``config.labels``; ``dice_<region>``,
        ``nsd_<region>``, ``hd95_<region>`` (mm), ``ref_volume_ml_<region>`` and
        ``pred_volume_ml_<region>`` for every region.

    Raises:
        ShapeError: the two maps do not share a grid or the spacing does not fit.
    """
    config = config or EvaluationConfig()
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if config.regions is None or config.labels is None:
        found = [int(v) for v in np.union1d(np.unique(pred), np.unique(ref)) if v > 0]
        if found:
            config = config.for_labels({f"label_{v}": v for v in found})
        else:  # nothing to score in two empty maps
            config = replace(config, regions=config.regions or (), labels=config.labels or ())
    if pred.shape != ref.shape:
        raise ShapeError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}; "
            "predictions must be written on the reference grid"
        )
    if len(spacing) != ref.ndim:
        raise ShapeError(f"spacing {tuple(spacing)} must hold one size per axis of {ref.shape}")
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    both_empty = config.both_empty_value
    row: dict[str, float] = {}
    for label in config.labels:
        row[f"dice_label_{label}"] = dice(pred == label, ref == label, both_empty=both_empty)
    for region in config.regions:
        row.update(_region_metrics(pred, ref, region, spacing, config, voxel_ml))
    return row


def _region_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    region: Region,
    spacing: Sequence[float],
    config: EvaluationConfig,
    voxel_ml: float,
) -> dict[str, float]:
    p = region_mask(pred, region.labels)
    r = region_mask(ref, region.labels)
    both_empty = config.both_empty_value
    name = region.key
    nsd, hd = surface_metrics(
        p,
        r,
        spacing=spacing,
        tolerance_mm=config.nsd_tolerance_mm,
        percentile=config.hd_percentile,
        both_empty=both_empty,
    )
    return {
        f"dice_{name}": dice(p, r, both_empty=both_empty),
        f"nsd_{name}": nsd,
        f"hd95_{name}": hd,
        f"ref_volume_ml_{name}": float(np.count_nonzero(r) * voxel_ml),
        f"pred_volume_ml_{name}": float(np.count_nonzero(p) * voxel_ml),
    }
