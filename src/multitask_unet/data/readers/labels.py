"""Case-level labels (lesion subtype) and splits from a CSV, a JSON file or a mapping.

Accepted forms:

- CSV with a case column (``case_id``, ``case``, ``id`` or ``identifier``), a label column
  (``label``, ``subtype`` or ``class``; empty for unknown) and optionally ``split``; the study's
  ``cases.csv`` is one.
- JSON ``{"CASE": 0, ...}``, ``{"CASE": {"label": 0, "split": "validation"}, ...}`` or either of
  them under a ``"cases"`` key.
- A Python mapping ``{"CASE": 0}``.

Example:
    >>> labels = load_case_labels({"quiz_0_041": 0, "quiz_1_010": "1", "quiz_037": None})
    >>> labels.labels["quiz_1_010"], labels.labels["quiz_037"]
    (1, None)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from multitask_unet.data.validation_report import Issue
from multitask_unet.errors import DataError

__all__ = [
    "CaseLabels",
    "LabelsSource",
    "load_case_labels",
    "parse_label",
    "read_labels_table",
    "unmatched_labels_issue",
]

_CASE_COLUMNS = ("case_id", "case", "id", "identifier")
_LABEL_COLUMNS = ("label", "subtype", "class")

LabelsSource = str | Path | Mapping[str, object]


@dataclass(frozen=True)
class CaseLabels:
    """Case-level labels and optional split assignments.

    Attributes:
        labels: Label per case id (``None``: listed but unknown, e.g. a test case).
        splits: Split per case id, for the cases whose source names one.
        source: The file they came from, if any.
    """

    labels: Mapping[str, int | None] = field(default_factory=dict)
    splits: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None

    @property
    def where(self) -> str:
        """How to name the source in messages."""
        return str(self.source) if self.source is not None else "the labels mapping"


def load_case_labels(source: LabelsSource | CaseLabels) -> CaseLabels:
    """Read case labels from a CSV/JSON file or a mapping (see the module docstring).

    Raises:
        DataError: The file is missing, lacks a case or label column, or holds a label that is
            not a non-negative integer; the message names the row and the fix.
    """
    if isinstance(source, CaseLabels):
        return source
    if isinstance(source, Mapping):
        return _from_mapping(source, None)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"Case labels file {path} does not exist; pass a CSV or JSON file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); fix the file") from exc
        if isinstance(data, dict) and isinstance(data.get("cases"), dict):
            data = data["cases"]
        if not isinstance(data, dict):
            raise DataError(f'{path} must hold a JSON object {{"CASE": label, ...}}')
        return _from_mapping(data, path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return _from_csv(path)
    raise DataError(f"Case labels file {path} must end in .csv, .tsv or .json")


def read_labels_table(path: Path) -> CaseLabels | None:
    """Labels from ``path`` if it is a CSV with case and label columns, else ``None``."""
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    columns = {c.strip().lower() for c in header}
    if columns.isdisjoint(_CASE_COLUMNS) or columns.isdisjoint(_LABEL_COLUMNS):
        return None
    return _from_csv(path)


def parse_label(value: object, where: str) -> int | None:
    """A label value as ``int`` (``None`` for empty/null); anything else is a DataError."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "nan", "NA", "None")):
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: label {value!r} is a boolean; use a non-negative integer")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: label {value!r} is not an integer; use 0, 1, 2, ...") from None
    if not number.is_integer() or number < 0:
        raise DataError(f"{where}: label {value!r} is not a non-negative integer; use 0, 1, 2, ...")
    return int(number)


def unmatched_labels_issue(labels: CaseLabels, case_ids: Iterable[str]) -> Issue | None:
    """A warning listing the cases of ``labels`` that are not among ``case_ids``, if any."""
    missing = sorted(set(labels.labels) - set(case_ids))
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    return Issue(
        "warning",
        f"{len(missing)} case(s) listed in {labels.where} have no files: {shown}",
        "add their files or remove them from the labels table",
        file=labels.source,
    )


def _from_mapping(data: Mapping[str, object], path: Path | None) -> CaseLabels:
    where = str(path) if path is not None else "labels mapping"
    labels: dict[str, int | None] = {}
    splits: dict[str, str] = {}
    for case, value in data.items():
        if isinstance(value, Mapping):
            key = next((k for k in _LABEL_COLUMNS if k in value), None)
            labels[str(case)] = parse_label(value.get(key) if key else None, f"{where}[{case!r}]")
            if value.get("split"):
                splits[str(case)] = str(value["split"])
        else:
            labels[str(case)] = parse_label(value, f"{where}[{case!r}]")
    return CaseLabels(labels, splits, path)


def _from_csv(path: Path) -> CaseLabels:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=delimiter))
        header = [c.strip().lower() for c in (rows[0].keys() if rows else [])]
    if not rows:
        raise DataError(f"{path} has no rows; add a header and one row per case")
    case_col = next((c for c in _CASE_COLUMNS if c in header), None)
    label_col = next((c for c in _LABEL_COLUMNS if c in header), None)
    if case_col is None or label_col is None:
        raise DataError(
            f"{path} needs a case column ({'/'.join(_CASE_COLUMNS)}) and a label column "
            f"({'/'.join(_LABEL_COLUMNS)}); found columns {header}"
        )
    labels: dict[str, int | None] = {}
    splits: dict[str, str] = {}
    for line, raw in enumerate(rows, start=2):
        row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        case = row[case_col]
        if not case:
            raise DataError(f"{path} line {line}: empty case id; fill it in or delete the row")
        if case in labels:
            raise DataError(f"{path} line {line}: case {case!r} is listed twice; keep one row")
        labels[case] = parse_label(row.get(label_col), f"{path} line {line}")
        if row.get("split"):
            splits[case] = row["split"]
    return CaseLabels(labels, splits, path)
