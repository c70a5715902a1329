"""Check a dataset before anything is written, reporting every problem in one pass.

:func:`validate_dataset` reads every image and mask once (in a few threads) and returns a
:class:`~multitask_unet.data.validation_report.ValidationReport`: errors make the data unusable as it is,
warnings describe what the pipeline will do about a harmless oddity (e.g. mask values such as
``1.0000153`` rounded to ``1``). Each issue names the file and the fix.

Checked per case: missing image or mask; unreadable or truncated files, headers that claim more
voxels than their file holds or a spacing of 0 (:mod:`~multitask_unet.data.nifti_checks`);
2D and 4D volumes; NaN or Inf intensities; image/mask (and channel/channel) shape, spacing,
origin and direction mismatches beyond ``geometry_tolerance``; non-integer mask values (rounded
within ``label_tolerance``, an error beyond it); negative mask values; mask values outside the
declared labels. Warnings: links to files outside the dataset folder, NIfTI headers that
ITK-based tools read differently, constant images, masks without foreground. Checked per
dataset: duplicate case ids, empty splits and subtype folders, labels contradicting their
folder, subtypes without training cases, segmentation labels (declared, else found in the
masks) not numbered 0, 1, 2, ... without gaps (nnU-Net's rule).

Example:
    >>> from multitask_unet.data.phantoms import write_phantom_dataset
    >>> import tempfile
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=3, n_validation=0, n_test=0,
    ...                              shape=(24, 24, 12)).root
    >>> validate_dataset(root).ok
    True
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from multitask_unet.data.canonical import constant_value, grid_differences
from multitask_unet.data.io import Volume, image_suffix, read_image
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.data.readers.labels import CaseLabels, LabelsSource
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation_report import Issue, ValidationReport
from multitask_unet.errors import DataError

__all__ = ["validate_dataset"]

_GRID_FIX = "resample the mask onto the image grid (same shape, spacing, origin and direction)"


def validate_dataset(
    data: str | Path | DatasetIndex,
    *,
    layout: str = "auto",
    labels: LabelsSource | CaseLabels | None = None,
    label_tolerance: float = 1e-3,
    geometry_tolerance: float = 1e-3,
    workers: int | None = None,
) -> ValidationReport:
    """Check every case of a dataset and report all problems at once.

    Args:
        data: A dataset folder (or manifest) or a :class:`DatasetIndex` already read.
        layout: Layout name when ``data`` is a path (``"auto"`` detects it).
        labels: Case labels when ``data`` is a path (see :func:`read_dataset`).
        label_tolerance: Mask values within this distance of an integer are rounded (one
            warning per file); farther values are errors.
        geometry_tolerance: Relative tolerance on spacing, on origin (in voxels) and on
            direction cosines between the channels and the mask of a case.
        workers: Threads reading files (default: up to 4).

    Returns:
        The :class:`ValidationReport`; ``report.ok`` is ``False`` when there is any error.
    """
    start = time.perf_counter()
    if isinstance(data, DatasetIndex):
        index = data
    else:
        try:
            index = read_dataset(data, layout=layout, labels=labels)
        except DataError as exc:
            fix = "fix the path, the layout or the labels file as described"
            issue = Issue("error", str(exc), fix, file=Path(data))
            return ValidationReport((issue,), root=Path(data))
    label_values = frozenset(index.label_names.values())

    root = Path(index.root).resolve()

    def check(record: CaseRecord) -> tuple[list[Issue], int, list[int]]:
        return _check_case(record, label_values, label_tolerance, geometry_tolerance, root)

    n_workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    if n_workers == 1 or len(index) < 2:
        results = [check(r) for r in index.records]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(check, index.records))
    issues = list(index.issues)
    found: dict[int, Path] = {}  # mask value -> a mask holding it
    for record, (case_issues, _, values) in zip(index.records, results):
        issues.extend(case_issues)
        found.update((v, record.mask) for v in values if v not in found)  # type: ignore[misc]
    issues.extend(_check_index(index))
    issues.extend(_check_numbering(index, found))
    return ValidationReport(
        tuple(issues),
        root=index.root,
        n_cases=len(index),
        n_files=sum(n for _, n, _ in results),
        seconds=time.perf_counter() - start,
    )


def _check_case(
    record: CaseRecord,
    label_values: frozenset[int],
    label_tol: float,
    geometry_tol: float,
    root: Path,
) -> tuple[list[Issue], int, list[int]]:
    """The case's issues, how many files were opened and the values found in its mask."""
    issues: list[Issue] = []
    cid = record.case_id

    def error(message: str, fix: str, path: Path) -> None:
        issues.append(Issue("error", message, fix, file=path, case_id=cid))

    def load(path: Path, what: str) -> Volume | None:
        if not path.exists():
            others = ", ".join(p.name for p in _other_endings(path))
            if others:
                message = f"{what} missing; {others} beside it has another file ending"
                error(message, f"save it as {path.name} (the dataset's file ending)", path)
            else:
                error(f"{what} missing", f"add {path.name} or remove case {cid!r}", path)
            return None
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            message = f"{what} is a link to {path.resolve()}, outside the dataset {root}"
            fix = "check that the link points where you meant; copy the file in to keep it"
            issues.append(Issue("warning", message, fix, file=path, case_id=cid))
        try:
            vol = read_image(path)
        except DataError as exc:
            error(f"unreadable {what}: {exc}", "re-export the file (e.g. as .nii.gz)", path)
            return None
        for note, fix in vol.notes:
            issues.append(Issue("warning", f"{what}: {note}", fix, file=path, case_id=cid))
        return vol if _dimensions_ok(vol, what, error) else None

    n_files = 0
    values: list[int] = []
    reference: Volume | None = None
    if not record.images:
        fix = "list at least one image channel for the case"
        issues.append(Issue("error", "case has no image file", fix, file=record.mask, case_id=cid))
    for channel, path in enumerate(record.images):
        vol = load(path, f"image channel {channel}")
        n_files += vol is not None
        if vol is None:
            continue
        if vol.array.dtype.kind not in "iufb":
            fix = "store intensities as integers or floats"
            error(f"image dtype {vol.array.dtype} is not numeric", fix, path)
            continue
        if vol.array.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(vol.array)))
            if bad:
                fix = "replace them (e.g. by the minimum intensity) before training"
                error(f"{bad} voxel(s) are NaN or Inf", fix, path)
        if (value := constant_value(vol.array)) is not None:
            fix = "check it is the right file (a failed export?); training learns nothing from it"
            message = f"image channel {channel} is constant (every voxel is {value:g})"
            issues.append(Issue("warning", message, fix, file=path, case_id=cid))
        if reference is None:
            reference = vol
        else:
            what = f"channel {channel}"
            fix = "resample all channels onto the grid of channel 0"
            issues.extend(_geometry(reference, vol, what, fix, geometry_tol, cid))
    if record.mask is not None:
        mask = load(record.mask, "mask")
        n_files += mask is not None
        if mask is not None:
            if reference is not None:
                issues.extend(_geometry(reference, mask, "mask", _GRID_FIX, geometry_tol, cid))
            label_issues, values = _check_labels(mask, label_values, label_tol, cid)
            issues.extend(label_issues)
    return issues, n_files, values


