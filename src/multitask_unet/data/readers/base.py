"""The dataset index a reader returns, the :class:`Layout` base class and the ``LAYOUTS`` registry.

A reader only looks at file names: it never opens a volume. Problems it can see that way (a
subtype folder without cases, a label contradicting its folder) are kept in
:attr:`DatasetIndex.issues`; :func:`~multitask_unet.data.validation.validate_dataset` reports
them together with what it finds inside the files.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from multitask_unet.data.readers.labels import CaseLabels
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation_report import Issue
from multitask_unet.errors import DataError
from multitask_unet.registry import Registry

if TYPE_CHECKING:
    from multitask_unet.data.readers.nnunet import DatasetJson

__all__ = [
    "LAYOUTS",
    "DatasetIndex",
    "Layout",
    "class_names_for",
    "generic_label_names",
]

_SPLIT_ORDER = ("train", "validation", "test")


def class_names_for(records: Sequence[CaseRecord], prefix: str = "class") -> tuple[str, ...]:
    """``("class0", ..., "class{K-1}")`` for the largest label ``K-1`` among ``records``.

    The study layout passes ``prefix="subtype"``: its class folders are named ``subtypeK``.
    """
    labels = [r.label for r in records if r.label is not None]
    return tuple(f"{prefix}{k}" for k in range(max(labels) + 1)) if labels else ()


def generic_label_names(values: Iterable[int]) -> dict[str, int]:
    """Names for segmentation labels that no ``dataset.json`` declares: ``background``, ``labelK``.

    Example:
        >>> generic_label_names([2, 0, 1])
        {'background': 0, 'label1': 1, 'label2': 2}
    """
    return {("background" if v == 0 else f"label{v}"): v for v in sorted({0, *map(int, values)})}


@dataclass(frozen=True)
class DatasetIndex:
    """The cases of a dataset as found on disk (no file opened yet).

    Attributes:
        root: The folder (or manifest file) that was read.
        layout: Name of the layout that read it (``"study"``, ``"nnunet"``, ``"manifest"``, ...).
        records: One :class:`~multitask_unet.data.records.CaseRecord` per case.
        class_names: Name of each case-level class (lesion subtype), index = label.
        label_names: Segmentation label values by name, e.g. ``{"background": 0, "liver": 1}``,
            as ``dataset.json`` declares them; empty when nothing declares them, and then
            :meth:`with_found_labels` names the values found in the masks.
        channel_names: Name of each image channel.
        issues: Problems the reader saw from file names alone.

    Example:
        >>> index = DatasetIndex(Path("."), "study", (CaseRecord("a", (Path("a_0000.nii.gz"),)),))
        >>> len(index), index.splits, index.split("train").case_ids
        (1, ('train',), ('a',))
    """

    root: Path
    layout: str
    records: tuple[CaseRecord, ...]
    class_names: tuple[str, ...] = ()
    label_names: Mapping[str, int] = field(default_factory=dict)
    channel_names: tuple[str, ...] = ("CT",)
    issues: tuple[Issue, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[CaseRecord]:
        return iter(self.records)

    def __getitem__(self, key: int | str) -> CaseRecord:
        """The record at position ``key`` or with case id ``key``."""
        if isinstance(key, int):
            return self.records[key]
        for record in self.records:
            if record.case_id == key:
                return record
        close = difflib.get_close_matches(str(key), self.case_ids, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DataError(f"No case {key!r} in {self.root}.{hint}")

    @property
    def case_ids(self) -> tuple[str, ...]:
        """Case ids in record order."""
        return tuple(r.case_id for r in self.records)

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names present: train, validation, test first, then others alphabetically."""
        present = {r.split for r in self.records}
        known = [s for s in _SPLIT_ORDER if s in present]
        return tuple(known + sorted(present - set(_SPLIT_ORDER)))

    @property
    def labels_declared(self) -> bool:
        """Whether the segmentation labels are declared (``dataset.json`` or ``label_names``)."""
        return bool(self.label_names)

    def with_found_labels(self, values: Iterable[int]) -> DatasetIndex:
        """This index, named labels for ``values`` (found in the masks) when none are declared.

        Declared labels are kept as they are (validation checks the masks against them).
        """
        if self.labels_declared:
            return self
        return replace(self, label_names=generic_label_names(values))

    @property
    def num_classes(self) -> int:
        """Number of case-level classes (``len(class_names)``)."""
        return len(self.class_names)

    def split(self, name: str) -> DatasetIndex:
        """The same index restricted to one split (an unknown split is an error)."""
        if name not in self.splits:
            close = difflib.get_close_matches(name, self.splits, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(
                f"No split {name!r} in {self.root}.{hint} Splits: {', '.join(self.splits)}."
            )
        records = tuple(r for r in self.records if r.split == name)
        ids = {r.case_id for r in records}
        issues = tuple(i for i in self.issues if i.case_id is None or i.case_id in ids)
        return replace(self, records=records, issues=issues)

    def counts(self) -> dict[str, dict[int | None, int]]:
        """Number of cases per split and label (``None`` for unlabelled cases).

        Example:
            >>> DatasetIndex(Path("."), "study", (CaseRecord("a", (), label=1),)).counts()
            {'train': {1: 1}}
        """
        counter = Counter((r.split, r.label) for r in self.records)
        out: dict[str, dict[int | None, int]] = {}
        for split in self.splits:
            labels = sorted((lab for s, lab in counter if s == split), key=lambda v: (v is None, v))
            out[split] = {lab: counter[(split, lab)] for lab in labels}
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{s}={sum(v.values())}" for s, v in self.counts().items())
        return f"DatasetIndex(layout={self.layout!r}, root={str(self.root)!r}, {parts})"


class Layout(ABC):
    """How a dataset is arranged on disk; subclass and register to add one.

    Example (a folder of ``CASE_0000.nii.gz`` files; ``read_dataset(root, layout="flat")``)::

        @LAYOUTS.register("flat")
        class FlatLayout(Layout):
            name = "flat"
            description = "CASE_0000.nii.gz files in one folder"

            def detect(self, root):
                return root.is_dir() and any(
                    not p.name.startswith(".") for p in root.glob("*_0000.nii.gz")
                )

            def read(self, root, *, labels):
                found = sorted(p for p in root.glob("*_0000.nii.gz") if not p.name.startswith("."))
                records = tuple(CaseRecord(p.name[:-12], (p,)) for p in found)
                return DatasetIndex(root, self.name, records)
    """

    #: Registry name, also stored in :attr:`DatasetIndex.layout`.
    name: ClassVar[str]
    #: One line shown when no layout recognises a folder.
    description: ClassVar[str]
    #: Auto-detection tries layouts with a higher priority first.
    priority: ClassVar[int] = 0

    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether ``root`` looks like this layout (cheap: file names only)."""

    @abstractmethod
    def read(self, root: Path, *, labels: CaseLabels | None) -> DatasetIndex:
        """Index the cases under ``root``; ``labels`` are case-level labels given by the user."""

    def index(
        self,
        root: Path,
        records: Sequence[CaseRecord],
        declared: DatasetJson,
        *,
        channel_names: Sequence[str],
        issues: list[Issue],
        class_prefix: str = "class",
    ) -> DatasetIndex:
        """The :class:`DatasetIndex` of this layout, named as the dataset's ``dataset.json`` says.

        Args:
            root: The folder (or manifest file) that was read.
            records: The cases found.
            declared: The dataset's ``dataset.json`` (see
                :func:`~multitask_unet.data.readers.nnunet.load_dataset_json`): its segmentation
                labels and its case-level ``"class_names"``.
            channel_names: Name of each image channel.
            issues: Problems seen so far; a bad ``"class_names"`` list is added to them.
            class_prefix: Class names are ``{class_prefix}K`` when ``declared`` names none.
        """
        class_names = declared.class_names(list(records), issues)
        if class_names is None:
            class_names = class_names_for(records, class_prefix)
        return DatasetIndex(
            root=root,
            layout=self.name,
            records=tuple(records),
            class_names=class_names,
            label_names=declared.label_names,
            channel_names=tuple(channel_names),
            issues=tuple(issues),
        )


LAYOUTS: Registry[type[Layout]] = Registry("dataset layout")
"""Dataset layouts by name. Built-in: ``study``, ``nnunet``, ``manifest``."""
