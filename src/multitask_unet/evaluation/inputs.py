"""Read what an evaluation compares: a prediction folder and a reference dataset.

Prediction folder (written by the predictor)::

    OUT/CASE.nii.gz          uint8 label map on the grid of the case's image
    OUT/predictions.csv      case_id, prob_<class name> per class, predicted (integer class)

The ``prob_`` columns are in class order: column k holds the probability of class k, the class
that the reference layout stores in ``subtype<k>/``. Either part may be absent (a
segmentation-only or a classification-only model), not both.

Reference: a dataset in the study layout, ``SPLIT/subtypeK/CASE.nii.gz`` (label map) beside
``CASE_0000.nii.gz`` (image); the class of a case is ``K`` from its folder.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multitask_unet.errors import DataError, ShapeError

__all__ = [
    "PredictionTable",
    "ReferenceCase",
    "read_label_map",
    "read_predictions",
    "read_reference",
]

_IMAGE = re.compile(r"_\d{4}$")
_SUBTYPE = re.compile(r"^subtype(\d+)$")
_LABEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PredictionTable:
    """The class probabilities of ``predictions.csv``.

    Attributes:
        case_ids: N case identifiers, in file order.
        class_names: K names, the suffixes of the ``prob_<name>`` columns.
        probabilities: ``(N, K)`` float array.
        predicted: ``(N,)`` int array, the predicted class of each case.
    """

    case_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    predicted: np.ndarray


@dataclass(frozen=True)
class ReferenceCase:
    """One reference case: where its label map is and what its class is."""

    case_id: str
    split: str
    label: int | None
    mask: Path | None


def read_predictions(path: str | Path) -> PredictionTable:
    """Parse and check ``predictions.csv``.

    Args:
        path: The CSV file.

    Raises:
        DataError: a column is missing, a value is not a number, a class is out of range or a
            case appears twice; the message names the file, row and fix.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    prob_columns = [c for c in columns if c.startswith("prob_")]
    if "case_id" not in columns or not prob_columns:
        raise DataError(
            f"{path} needs a 'case_id' column and one 'prob_<class name>' column per class; "
            f"found columns {columns}"
        )
    ids, probs, predicted = [], [], []
    for line, row in enumerate(rows, start=2):
        ids.append(row["case_id"].strip())
        try:
            values = [float(row[c]) for c in prob_columns]
            guess = row.get("predicted")
            pred = int(float(guess)) if guess not in (None, "") else int(np.argmax(values))
        except (TypeError, ValueError):
            raise DataError(
                f"{path} line {line}: probabilities and 'predicted' must be numbers"
            ) from None
        if not all(math.isfinite(v) for v in values) or not 0 <= pred < len(prob_columns):
            raise DataError(
                f"{path} line {line}: probabilities must be finite and 'predicted' an integer in "
                f"[0, {len(prob_columns)}), got {values} and {pred}"
            )
        probs.append(values)
        predicted.append(pred)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"{path} lists cases more than once: {duplicates}")
    return PredictionTable(
        case_ids=tuple(ids),
        class_names=tuple(c.removeprefix("prob_") for c in prob_columns),
        probabilities=np.asarray(probs, dtype=np.float64).reshape(len(ids), len(prob_columns)),
        predicted=np.asarray(predicted, dtype=np.int64),
    )


def read_reference(root: str | Path) -> dict[str, ReferenceCase]:
    """Find the reference cases of a dataset in the study layout.

    Args:
        root: Dataset folder holding ``SPLIT/subtypeK/CASE.nii.gz`` label maps.

    Returns:
        Case id to :class:`ReferenceCase`, for every case with a label map or a known class.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"reference folder {root} does not exist")
    cases: dict[str, ReferenceCase] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in [split_dir, *sorted(p for p in split_dir.iterdir() if p.is_dir())]:
            match = _SUBTYPE.match(folder.name)
            label = int(match.group(1)) if match else None
            for file in sorted(folder.glob("*.nii.gz")):
                stem = file.name.removesuffix(".nii.gz")
                image_only = _IMAGE.search(stem)
                case_id = _IMAGE.sub("", stem)
                if case_id in cases and cases[case_id].split != split_dir.name:
                    raise DataError(f"case {case_id} appears in two splits of {root}")
                old = cases.get(case_id)
                mask = old.mask if old else None
                cases[case_id] = ReferenceCase(
                    case_id, split_dir.name, label, mask if image_only else file
                )
    cases = {k: v for k, v in cases.items() if v.mask is not None or v.label is not None}
    if not cases:
        raise DataError(
            f"no reference cases under {root}; expected SPLIT/subtypeK/CASE.nii.gz label maps"
        )
    return cases


def read_label_map(
    path: str | Path, *, like: str | Path | None = None
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """Read an integer label map with its spacing (mm) and affine.

    Float-stored labels are rounded when within 1e-3 of an integer (some datasets store
    ``1.0000153``), and rejected otherwise.

    Args:
        path: A NIfTI label map.
        like: Only used in error messages: the file this map must match.

    Returns:
        ``(labels, spacing, affine)``: ``(D, H, W)`` int16 array in the file's axis order, the
        voxel size per axis, and the 4x4 voxel-to-world matrix.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"label map {path} does not exist" + (f" (needed for {like})" if like else "")
        )
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ShapeError(f"{path} must be a 3-D label map, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        worst = float(np.max(np.abs(rounded - data))) if data.size else 0.0
        if worst > _LABEL_TOLERANCE:
            raise DataError(
                f"{path} holds non-integer labels (off by up to {worst:.3g}); "
                "store the label map as integers"
            )
        data = rounded
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    return data.astype(np.int16), spacing, np.asarray(image.affine, dtype=np.float64)
