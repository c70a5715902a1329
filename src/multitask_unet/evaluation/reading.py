"""Read what an evaluation compares: a prediction folder and a reference dataset.

Prediction folder (written by the predictor)::

    OUT/CASE.nii.gz          uint8 label map on the grid of the case's image
    OUT/predictions.csv      case_id, prob_<class name> per class, predicted (integer class)

``predictions.csv`` is described in :mod:`multitask_unet.prediction_table`. Either part may be
absent (a segmentation-only or a classification-only model), not both.

Reference: any dataset :func:`multitask_unet.data.readers.read_dataset` reads (the study layout
``SPLIT/subtypeK/CASE.nii.gz``, nnU-Net raw datasets, CSV manifests); label maps are read with
:func:`multitask_unet.data.io.read_mask`, which rounds labels stored as floats (``1.0000153``)
and rejects values farther than 1e-3 from an integer.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from multitask_unet.data.io import read_mask
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError, DataError, DataWarning, ShapeError
from multitask_unet.evaluation.config import EvaluationConfig
from multitask_unet.prediction_table import PredictionTable

__all__ = [
    "check_class_order",
    "config_for_reference",
    "label_values",
    "prediction_files",
    "read_label_map",
    "read_predictions",
    "read_reference",
    "records_by_id",
    "with_reference_labels",
]


def prediction_files(pred_dir: Path) -> tuple[dict[str, Path], PredictionTable | None]:
    """The label maps (case id to ``CASE.nii.gz``) and ``predictions.csv`` of a prediction folder.

    Hidden files (temporary files of an interrupted writer) are left out.

    Raises:
        DataError: ``pred_dir`` does not exist, is a file, or holds neither part.
    """
    if not pred_dir.is_dir():
        problem = "is a file; it must be a folder" if pred_dir.exists() else "does not exist"
        raise DataError(
            f"the prediction folder {pred_dir} {problem}; give the folder that "
            "multitask-unet predict wrote (CASE.nii.gz label maps and/or predictions.csv)"
        )
    masks = {
        p.name.removesuffix(".nii.gz"): p
        for p in sorted(pred_dir.glob("*.nii.gz"))
        if not p.name.startswith(".")
    }
    csv_path = pred_dir / "predictions.csv"
    table = read_predictions(csv_path) if csv_path.is_file() else None
    if not masks and table is None:
        raise DataError(f"{pred_dir} holds no CASE.nii.gz label maps and no predictions.csv")
    return masks, table


def read_predictions(path: str | Path) -> PredictionTable:
    """Parse and check ``predictions.csv`` (:meth:`PredictionTable.read
    <multitask_unet.prediction_table.PredictionTable.read>`).

    Args:
        path: The CSV file.

    Raises:
        DataError: a column is missing, a value is not a number, a class is out of range or a
            case appears twice; the message names the file, row and fix.
    """
    return PredictionTable.read(path)


def read_reference(root: str | Path, *, layout: str = "auto") -> DatasetIndex:
    """Index the reference dataset; cases whose label map file is missing get ``mask=None``.

    Args:
        root: Dataset folder (or manifest CSV), or one split folder of the study layout
            (``DATA/validation``, with ``subtypeK/`` inside: the classes are read from those).
        layout: Layout name for :func:`~multitask_unet.data.readers.read_dataset`, or ``"auto"``.

    Raises:
        DataError: ``root`` is missing, of no known layout, or holds no case with a label map
            or a class.
    """
    root, split = Path(root), None
    if layout in ("auto", "study") and _is_study_split_folder(root):
        root, split = root.parent, root.name  # e.g. DATA/validation: its subtypeK/ give classes
    index = read_dataset(root, layout=layout)
    if split is not None:
        index = index.split(split)
    records = tuple(
        replace(r, mask=None) if r.mask is not None and not Path(r.mask).is_file() else r
        for r in index.records
    )
    if not any(r.mask is not None or r.label is not None for r in records):
        raise DataError(
            f"no reference case under {root} has a label map or a class; "
            "point --ref at the labelled dataset"
        )
    return replace(index, records=records)


def _is_study_split_folder(path: Path) -> bool:
    """A folder holding ``subtypeK/`` folders directly, as a split of the study layout does."""
    return path.is_dir() and any(
        child.is_dir() and re.fullmatch(r"subtype\d+", child.name) for child in path.iterdir()
    )


def check_class_order(table: PredictionTable, index: DatasetIndex, csv_path: Path) -> None:
    """Check that ``prob_<name>`` columns sit at the index of their class in the dataset.

    Raises:
        DataError: a dataset class name appears among the columns at another position.
    """
    for k, name in enumerate(index.class_names):
        if name in table.class_names and table.class_names.index(name) != k:
            raise DataError(
                f"{csv_path}: column prob_{name} is column {table.class_names.index(name)} of the "
                f"probabilities but {name} is class {k} of the reference; order the prob_ columns "
                f"by class: {', '.join('prob_' + n for n in index.class_names)}"
            )


def read_label_map(
    path: str | Path, *, like: str | Path | None = None
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """Read an integer label map with its spacing (mm) and affine.

    Args:
        path: A label map in any format :func:`~multitask_unet.data.io.read_mask` reads.
        like: Only used in error messages: the reference this map is compared with.

    Returns:
        ``(labels, spacing, affine)``: ``(X, Y, Z)`` integer array in the file's axis order,
        the voxel size per axis in mm, and the 4x4 voxel-to-world (RAS+) matrix.
    """
    path = Path(path)
    if not path.exists():
        needed = f" (needed for {like})" if like else ""
        raise DataError(f"label map {path} does not exist{needed}")
    volume = read_mask(path)
    if volume.array.ndim != 3:
        raise ShapeError(f"{path} must be a 3-D label map, got shape {volume.array.shape}")
    return volume.array, tuple(volume.spacing), np.asarray(volume.affine, dtype=np.float64)


def records_by_id(index: DatasetIndex) -> dict[str, CaseRecord]:
    """Case id to record."""
    return {r.case_id: r for r in index.records}


def label_values(labels: np.ndarray) -> set[int]:
    """The values of an integer label map (a histogram: much faster than sorting it)."""
    flat = labels.ravel()
    if flat.size and flat.min() >= 0:
        return {int(v) for v in np.flatnonzero(np.bincount(flat))}
    return {int(v) for v in np.unique(flat)}


def with_reference_labels(
    index: DatasetIndex, case_ids: Sequence[str], predictions: Mapping[str, Path] | None = None
) -> DatasetIndex:
    """``index`` with label names, read from the label maps of ``case_ids`` when none are
    declared.

    A reference without ``dataset.json`` declares no labels; every value found in its masks of
    ``case_ids``, and in ``predictions`` (case id to label map file), is then scored, named
    ``labelK`` (see :meth:`DatasetIndex.with_found_labels`): a label only predicted counts too.
    """
    if index.labels_declared:
        return index
    by_id = records_by_id(index)
    files = [by_id[c].mask for c in case_ids if c in by_id and by_id[c].mask is not None]
    files += [(predictions or {})[c] for c in case_ids if c in (predictions or {})]
    values: set[int] = set()
    for path in files:
        if Path(path).exists():
            values.update(label_values(read_label_map(path)[0]))
    return index.with_found_labels(values)


def config_for_reference(
    config: EvaluationConfig, index: DatasetIndex, predictions: Mapping[str, Path]
) -> tuple[EvaluationConfig, DatasetIndex]:
    """``config`` with the regions and labels left None filled from the reference's labels,
    checked against them, and ``index`` with its labels (:func:`with_reference_labels`).

    Args:
        config: The evaluation options.
        index: The reference dataset.
        predictions: Case id to predicted label map: these cases' reference masks, and the
            predictions, give the labels when none are declared.

    Raises:
        ConfigError: A region or label names a value the dataset declares no label for (it
            would score as empty everywhere), or the dataset has no foreground label and none
            were given. Labels only found in the masks (no ``dataset.json``) give a
            :class:`~multitask_unet.errors.DataWarning` instead: other cases may hold the value.
    """
    declared = index.labels_declared  # by dataset.json (or label_names)
    case_ids = sorted(predictions)
    index = with_reference_labels(index, case_ids, predictions)
    if declared:
        source, fix = f"the dataset {index.root}", ""
    else:
        source = f"the label maps of the {len(case_ids)} predicted cases under {index.root}"
        fix = "; if other cases hold the label, declare the labels in the dataset's dataset.json"
    config = config.for_labels(index.label_names)
    try:
        config.check_labels(index.label_names, source=source, fix=fix)
    except ConfigError as exc:
        if declared:
            raise
        # Found labels may miss one that only other cases hold: a warning, not a refusal.
        warnings.warn(f"{exc}; it is scored as empty where neither map has it", DataWarning, 2)
    return config, index
