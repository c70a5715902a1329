"""Evaluate a prediction folder against a reference dataset.

:func:`evaluate` computes an :class:`EvaluationReport` and, given ``output_dir``, writes it with
:func:`~multitask_unet.evaluation.report_writer.write_report`: ``cases.csv`` (one row per
case), ``summary.json`` (every metric as ``{"estimate", "low", "high", "confidence", "n",
"n_resamples", "n_undefined"}``, percentile bootstrap over cases) and the figures.

Calibration of the class probabilities: ``ece``, ``brier`` and ``nll`` of the ``prob_`` columns
and, with ``uncalibrated_prob_<class>`` columns, ``ece_uncalibrated``, ``brier_uncalibrated``
and ``nll_uncalibrated``; definitions and binning in
:mod:`multitask_unet.evaluation.calibration_metrics` and in ``conventions["calibration"]``.

Segmentation summaries are means over the cases where a value is defined; ``n_undefined``
counts the rest (the empty-reference conventions are in
:mod:`multitask_unet.evaluation.segmentation`). Classification metrics are computed over all
cases with a known class (``n_undefined`` is 0 for them); all of them are recomputed together on
each bootstrap resample, and resamples where a metric is undefined (e.g. an AUC whose class was
not drawn) are left out of its interval.

Example:
    >>> summary = summarize(
    ...     [{"dice_lesion": 0.8}, {"dice_lesion": 0.6}],
    ...     config=EvaluationConfig(n_bootstrap=100),
    ... )
    >>> round(summary["dice_lesion"]["estimate"], 3), summary["dice_lesion"]["n"]
    (0.7, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet._folders import check_output_folder
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError, ShapeError
from multitask_unet.evaluation.bootstrap import bootstrap_many, bootstrap_mean
from multitask_unet.evaluation.calibration_metrics import (
    CALIBRATION_BINNING,
    read_uncalibrated,
    summarize_calibration,
)
from multitask_unet.evaluation.classification import confusion_matrix, evaluate_classification
from multitask_unet.evaluation.config import EvaluationConfig
from multitask_unet.evaluation.overlays import OverlayCase, write_overlays
from multitask_unet.evaluation.reading import (
    check_class_order,
    config_for_reference,
    label_values,
    prediction_files,
    read_label_map,
    read_reference,
    records_by_id,
)
from multitask_unet.evaluation.report_writer import format_summary, write_report
from multitask_unet.evaluation.segmentation import evaluate_segmentation
from multitask_unet.prediction_table import PredictionTable

__all__ = ["CONVENTIONS", "EvaluationReport", "evaluate", "summarize"]

CONVENTIONS: dict[str, str] = {
    "empty_reference": (
        "As the Metrics Reloaded reference implementation: reference and prediction both "
        "empty -> Dice = 1, HD95 = 0 mm, and NSD = 1 (config both_empty='one'; 'nan' leaves "
        "such cases out of Dice/NSD means); exactly one empty -> Dice = NSD = 0, HD95 "
        "undefined (NaN, left out of the mean and counted in n_undefined)."
    ),
    "aggregation": (
        "Segmentation metrics are means over the cases where the value is defined; n_undefined "
        "counts the cases left out. Intervals: percentile bootstrap over cases, seeded."
    ),
    "surface": (
        "Surface = mask voxels with a background face neighbour; distances in mm between voxel "
        "centres (spacing-aware EDT). NSD (Nikolov et al.) = share of both surfaces within the "
        "tolerance; HD95 = max of the two directed 95th percentiles (MONAI, Metrics Reloaded)."
    ),
    "classification": (
        "AUC: one-vs-rest per class (NaN when a class has no positive or no negative case); "
        "auc_ovr_macro = mean over defined classes. macro_f1 over classes present in reference "
        "or prediction (F1 = 0 without true positives); balanced_accuracy = mean recall over "
        "classes present in the reference; confusion matrix rows = reference, columns = predicted."
    ),
    "calibration": CALIBRATION_BINNING.format(n_bins=15)
    + " '_uncalibrated' metrics use the uncalibrated_prob_<class> columns of predictions.csv.",
}
"""The conventions written into every ``summary.json``."""


@dataclass
class EvaluationReport:
    """What :func:`evaluate` computed.

    Attributes:
        cases: One dict per case (the rows of ``cases.csv``).
        summary: The content of ``summary.json``.
        class_names: Names of the classes, in class order (empty without classification).
        y_true: ``(N,)`` reference classes of the classified cases.
        scores: ``(N, K)`` probabilities of the classified cases.
        uncalibrated: ``(N, K)`` their probabilities before calibration, or None.
    """

    cases: list[dict[str, Any]]
    summary: dict[str, Any]
    class_names: tuple[str, ...] = ()
    y_true: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    uncalibrated: np.ndarray | None = None

    def format_summary(
        self, metrics: Sequence[str] | Mapping[str, str] | None = None, *, digits: int = 3
    ) -> str:
        """The headline metrics with their intervals, one per line (:func:`format_summary
        <multitask_unet.evaluation.report_writer.format_summary>`)."""
        return format_summary(self.summary, metrics, digits=digits)


def summarize(
    segmentation: Sequence[Mapping[str, float]],
    *,
    y_true: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    uncalibrated: np.ndarray | None = None,
    config: EvaluationConfig | None = None,
) -> dict[str, Any]:
    """Aggregate per-case results into summary metrics with bootstrap intervals.

    Args:
        segmentation: Per-case segmentation metrics (from :func:`evaluate_segmentation`).
        y_true: ``(N,)`` reference classes, or None without classification.
        scores: ``(N, K)`` class probabilities.
        y_pred: ``(N,)`` predicted classes; default ``scores.argmax(1)``.
        class_names: K names; default ``class<k>``.
        uncalibrated: ``(N, K)`` probabilities before calibration (adds the
            ``<metric>_uncalibrated`` calibration metrics), or None.
        config: Bootstrap options (default :class:`EvaluationConfig`).

    Returns:
        Metric name to interval dict (see the module docstring), plus ``confusion_matrix``;
        with classification also ``ece``, ``brier`` and ``nll``.
    """
    config = config or EvaluationConfig()
    boot = {"n_resamples": config.n_bootstrap, "confidence": config.confidence, "seed": config.seed}
    summary: dict[str, Any] = {}
    metric_names = [k for k in (segmentation[0] if segmentation else {}) if _is_score(k)]
    for name in metric_names:
        values = np.array([row[name] for row in segmentation], dtype=np.float64)
        record = bootstrap_mean(values, **boot).to_dict()
        record["n_undefined"] = int(np.isnan(values).sum())
        summary[name] = record
    if y_true is not None and scores is not None:
        summary.update(_summarize_classification(y_true, scores, y_pred, class_names, boot))
        summary.update(summarize_calibration(y_true, scores, uncalibrated=uncalibrated, **boot))
    return summary


@renamed_kwargs(out_dir="output_dir")
def evaluate(
    pred_dir: str | Path,
    ref_root: str | Path,
    *,
    output_dir: str | Path | None = None,
    split: str | None = None,
    layout: str = "auto",
    config: EvaluationConfig | None = None,
    figures: bool = True,
) -> EvaluationReport:
    """Compare a prediction folder with a reference dataset; optionally write the report
    (with ``figures``, also ``overlays/``: every case's label maps on its image).

    Args:
        pred_dir: Folder with ``CASE.nii.gz`` label maps and/or ``predictions.csv``.
        ref_root: Reference dataset, e.g. in the study layout (``SPLIT/subtypeK/CASE.nii.gz``).
        output_dir: Report folder; None computes without writing (formerly ``out_dir``, which
            still works with a ``FutureWarning``).
        split: Evaluate exactly this split of the reference: every case of it must have a
            prediction. None evaluates the predicted cases, which must all be in the reference.
        layout: Layout of ``ref_root`` (``"study"``, ``"nnunet"``, ``"manifest"``) or ``"auto"``.
        config: Regions, tolerance, bootstrap (default :class:`EvaluationConfig`: one region
            per foreground label of the dataset and their union).
        figures: Also write the PNG figures (needs matplotlib).

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        ConfigError: ``output_dir`` is a file or lies below one (refused before anything is
            read), or a region or label names a value the dataset does not have.
        DataError: ``pred_dir`` is missing, a file or empty, or does not fit the reference.

    Example:
        >>> report = evaluate("runs/pred", "data/pancreas", output_dir="runs/report")  # doctest: +SKIP
        >>> report.summary["dice_foreground"]["estimate"]  # doctest: +SKIP
        0.89
    """
    config = config or EvaluationConfig()
    pred_dir = Path(pred_dir)
    if output_dir is not None:
        check_output_folder(output_dir, what="the report folder output_dir")
        if figures:
            from multitask_unet.evaluation.figures import require_matplotlib

            require_matplotlib()
    masks, table = prediction_files(pred_dir)
    index = read_reference(ref_root, layout=layout)
    if masks:  # regions and labels: the dataset's, or checked against them
        config, index = config_for_reference(config, index, masks)
    uncalibrated = None
    if table is not None:
        check_class_order(table, index, pred_dir / "predictions.csv")
        uncalibrated = read_uncalibrated(
            pred_dir / "predictions.csv", table.case_ids, table.class_names
        )
    reference = records_by_id(index)
    selected = _select_cases(reference, masks, table, split, pred_dir, Path(ref_root))
    probs = dict(zip(table.case_ids, zip(table.probabilities, table.predicted))) if table else {}
    raw = dict(zip(table.case_ids, uncalibrated)) if uncalibrated is not None and table else {}
    rows, seg_rows, labelled = [], [], []
    for case_id in selected:
        ref = reference[case_id]
        row: dict[str, Any] = {"case_id": case_id, "split": ref.split, "label": ref.label}
        if table is not None:
            p, predicted = probs[case_id]
            row["predicted"] = int(predicted)
            row.update({f"prob_{n}": float(v) for n, v in zip(table.class_names, p)})
            if ref.label is not None:
                labelled.append((ref.label, p, predicted, raw.get(case_id)))
        if ref.mask is not None and masks:
            metrics = _segment_case(masks[case_id], ref.mask, config, index.label_names)
            row.update(metrics)
            seg_rows.append(metrics)
        rows.append(row)
    y_true = scores = y_pred = raw_scores = None
    names: tuple[str, ...] = table.class_names if table else ()
    if labelled:
        y_true = np.array([t for t, _, _, _ in labelled], dtype=np.int64)
        scores = np.stack([p for _, p, _, _ in labelled])
        y_pred = np.array([q for _, _, q, _ in labelled], dtype=np.int64)
        raw_scores = np.stack([r for *_, r in labelled]) if raw else None
        if y_true.max() >= len(names):
            raise DataError(
                f"reference class {int(y_true.max())} has no prob_ column in "
                f"{pred_dir / 'predictions.csv'} (columns for {names})"
            )
    summary = summarize(
        seg_rows,
        y_true=y_true,
        scores=scores,
        y_pred=y_pred,
        class_names=names,
        uncalibrated=raw_scores,
        config=config,
    )
    summary["cases"] = {
        "evaluated": len(rows),
        "segmentation": len(seg_rows),
        "classification": len(labelled),
        "split": split,
    }
    if table is not None and not labelled:
        summary["cases"]["why_no_classification"] = (
            f"none of the {len(rows)} evaluated reference cases under {ref_root} has a class "
            "(study layout: SPLIT/subtypeK/ folders; nnU-Net and manifest layouts: a labels "
            "file); point --ref at the labelled dataset or one of its split folders"
        )
    summary["config"] = config.to_dict()
    summary["conventions"] = CONVENTIONS
    report = EvaluationReport(rows, summary, names)
    if y_true is not None:
        report.y_true, report.scores, report.uncalibrated = y_true, scores, raw_scores
    if output_dir is not None:
        write_report(report, output_dir, figures=figures)
        if figures and seg_rows:
            write_overlays(_overlay_cases(rows, reference, masks), Path(output_dir) / "overlays")
    return report


def _overlay_cases(
    rows: list[dict[str, Any]], reference: dict[str, CaseRecord], masks: dict[str, Path]
) -> list[OverlayCase]:
    """The scored cases to draw; the score is the mean Dice of the regions (worst first)."""
    cases = []
    for row in rows:
        dice = [
            v for k, v in row.items() if k.startswith("dice_") and not k.startswith("dice_label_")
        ]
        ref = reference[row["case_id"]]
        if ref.mask is None or row["case_id"] not in masks or not ref.images:
            continue
        score = float(np.nanmean(dice)) if dice and not np.isnan(dice).all() else None
        cases.append(OverlayCase(row["case_id"], ref.images[0], masks[row["case_id"]], ref.mask,
                                 score))  # fmt: skip
    return cases


def _summarize_classification(
    y_true: np.ndarray,
    scores: np.ndarray,
    y_pred: np.ndarray | None,
    class_names: Sequence[str] | None,
    boot: dict[str, Any],
) -> dict[str, Any]:
    scores = np.asarray(scores, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = scores.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
    k = scores.shape[1]
    names = tuple(class_names) if class_names else tuple(f"class{i}" for i in range(k))

    def statistics(idx: np.ndarray) -> dict[str, float]:
        return evaluate_classification(
            y_true[idx], scores[idx], y_pred=y_pred[idx], class_names=names
        )

    out: dict[str, Any] = {}
    for name, interval in bootstrap_many(statistics, y_true.size, **boot).items():
        out[name] = {**interval.to_dict(), "n_undefined": 0}
    out["confusion_matrix"] = {
        "classes": list(names),
        "rows": "reference",
        "columns": "predicted",
        "counts": confusion_matrix(y_true, y_pred, num_classes=k).tolist(),
    }
    return out


def _segment_case(
    pred_path: Path, ref_path: Path, config: EvaluationConfig, labels: Mapping[str, int]
) -> dict[str, float]:
    ref, spacing, ref_affine = read_label_map(ref_path)
    pred, _, pred_affine = read_label_map(pred_path, like=ref_path)
    unknown = sorted(label_values(pred) - {int(v) for v in labels.values()})
    if labels and unknown:
        raise DataError(
            f"{pred_path} holds label value(s) {unknown} that the reference dataset does not "
            f"declare (its labels: {dict(labels)}); predict with a model of this dataset"
        )
    if pred.shape != ref.shape:
        raise ShapeError(
            f"{pred_path} has shape {pred.shape} but its reference {ref_path} has {ref.shape}; "
            "write predictions on the grid of the input image"
        )
    if not np.allclose(pred_affine, ref_affine, atol=1e-3):
        raise DataError(
            f"{pred_path} and {ref_path} have different affines (voxel-to-world matrices); "
            "write predictions with the input image's geometry"
        )
    return evaluate_segmentation(pred, ref, spacing=spacing, config=config)


def _select_cases(
    reference: Mapping[str, CaseRecord],
    masks: Mapping[str, Path],
    table: PredictionTable | None,
    split: str | None,
    pred_dir: Path,
    ref_root: Path,
) -> list[str]:
    predicted = set(masks) | set(table.case_ids if table else ())
    if split is not None:
        wanted = sorted(k for k, v in reference.items() if v.split == split)
        if not wanted:
            splits = sorted({v.split for v in reference.values()})
            raise DataError(
                f"split {split!r} not found under {ref_root}; pass one of {splits} with --split, "
                "or leave --split out to score every predicted case"
            )
    else:
        wanted = sorted(predicted)
    unknown = sorted(predicted - set(reference)) if split is None else []
    if unknown:
        raise DataError(
            f"{len(unknown)} predicted cases are not in the reference {ref_root}: {unknown[:5]}; "
            "check --pred and --ref"
        )
    missing = []
    for case_id in wanted:
        ref = reference[case_id]
        if masks and ref.mask is not None and case_id not in masks:
            missing.append(f"{case_id}.nii.gz")
        if table is not None and case_id not in table.case_ids:
            missing.append(f"{case_id} in predictions.csv")
    if missing:
        raise DataError(
            f"{pred_dir} lacks predictions for {len(missing)} cases: {missing[:5]}; predict them "
            f"into {pred_dir} (multitask-unet predict), or choose the cases with --split"
        )
    return wanted


def _is_score(name: str) -> bool:
    return name.startswith(("dice_", "nsd_", "hd95_"))
