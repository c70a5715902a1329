"""A CSV manifest: one row per case with its files, label and split.

Columns (case-insensitive): a case id (``case_id``, ``case``, ``id``), the image (``image``, or
``image_0000``, ``image_0001``, ... for several channels), optionally ``mask``, ``label`` (or
``subtype``; empty when unknown) and ``split`` (default ``train``). Relative paths are relative
to the manifest's folder. The root is the CSV file itself or a folder holding ``manifest.csv``;
a ``dataset.json`` next to it names the segmentation labels and channels.

Example manifest::

    case_id,image,mask,label,split
    p001,images/p001.nii.gz,masks/p001.nii.gz,0,train
    p002,images/p002.nii.gz,,,test
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from multitask_unet.data.readers.base import LAYOUTS, DatasetIndex, Layout
from multitask_unet.data.readers.labels import CaseLabels, parse_label, unmatched_labels_issue
from multitask_unet.data.readers.nnunet import load_dataset_json
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation_report import Issue
from multitask_unet.errors import DataError

__all__ = ["ManifestLayout"]

_CASE = ("case_id", "case", "id")
_MASK = ("mask", "seg", "segmentation", "label_map")
_LABEL = ("label", "subtype", "class")
_IMAGE = re.compile(r"^image(?:_?(\d+))?$")


@LAYOUTS.register("manifest")
class ManifestLayout(Layout):
    """A CSV file listing each case's image(s), mask, label and split."""

    name = "manifest"
    description = "a CSV manifest (case_id,image,mask,label,split) or a folder with manifest.csv"
    priority = 30

    def detect(self, root: Path) -> bool:
        if root.is_file():
            return root.suffix.lower() == ".csv"
        return (root / "manifest.csv").is_file()

    def read(self, root: Path, *, labels: CaseLabels | None) -> DatasetIndex:
        path = root if root.is_file() else root / "manifest.csv"
        base = path.parent
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
            rows = list(reader)
        case_col = next((columns[c] for c in _CASE if c in columns), None)
        matches = ((_IMAGE.match(c), original) for c, original in columns.items())
        images = sorted((int(m.group(1) or 0), original) for m, original in matches if m)
        if case_col is None or not images:
            raise DataError(
                f"{path} needs a case column ({'/'.join(_CASE)}) and an image column (image or "
                f"image_0000, image_0001, ...); found {list(columns.values())}"
            )
        mask_col = next((columns[c] for c in _MASK if c in columns), None)
        label_col = next((columns[c] for c in _LABEL if c in columns), None)
        split_col = columns.get("split")

        issues: list[Issue] = []
        records: list[CaseRecord] = []
        for line, row in enumerate(rows, start=2):
            case_id = (row.get(case_col) or "").strip()
            cells = [(row.get(col) or "").strip() for _, col in images]
            if not case_id or not all(cells):
                issues.append(
                    Issue(
                        "error",
                        f"line {line}: empty case id or image cell",
                        "fill in every case id and image path, or delete the row",
                        file=path,
                    )
                )
                continue
            try:
                label = parse_label(row.get(label_col) if label_col else None, f"line {line}")
            except DataError as exc:
                fix = "use an integer subtype 0, 1, 2, ... or leave it empty"
                issues.append(Issue("error", str(exc), fix, file=path, case_id=case_id))
                label = None
            mask_cell = (row.get(mask_col) or "").strip() if mask_col else ""
            records.append(
                CaseRecord(
                    case_id=case_id,
                    images=tuple(_resolve(base, c) for c in cells),
                    mask=_resolve(base, mask_cell) if mask_cell else None,
                    label=label,
                    split=(row.get(split_col) or "").strip() or "train" if split_col else "train",
                    extra={"manifest_line": str(line)},
                )
            )
        if labels is not None:
            records = [_merge(r, labels, issues) for r in records]
            unmatched = unmatched_labels_issue(labels, [r.case_id for r in records])
            issues.extend([unmatched] if unmatched else [])
        if not records:
            fix = "add one row per case"
            issues.append(Issue("error", "the manifest lists no cases", fix, file=path))

        declared = load_dataset_json(base / "dataset.json")
        issues.extend(declared.issues)
        channel_names = declared.channel_names
        if channel_names is None or len(channel_names) != len(images):
            channel_names = ("CT",) if len(images) == 1 else tuple(c for _, c in images)
        return self.index(root, records, declared, channel_names=channel_names, issues=issues)


def _resolve(base: Path, cell: str) -> Path:
    path = Path(cell).expanduser()
    return path if path.is_absolute() else base / path


def _merge(record: CaseRecord, labels: CaseLabels, issues: list[Issue]) -> CaseRecord:
    given = labels.labels.get(record.case_id)
    if given is None:
        return record
    if record.label is not None and record.label != given:
        issues.append(
            Issue(
                "error",
                f"{labels.where} gives subtype {given} but the manifest gives {record.label}",
                "make the manifest and the labels table agree",
                file=record.images[0],
                case_id=record.case_id,
            )
        )
        return record
    split = labels.splits.get(record.case_id, record.split)
    return CaseRecord(record.case_id, record.images, record.mask, given, split, record.extra)
