"""Case records: what a reader finds on disk, before any file is opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CaseRecord"]


@dataclass(frozen=True)
class CaseRecord:
    """One case of a dataset.

    Attributes:
        case_id: Unique identifier, e.g. ``"quiz_0_041"``.
        images: One path per image channel (``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ...).
        mask: Path of the label map, or ``None`` for unlabelled (test) cases.
        label: Integer class (lesion subtype) of the case, or ``None`` when unknown.
        split: ``"train"``, ``"validation"``, ``"test"`` or another split name of the layout.
        extra: Reader-specific details (e.g. the folder the subtype was read from).
    """

    case_id: str
    images: tuple[Path, ...]
    mask: Path | None = None
    label: int | None = None
    split: str = "train"
    extra: dict[str, str] = field(default_factory=dict, compare=False)
