"""nnU-Net raw datasets: ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` and ``dataset.json``.

Training cases (``imagesTr``, or the ``"dataset"`` file lists of ``dataset.json`` when present,
as nnU-Net reads them) go to split ``"train"`` unless the case-labels table names another
split (e.g. ``"validation"``); ``imagesTs`` cases go to ``"test"`` (with masks when a ``labelsTs``
folder holds them). Case-level labels come from the table passed as ``labels`` (or a
``cases.csv`` next to ``dataset.json``), since nnU-Net itself has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multitask_unet.data.readers.base import (
    LAYOUTS,
    DatasetIndex,
    Layout,
)
from multitask_unet.data.readers.files import CaseFiles, group_case_files
from multitask_unet.data.readers.labels import CaseLabels, unmatched_labels_issue
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation_report import Issue

__all__ = ["DatasetJson", "NnUNetLayout", "load_dataset_json"]


@dataclass(frozen=True)
class DatasetJson:
    """What a ``dataset.json`` declares, read once.

    Attributes:
        path: The file.
        data: Its parsed content; empty when it does not exist or is not valid JSON.
        label_names: Its ``"labels"``; empty when none are declared (the masks' values are
            then taken, see :meth:`DatasetIndex.with_found_labels`).
        channel_names: Its ``"channel_names"`` (or ``"modality"``), or None.
        issues: What is wrong with it, each naming the file and the fix.
    """

    path: Path
    data: Mapping[str, Any] = field(default_factory=dict)
    label_names: dict[str, int] = field(default_factory=dict)
    channel_names: tuple[str, ...] | None = None
    issues: tuple[Issue, ...] = ()

    def class_names(self, records: list[CaseRecord], issues: list[Issue]) -> tuple[str, ...] | None:
        """The case-level class names listed under ``"class_names"``, if any.

        ``"class_names": ["serous", "mucinous", "solid"]`` names labels 0, 1, 2 (nnU-Net ignores
        the key). A list that is not one distinct string per label found among ``records`` is
        an issue appended to ``issues``, and None is returned, so the readers' ``classK`` names
        apply.
        """
        names = self.data.get("class_names")
        if names is None:
            return None
        largest = max((r.label for r in records if r.label is not None), default=-1)
        if (
            not isinstance(names, list)
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
        ):
            fix = 'write "class_names" as a list of distinct names, e.g. ["benign", "malignant"]'
            message = f'"class_names" {names!r} is not a list of names'
            issues.append(_error(message, fix, self.path))
            return None
        if len(names) <= largest:
            fix = f'name every class 0..{largest} in "class_names" or correct the case labels'
            message = f'"class_names" names {len(names)} classes but a case has label {largest}'
            issues.append(_error(message, fix, self.path))
            return None
        return tuple(names)


def load_dataset_json(path: Path) -> DatasetJson:
    """Label, channel and class names from an nnU-Net ``dataset.json`` (empty without one)."""
    if not path.is_file():
        return DatasetJson(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fix = "fix the JSON syntax"
        return DatasetJson(
            path, issues=(_error(f"dataset.json is not valid JSON ({exc})", fix, path),)
        )
    issues: list[Issue] = []
    label_names: dict[str, int] = {}
    for name, value in dict(data.get("labels") or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            label_names[str(name)] = value
        else:
            issues.append(
                _error(
                    f"label {name!r} has value {value!r}; only non-negative integer labels are "
                    "supported (no region-based training)",
                    'write "labels" as {"background": 0, "liver": 1, ...}',
                    path,
                )
            )
    if not label_names:
        issues.append(
            _error(
                'dataset.json has no "labels"',
                'add "labels": {"background": 0, "liver": 1, ...}',
                path,
            )
        )
    channels = data.get("channel_names") or data.get("modality")
    channel_names = None
    if isinstance(channels, Mapping) and channels:
        try:
            channel_names = tuple(str(channels[k]) for k in sorted(channels, key=int))
        except ValueError:
            fix = 'use "channel_names": {"0": "CT"}'
            issues.append(_error("channel_names keys must be 0, 1, ...", fix, path))
    return DatasetJson(path, data, label_names, channel_names, tuple(issues))


@LAYOUTS.register("nnunet")
class NnUNetLayout(Layout):
    """nnU-Net raw dataset: ``imagesTr/CASE_0000.nii.gz``, ``labelsTr/CASE.nii.gz``, ``dataset.json``."""

    name = "nnunet"
    description = "nnU-Net raw dataset: imagesTr/, labelsTr/, imagesTs/ and dataset.json"
    priority = 20

    def detect(self, root: Path) -> bool:
        if not root.is_dir():
            return False
        if (root / "imagesTr").is_dir():
            return True
        try:
            return "dataset" in json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return False

    def read(self, root: Path, *, labels: CaseLabels | None) -> DatasetIndex:
        issues: list[Issue] = []
        json_path = root / "dataset.json"
        declared = load_dataset_json(json_path)
        issues.extend(declared.issues)
        channel_names = declared.channel_names
        data = declared.data if not declared.issues else {}
        if not json_path.is_file():
            fix = "write dataset.json with channel_names, labels, numTraining and file_ending"
            issues.append(
                _error("dataset.json is missing (nnU-Net raw datasets need one)", fix, json_path)
            )
        ending = str(data.get("file_ending", ".nii.gz"))

        found: list[tuple[str, Path, CaseFiles, Path | None]] = []  # split, folder, files, masks
        for split, images, masks in (("train", "imagesTr", "labelsTr"), ("test", "imagesTs", None)):
            if split == "test" and (root / "labelsTs").is_dir():
                masks = "labelsTs"
            if not (root / images).is_dir():
                continue
            cases, others = group_case_files(root / images, suffix=ending)
            issues.extend(_stray(others, ending))
            mask_dir = root / masks if masks else None
            if mask_dir is not None and mask_dir.is_dir():
                mask_files, mask_others = group_case_files(mask_dir, suffix=ending)
                issues.extend(_stray(mask_others, ending))
                for case_id, entry in mask_files.items():
                    if entry.channels:
                        fix = f"rename it {case_id}{ending} (masks have no channel suffix)"
                        issues += [
                            _error("mask named like an image channel", fix, p)
                            for p in entry.channels.values()
                        ]
                    if entry.mask is not None:
                        cases.setdefault(case_id, CaseFiles(case_id, suffix=ending))
            for case_id, entry in cases.items():
                if entry.mask is not None:  # CASE.nii.gz among the images
                    fix = f"rename it {case_id}_0000{ending}"
                    issues.append(_error("image without a _XXXX channel suffix", fix, entry.mask))
                found.append((split, root / images, entry, mask_dir))

        num_channels = max(
            [len(channel_names or ())] + [max(f.channels, default=-1) + 1 for _, _, f, _ in found]
        )
        channel_names = channel_names or tuple(f"channel{i}" for i in range(num_channels))
        records = []
        for split, folder, files, mask_dir in found:
            mask = mask_dir / f"{files.case_id}{ending}" if mask_dir is not None else None
            if split == "test" and mask is not None and not mask.exists():
                mask = None
            records.append(
                CaseRecord(
                    case_id=files.case_id,
                    images=files.images(len(channel_names), folder),
                    mask=mask,
                    split=split,
                    extra={"folder": folder.name},
                )
            )
        if isinstance(data.get("dataset"), Mapping):  # explicit file lists replace imagesTr
            records = [r for r in records if r.split != "train"]
            records[:0] = _explicit_records(root, data["dataset"], json_path, issues)
        n_train = sum(r.split == "train" for r in records)
        if "numTraining" in data and data["numTraining"] != n_train:
            issues.append(
                _error(
                    f"numTraining is {data['numTraining']} but imagesTr holds {n_train} cases",
                    f'set "numTraining": {n_train} or add the missing cases',
                    json_path,
                )
            )
        if labels is not None:
            records = [_labelled(r, labels) for r in records]
            unmatched = unmatched_labels_issue(labels, [r.case_id for r in records])
            issues.extend([unmatched] if unmatched else [])
        if not records:
            fix = f"put CASE_0000{ending} files in imagesTr/"
            issues.append(_error("no cases in imagesTr/ or imagesTs/", fix, root / "imagesTr"))
        return self.index(root, records, declared, channel_names=channel_names, issues=issues)


def _explicit_records(
    root: Path, dataset: Mapping, json_path: Path, issues: list[Issue]
) -> list[CaseRecord]:
    """Training cases listed in dataset.json's ``"dataset"`` key (paths relative to ``root``)."""

    def resolve(value: str) -> Path:
        path = Path(os.path.expandvars(value))
        return path if path.is_absolute() else root / path

    records = []
    for case_id, entry in dataset.items():
        images = entry.get("images") if isinstance(entry, Mapping) else None
        if not images or not isinstance(images, list):
            fix = 'give every case {"images": [...], "label": ...}'
            issues.append(_error(f'"dataset" entry {case_id!r} lists no images', fix, json_path))
            continue
        mask = resolve(entry["label"]) if entry.get("label") else None
        records.append(
            CaseRecord(
                case_id=str(case_id),
                images=tuple(resolve(str(p)) for p in images),
                mask=mask,
                split="train",
                extra={"folder": "dataset.json"},
            )
        )
    return records


def _labelled(record: CaseRecord, labels: CaseLabels) -> CaseRecord:
    label = labels.labels.get(record.case_id)
    split = record.split
    if split == "train":
        split = labels.splits.get(record.case_id, split)
    return CaseRecord(record.case_id, record.images, record.mask, label, split, record.extra)


def _stray(paths: list[Path], ending: str) -> list[Issue]:
    message = "file ignored: not an image with the dataset's file ending"
    issues = []
    for path in paths:
        fix = f"remove it or convert it to {ending} (dataset.json file_ending)"
        if path.name.lower().endswith(ending.lower()):  # e.g. CASE_0000.NII.GZ
            renamed = path.name[: -len(ending)] + ending
            fix = f"rename it {renamed} (file endings are case-sensitive, as in nnU-Net)"
        issues.append(Issue("warning", message, fix, file=path))
    return issues


def _error(message: str, fix: str, path: Path) -> Issue:
    return Issue("error", message, fix, file=path)
