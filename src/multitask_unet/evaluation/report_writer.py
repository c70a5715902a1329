"""Write an evaluation report: ``cases.csv``, ``summary.json`` and the figures, each atomically.

The report folder holds:

* ``cases.csv``: one row per evaluated case: ``case_id``, ``split``, ``label``,
  ``predicted``, ``prob_<class>`` and every segmentation metric. An empty cell means "not
  applicable" (e.g. no reference mask), ``nan`` means "undefined" (e.g. HD95 against an empty
  reference).
* ``summary.json``: every metric as ``{"estimate", "low", "high", "confidence", "n",
  "n_resamples", "n_undefined"}`` (percentile bootstrap over cases; JSON ``null`` for NaN), the
  confusion matrix, the case counts, the configuration and the conventions used.
* ``roc_curves.png``, ``confusion_matrix.png`` and ``reliability_diagram.png`` (top-label
  reliability, before and after calibration when ``predictions.csv`` also has
  ``uncalibrated_prob_<class>`` columns) for the classification head;
  ``dice_distribution.png``, ``nsd_distribution.png``, ``hd95_distribution.png`` and
  ``dice_vs_volume.png`` for the segmentation; ``overlays/`` (one picture per case on its image
  and a contact sheet, worst first: :mod:`multitask_unet.evaluation.overlays`), written by
  :func:`~multitask_unet.evaluation.evaluate`, which knows the image files.

Example:
    >>> import tempfile, pathlib
    >>> from multitask_unet.evaluation.report import EvaluationReport
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"case_id": "a", "label": None, "dice_lesion": 0.5}]
    >>> write_report(EvaluationReport(rows, {"dice_lesion": float("nan")}), out, figures=False)
    >>> print((out / "cases.csv").read_text().strip())
    case_id,label,dice_lesion
    a,,0.5
    >>> print((out / "summary.json").read_text().strip())
    {
      "dice_lesion": null
    }
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet._deprecation import renamed_kwargs

if TYPE_CHECKING:
    from multitask_unet.evaluation.report import EvaluationReport

__all__ = ["format_interval", "format_summary", "headline_metrics", "write_report"]

CLASSIFICATION_HEADLINE = ("auc_ovr_macro", "macro_f1", "balanced_accuracy")
"""Classification metrics that :func:`headline_metrics` lists after the regions' scores."""


@renamed_kwargs(out_dir="output_dir")
def write_report(report: EvaluationReport, output_dir: str | Path, *, figures: bool = True) -> None:
    """Write ``cases.csv``, ``summary.json`` and (optionally) the figures, each atomically.

    ``output_dir`` (created) was called ``out_dir``; that name still works with a
    ``FutureWarning``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "cases.csv", _cases_csv(report.cases))
    text = json.dumps(_json_safe(report.summary), indent=2, allow_nan=False)
    write_text_atomic(out / "summary.json", text + "\n")
    if not figures:
        return
    from multitask_unet.evaluation import figures as fig

    if report.y_true.size:
        fig.plot_roc_curves(
            report.y_true, report.scores, report.class_names, out / "roc_curves.png"
        )
        matrix = np.asarray(report.summary["confusion_matrix"]["counts"])
        fig.plot_confusion_matrix(matrix, report.class_names, out / "confusion_matrix.png")
        versions = {"as written": report.scores}
        if report.uncalibrated is not None:
            versions = {"uncalibrated": report.uncalibrated, "calibrated": report.scores}
        fig.plot_reliability_diagram(report.y_true, versions, out / "reliability_diagram.png")
    names = list(dict.fromkeys(k for row in report.cases for k in row))

    def columns(prefix: str) -> dict[str, np.ndarray]:
        return {
            k: np.array([_nan(row.get(k)) for row in report.cases if k in row])
            for k in names
            if k.startswith(prefix)
        }

    if dice := columns("dice_"):
        fig.plot_dice_distribution(dice, out / "dice_distribution.png")
    if nsd := columns("nsd_"):
        fig.plot_distribution(nsd, out / "nsd_distribution.png", ylabel="NSD",
                              title="Normalised surface Dice per case", ylim=(-0.02, 1.02))  # fmt: skip
    if hd95 := columns("hd95_"):
        fig.plot_distribution(hd95, out / "hd95_distribution.png", ylabel="HD95 (mm)",
                              title="95th-percentile Hausdorff distance per case")  # fmt: skip
    regions = [k.removeprefix("ref_volume_ml_") for k in names if k.startswith("ref_volume_ml_")]
    if regions:
        fig.plot_dice_against_volume(report.cases, regions, out / "dice_vs_volume.png")


def headline_metrics(summary: Mapping[str, Any]) -> list[str]:
    """The summary keys worth printing: Dice, NSD and HD95 of every scored region, then the
    classification metrics (:data:`CLASSIFICATION_HEADLINE`)."""
    regions = [r["key"] for r in (summary.get("config") or {}).get("regions") or ()]
    scores = [f"{metric}_{region}" for region in regions for metric in ("dice", "nsd", "hd95")]
    return [*scores, *CLASSIFICATION_HEADLINE]


def format_interval(record: Mapping[str, Any], *, digits: int = 3) -> str:
    """``0.812 [95% CI 0.774, 0.851]`` for one summary entry; ``n/a`` where undefined."""

    def number(value: Any) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    text = number(record.get("estimate"))
    if record.get("low") is None and record.get("high") is None:
        return text
    level = round(100 * record.get("confidence", 0.95))
    return f"{text} [{level}% CI {number(record.get('low'))}, {number(record.get('high'))}]"


def format_summary(
    summary: Mapping[str, Any],
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    *,
    digits: int = 3,
) -> str:
    """One line per metric of an evaluation summary, with its interval.

    Args:
        summary: :attr:`EvaluationReport.summary` or a loaded ``summary.json``.
        metrics: Summary keys, or keys mapped to the labels printed; default
            :func:`headline_metrics`. Keys the summary lacks are left out (e.g. AUC without a
            classification head).
        digits: Decimals of every number.

    Example:
        >>> entry = {"estimate": 0.8, "low": 0.7, "high": 0.9, "confidence": 0.95}
        >>> print(format_summary({"dice_organ": entry}, {"dice_organ": "organ Dice"}))
        organ Dice  0.800 [95% CI 0.700, 0.900]
    """
    labels = dict(metrics) if isinstance(metrics, Mapping) else None
    keys = list(labels or (headline_metrics(summary) if metrics is None else metrics))
    present = [k for k in keys if isinstance(summary.get(k), Mapping)]
    width = max((len((labels or {}).get(k, k)) for k in present), default=0)
    return "\n".join(
        f"{(labels or {}).get(k, k):<{width}}  {format_interval(summary[k], digits=digits)}"
        for k in present
    )


def _cases_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else _fmt(row[k]) for k in columns})
    return buffer.getvalue()


def _fmt(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