def _other_endings(path: Path) -> list[Path]:
    """Files beside ``path`` named like it with another image ending (``.nii``, ``.NII.GZ``)."""
    suffix = image_suffix(path)
    if suffix is None or not path.parent.is_dir():
        return []
    stem = path.name[: -len(suffix)]
    return sorted(
        p
        for p in path.parent.iterdir()
        if (found := image_suffix(p)) is not None and p.name[: -len(found)] == stem and p != path
    )


def _dimensions_ok(vol: Volume, what: str, error) -> bool:
    shape = vol.shape
    if len(shape) == 3 and min(shape) > 1:
        return True
    path = vol.path
    if len(shape) < 3 or min(shape[:3]) == 1:
        fix = "provide the full 3D volume (several voxels along every axis)"
        error(f"{what} is 2D (shape {shape}); 3D volumes are needed", fix, path)
    elif len(shape) == 4:
        fix = "store each 3D volume as its own channel file CASE_0000, CASE_0001, ..."
        error(f"{what} is 4D (shape {shape})", fix, path)
    else:
        error(f"{what} has {len(shape)} dimensions (shape {shape})", "store a 3D volume", path)
    return False


def _geometry(
    ref: Volume, vol: Volume, what: str, fix: str, tol: float, case_id: str
) -> list[Issue]:
    return [
        Issue("error", f"{what} {difference}", fix, file=vol.path, case_id=case_id)
        for difference in grid_differences(ref, vol, tol)
    ]


def _check_labels(
    mask: Volume, label_values: frozenset[int], tol: float, case_id: str
) -> tuple[list[Issue], list[int]]:
    array = mask.array

    def issue(severity: str, message: str, fix: str) -> Issue:
        return Issue(severity, message, fix, file=mask.path, case_id=case_id)  # type: ignore[arg-type]

    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            fix = "store integer labels 0, 1, 2, ..."
            return [issue("error", f"{int((~finite).sum())} mask voxel(s) are NaN or Inf", fix)], []
        rounded = np.rint(array)
        distance = np.abs(array - rounded)
        deviation = float(distance.max()) if array.size else 0.0
        if deviation > tol:
            example = float(array[distance > tol].flat[0])
            fix = "store integer labels 0, 1, 2, ... (re-export the mask)"
            message = (
                f"mask holds non-integer values such as {example!r} (up to {deviation:.3g} from "
                f"an integer; tolerance {tol:g})"
            )
            return [issue("error", message, fix)], []
        out = []
        if deviation > 0:
            example = float(array[distance > 0].flat[0])
            fix = "nothing to do; re-save the mask with integer values to silence this"
            message = f"mask values such as {example!r} are rounded to integers ({deviation:.3g})"
            out.append(issue("warning", message, fix))
        values = _values(rounded.astype(np.int64))
    else:
        out = []
        values = _values(array)
    negative = [v for v in values if v < 0]
    if negative:
        fix = "remap them to 0 (background) or to labels 1, 2, ... and save the mask again"
        out.append(issue("error", f"mask holds negative values {negative}", fix))
    declared = label_values | set(negative)  # negatives are reported above
    unknown = sorted(set(values) - declared) if label_values else []  # none declared
    if unknown:
        fix = "remap these values or declare them in dataset.json labels (label_names=...)"
        message = f"mask values {unknown} are not declared labels {sorted(label_values)}"
        out.append(issue("error", message, fix))
    if not any(v != 0 for v in values):
        fix = "check it is the right file; an all-background mask only teaches background"
        out.append(issue("warning", "mask has no foreground (all voxels are 0)", fix))
    return out, values


