"""Turn what a user points the predictor at into cases: files, folders and DICOM series.

Accepted inputs (any mix):

- an image file (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``, ...): one case whose id is the
  file name without suffix and without a ``_0000`` channel suffix; for multi-channel models the
  ``CASE_0001...`` files beside a ``CASE_0000`` file are its other channels;
- a DICOM series folder (files starting with the ``DICM`` marker): one case named after the
  folder;
- a folder of images (e.g. the study's ``test/`` folder of ``CASE_0000.nii.gz`` files, or plain
  ``CASE.nii.gz`` files): one case per image (or per ``_0000``/``_0001``... channel group),
  plus one case per DICOM-series subfolder;
- a dataset root that :func:`~multitask_unet.data.readers.read_dataset` recognises (the study
  layout with ``train/``, ``validation/``, ``test/``, an nnU-Net raw dataset): its images.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from multitask_unet.data.io import spacing_affine, write_image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a_0000.nii.gz", "b.nii.gz"):
    ...     _ = write_image(folder / name, np.zeros((4, 4, 4), np.int16), spacing_affine((1, 1, 1)))
    >>> [r.case_id for r in collect_cases([folder])]
    ['a', 'b']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from multitask_unet.data.io import image_suffix
from multitask_unet.data.readers import detect_layout, read_dataset
from multitask_unet.data.readers.files import channel_path, group_case_files
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError

__all__ = ["collect_cases", "is_dicom_series"]


def _is_dicom_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_series(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` directly holds DICOM files (Part 10, with the ``DICM`` marker)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    files = (p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))
    return any(_is_dicom_file(p) for _, p in zip(range(5), files))


def _file_case(path: Path, num_channels: int) -> CaseRecord:
    length = len(image_suffix(path) or "")
    suffix = path.name[len(path.name) - length :]  # as written: .NII.GZ siblings are .NII.GZ
    stem = path.name[: len(path.name) - length]
    case_id, channel = stem, None
    if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
        case_id, channel = stem[:-5], int(stem[-4:])
    if num_channels == 1 or channel is None:
        return CaseRecord(case_id, (path,), split="predict")
    images = tuple(channel_path(path.parent, case_id, c, suffix) for c in range(num_channels))
    missing = [p.name for p in images if not p.is_file()]
    if missing:
        raise DataError(
            f"the model takes {num_channels} channels but {', '.join(missing)} next to {path} "
            "is missing; give every channel as CASE_0000, CASE_0001, ..."
        )
    return CaseRecord(case_id, images, split="predict")


def _folder_cases(folder: Path, num_channels: int) -> list[CaseRecord]:
    if is_dicom_series(folder):
        return [CaseRecord(folder.name, (folder,), split="predict")]
    found, _others = group_case_files(folder)
    records = []
    for case in found.values():
        if case.channels:
            records.append(
                CaseRecord(case.case_id, case.images(num_channels, folder), split="predict")
            )
        elif case.mask is not None and num_channels == 1:  # a plain CASE.nii.gz image
            records.append(CaseRecord(case.case_id, (case.mask,), split="predict"))
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    records += [CaseRecord(p.name, (p,), split="predict") for p in subfolders if is_dicom_series(p)]
    if records:
        return records
    try:  # a dataset root (study layout, nnU-Net raw dataset)
        detect_layout(folder)
    except DataError:
        return []
    index = read_dataset(folder)
    return [CaseRecord(r.case_id, r.images, split=r.split) for r in index.records]


def collect_cases(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *, num_channels: int = 1
) -> list[CaseRecord]:
    """The cases to predict, in input order (see the module docstring for what is accepted).

    Args:
        inputs: Files and folders, or one of them.
        num_channels: Image channels the model takes.

    Returns:
        One :class:`~multitask_unet.data.records.CaseRecord` per case (no mask, no label).

    Raises:
        DataError: An input does not exist or holds no image, a channel is missing, or two
            inputs give the same case id (outputs would overwrite each other).
    """
    records: list[CaseRecord] = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        path = Path(item)
        if not path.exists():
            raise DataError(f"input {path} does not exist; check the path")
        if path.is_dir():
            found = _folder_cases(path, num_channels)
            if not found:
                raise DataError(
                    f"{path} holds no image (.nii.gz, .nii, .nrrd, .mha) and no DICOM series; "
                    "point to image files, a folder of them or a DICOM series folder"
                )
            records += found
        elif image_suffix(path) is not None:
            records.append(_file_case(path, num_channels))
        else:
            raise DataError(
                f"{path} is not an image file this library reads (.nii.gz, .nii, .nrrd, .mha, "
                ".mhd); for DICOM give the series folder"
            )
    seen: dict[str, Path] = {}
    unique = []
    for record in records:
        first = seen.setdefault(record.case_id, record.images[0])
        if first != record.images[0]:
            raise DataError(
                f"case id {record.case_id!r} comes from both {first} and {record.images[0]}; "
                "outputs are named by case id, so predict them into separate folders"
            )
        if first == record.images[0] and record not in unique:
            unique.append(record)
    return unique
