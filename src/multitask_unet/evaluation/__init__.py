"""Evaluation of joint segmentation and classification: metrics, intervals, reports, figures.

Segmentation: Dice per label and per region (by default one region per foreground label of the
dataset, named after it, and their union ``foreground``; a study names its own, e.g.
:data:`PANCREAS_REGIONS`), normalised surface distance and HD95 in millimetres. Classification: one-vs-rest AUC, macro F1, balanced accuracy, confusion matrix.
Every summary value carries a seeded percentile-bootstrap interval; empty references follow
Metrics Reloaded (see :mod:`multitask_unet.evaluation.segmentation`).

Example:
    >>> import numpy as np
    >>> from multitask_unet.evaluation import dice, normalized_surface_distance
    >>> a = np.zeros((6, 6, 6), bool); a[1:5, 1:5, 1:5] = True
    >>> dice(a, a), normalized_surface_distance(a, a, spacing=(1, 1, 3), tolerance_mm=1.0)
    (1.0, 1.0)
"""

from __future__ import annotations

from multitask_unet.evaluation.bootstrap import (
    Interval,
    bootstrap_ci,
    bootstrap_many,
    bootstrap_mean,
)
from multitask_unet.evaluation.classification import (
    balanced_accuracy,
    confusion_matrix,
    evaluate_classification,
    macro_f1,
    roc_auc_ovr,
    roc_curve,
)
from multitask_unet.evaluation.comparison import compare_reports
from multitask_unet.evaluation.config import PANCREAS_REGIONS, EvaluationConfig, Region
from multitask_unet.evaluation.report import EvaluationReport, evaluate, summarize
from multitask_unet.evaluation.report_writer import format_interval, format_summary, write_report
from multitask_unet.evaluation.segmentation import dice, evaluate_segmentation, region_mask
from multitask_unet.evaluation.surface import (
    hd95,
    normalized_surface_distance,
    surface_distances,
    surface_metrics,
)

__all__ = [
    "PANCREAS_REGIONS",
    "EvaluationConfig",
    "EvaluationReport",
    "Interval",
    "Region",
    "balanced_accuracy",
    "bootstrap_ci",
    "bootstrap_many",
    "bootstrap_mean",
    "compare_reports",
    "confusion_matrix",
    "dice",
    "evaluate",
    "evaluate_classification",
    "evaluate_segmentation",
    "format_interval",
    "format_summary",
    "hd95",
    "macro_f1",
    "normalized_surface_distance",
    "region_mask",
    "roc_auc_ovr",
    "roc_curve",
    "summarize",
    "surface_distances",
    "surface_metrics",
    "write_report",
]
