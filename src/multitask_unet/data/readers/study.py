"""The study's layout: ``SPLIT/subtypeK/CASE_0000.nii.gz`` + ``CASE.nii.gz``, and ``test/CASE_0000.nii.gz``.

Every folder under the root is a split. Inside it, ``subtypeK`` folders hold labelled cases (image
channels and a mask each, subtype ``K``); image files directly inside the split folder are cases
without a subtype (test cases; their mask is optional). A ``dataset.json`` at the root, if any,
names the segmentation labels and channels (nnU-Net style) and may name the subtypes
(``"class_names"``, else ``subtypeK``); a case-labels table (``cases.csv``) is cross-checked
against the folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from multitask_unet.data.io import image_suffix
from multitask_unet.data.readers.base import LAYOUTS, DatasetIndex, Layout
from multitask_unet.data.readers.files import CaseFiles, group_case_files
from multitask_unet.data.readers.labels import CaseLabels, unmatched_labels_issue
from multitask_unet.data.readers.nnunet import load_dataset_json
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation_report import Issue

__all__ = ["StudyLayout"]

_SUBTYPE = re.compile(r"^subtype(\d+)$")


@dataclass
class _Found:
    split: str
    label: int | None
    folder: Path
    files: CaseFiles


@LAYOUTS.register("study")
class StudyLayout(Layout):
    """``SPLIT/subtypeK/CASE_0000.nii.gz`` + ``SPLIT/subtypeK/CASE.nii.gz``; ``test/CASE_0000.nii.gz``."""

    name = "study"
    description = "SPLIT/subtypeK/CASE_0000.nii.gz with CASE.nii.gz masks, test/CASE_0000.nii.gz"
    priority = 10

    def detect(self, root: Path) -> bool:
        if not root.is_dir():
            return False
        for split in _dirs(root):
            for child in split.iterdir():
                if child.is_dir() and _SUBTYPE.match(child.name):
                    return True
                suffix = image_suffix(child)
                if suffix and child.is_file() and child.name[: -len(suffix)].endswith("_0000"):
                    return True
        return False

    def read(self, root: Path, *, labels: CaseLabels | None) -> DatasetIndex:
        found: list[_Found] = []
        issues: list[Issue] = []
        for split_dir in _dirs(root):
            n_before = len(found)
            for sub in _dirs(split_dir):
                match = _SUBTYPE.match(sub.name)
                if match is None:
                    issues.append(_ignored(sub, "folder", "rename it subtypeK (K = 0, 1, ...)"))
                    continue
                cases, others = group_case_files(sub)
                issues.extend(_ignored(p, "file", "move it out of the dataset") for p in others)
                if not cases:
                    issues.append(
                        Issue(
                            "error",
                            f"subtype folder {split_dir.name}/{sub.name} has no cases",
                            "add CASE_0000.nii.gz + CASE.nii.gz pairs or delete the folder",
                            file=sub,
                        )
                    )
                label = int(match.group(1))
                found.extend(_Found(split_dir.name, label, sub, c) for c in cases.values())
            cases, others = group_case_files(split_dir)
            issues.extend(_ignored(p, "file", "move it out of the dataset") for p in others)
            found.extend(_Found(split_dir.name, None, split_dir, c) for c in cases.values())
            if len(found) == n_before:
                issues.append(
                    Issue(
                        "error",
                        f"split folder {split_dir.name!r} has no cases",
                        "add subtypeK/ folders with cases (or CASE_0000.nii.gz files for test "
                        "cases), or delete the folder",
                        file=split_dir,
                    )
                )
        issues.extend(
            _ignored(p, "image file", "move it into a SPLIT/subtypeK/ folder")
            for p in sorted(root.iterdir())
            if p.is_file() and image_suffix(p)
        )

        declared = load_dataset_json(root / "dataset.json")
        issues.extend(declared.issues)
        channel_names = declared.channel_names
        num_channels = max(
            [len(channel_names or ())] + [max(f.files.channels, default=0) + 1 for f in found]
        )
        if channel_names is None:
            channel_names = ("CT",) if num_channels == 1 else _numbered(num_channels)
        records = [_record(f, num_channels) for f in found]
        if labels is not None:
            records = _apply_labels(records, labels, issues)
        return self.index(
            root,
            records,
            declared,
            channel_names=channel_names,
            issues=issues,
            class_prefix="subtype",
        )


def _record(found: _Found, num_channels: int) -> CaseRecord:
    files = found.files
    mask = files.mask
    if mask is None and found.label is not None:  # labelled cases need a mask: expect it
        mask = found.folder / f"{files.case_id}{files.suffix}"
    return CaseRecord(
        case_id=files.case_id,
        images=files.images(num_channels, found.folder),
        mask=mask,
        label=found.label,
        split=found.split,
        extra={"folder": f"{found.folder.parent.name}/{found.folder.name}"}
        if found.label is not None
        else {"folder": found.folder.name},
    )


def _apply_labels(
    records: list[CaseRecord], labels: CaseLabels, issues: list[Issue]
) -> list[CaseRecord]:
    out = []
    for record in records:
        if record.case_id not in labels.labels:
            out.append(record)
            continue
        given = labels.labels[record.case_id]
        folder = record.extra.get("folder", "")
        if record.label is not None and given is not None and given != record.label:
            issues.append(
                Issue(
                    "error",
                    f"{labels.where} gives subtype {given} but the case is in {folder}/",
                    f"move the case to {record.split}/subtype{given}/ or correct {labels.where}",
                    file=record.images[0],
                    case_id=record.case_id,
                )
            )
        split = labels.splits.get(record.case_id)
        if split is not None and split != record.split:
            issues.append(
                Issue(
                    "error",
                    f"{labels.where} puts the case in split {split!r} but it is in {folder}/",
                    f"move the case to {split}/ or correct {labels.where}",
                    file=record.images[0],
                    case_id=record.case_id,
                )
            )
        if record.label is None and given is not None:
            record = CaseRecord(
                record.case_id, record.images, record.mask, given, record.split, record.extra
            )
        out.append(record)
    unmatched = unmatched_labels_issue(labels, [r.case_id for r in records])
    issues.extend([unmatched] if unmatched else [])
    return out


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _ignored(path: Path, what: str, fix: str) -> Issue:
    return Issue("warning", f"unexpected {what} ignored", fix, file=path)


def _numbered(n: int) -> tuple[str, ...]:
    return tuple(f"channel{i}" for i in range(n))