def _check_numbering(index: DatasetIndex, found: Mapping[int, Path]) -> list[Issue]:
    """Labels are numbered 0, 1, ..., N as nnU-Net requires: value V means V + 1 outputs."""
    declared = index.labels_declared
    values = sorted(set(index.label_names.values()) if declared else (v for v in found if v >= 0))
    if not values or values == list(range(len(values))):
        return []
    renumber = ", ".join(f"{v} -> {k}" for k, v in enumerate(values) if k != v)
    head = (
        f"the segmentation head has one output per value up to {values[-1]} "
        f"({values[-1] + 1} outputs, {values[-1] + 1 - len(values)} never trained); number the "
        "labels 0, 1, 2, ... without gaps, as nnU-Net requires"
    )
    if declared:
        json_path = Path(index.root) / "dataset.json"
        file = json_path if json_path.is_file() else Path(index.root)
        fix = f"renumber them ({renumber}) in dataset.json and in the masks"
        return [Issue("error", f"the declared labels are {values}: {head}", fix, file=file)]
    fix = (
        f"remap the masks ({renumber}), or declare every label 0..N in a dataset.json "
        "(labels) when some appear in no mask"
    )
    message = f"the masks hold labels {values} (no dataset.json declares them): {head}"
    return [Issue("error", message, fix, file=found[values[-1]])]


def _values(array: np.ndarray) -> list[int]:
    """Distinct integer values of ``array`` (bincount when small and non-negative)."""
    if array.size == 0:
        return []
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi < 65536:
        return [int(v) for v in np.flatnonzero(np.bincount(array.ravel().astype(np.intp)))]
    return [int(v) for v in np.unique(array)]


def _check_index(index: DatasetIndex) -> list[Issue]:
    issues: list[Issue] = []
    if not index.records:
        fix = "check the dataset root and its layout"
        issues.append(Issue("error", "the dataset has no cases", fix, file=index.root))
    by_id: dict[str, list[CaseRecord]] = {}
    for record in index.records:
        by_id.setdefault(record.case_id, []).append(record)
    for case_id, records in by_id.items():
        if len(records) > 1:
            places = ", ".join(str(_first_file(r).parent) for r in records)
            fix = "rename or remove all but one of them"
            message = f"case id {case_id!r} appears {len(records)} times: {places}"
            issues.append(_case_issue("error", message, fix, records[1]))
    if index.num_classes:
        issues.extend(_check_classes(index))
    for record in index.records:
        if record.split != "test" and record.mask is None:
            fix = "add its mask, or accept that it trains classification only"
            message = f"{record.split} case has no mask"
            issues.append(_case_issue("warning", message, fix, record))
    return issues


def _check_classes(index: DatasetIndex) -> list[Issue]:
    issues: list[Issue] = []
    counts: Mapping[str, Counter] = {
        s: Counter(r.label for r in index.records if r.split == s and r.label is not None)
        for s in index.splits
    }
    for split, counter in counts.items():
        if not counter:
            continue
        for k, name in enumerate(index.class_names):
            if counter[k]:
                continue
            if split == "train":
                fix = f"add training cases of {name} or renumber the subtypes 0..K-1 without gaps"
                message = f"{name} (label {k}) has no training cases"
                issues.append(Issue("error", message, fix, file=index.root))
            else:
                fix = f"add {name} cases to {split} to evaluate that subtype"
                message = f"{split} split has no {name} (label {k}) case"
                issues.append(Issue("warning", message, fix, file=index.root))
    if "train" in counts and not counts["train"] and index.num_classes:
        fix = "put the training cases in train/subtypeK/ folders or pass labels=..."
        message = "no training case has a subtype label"
        issues.append(Issue("warning", message, fix, file=index.root))
    for record in index.records:
        if record.label is None and record.split != "test" and counts.get(record.split):
            fix = "give it a subtype (folder or labels table); it will train segmentation only"
            message = f"{record.split} case has no subtype label"
            issues.append(_case_issue("warning", message, fix, record))
    return issues


def _first_file(record: CaseRecord) -> Path:
    return record.images[0] if record.images else (record.mask or Path(record.case_id))


def _case_issue(severity: str, message: str, fix: str, record: CaseRecord) -> Issue:
    file = _first_file(record)
    return Issue(severity, message, fix, file=file, case_id=record.case_id)  # type: ignore[arg-type]
