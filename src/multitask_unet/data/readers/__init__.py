"""Dataset readers: find the cases of a dataset on disk and return a :class:`DatasetIndex`.

Built-in layouts (see :data:`LAYOUTS`): ``study`` (the reference study's
``SPLIT/subtypeK/CASE_0000.nii.gz``), ``nnunet`` (nnU-Net raw datasets) and ``manifest`` (a
CSV listing the files). Register a :class:`Layout` subclass to add one.

Example:
    >>> from multitask_unet.data.phantoms import write_phantom_dataset
    >>> import tempfile
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=3, n_validation=0, n_test=0,
    ...                              shape=(24, 24, 12)).root
    >>> index = read_dataset(root)
    >>> index.layout, len(index.split("train"))
    ('study', 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from multitask_unet.data.readers import manifest, nnunet, study  # noqa: F401  (registration)
from multitask_unet.data.readers.base import (
    LAYOUTS,
    DatasetIndex,
    Layout,
    generic_label_names,
)
from multitask_unet.data.readers.labels import (
    CaseLabels,
    LabelsSource,
    load_case_labels,
    read_labels_table,
)
from multitask_unet.errors import DataError

__all__ = [
    "LAYOUTS",
    "CaseLabels",
    "DatasetIndex",
    "Layout",
    "detect_layout",
    "generic_label_names",
    "load_case_labels",
    "read_dataset",
]

#: File that :func:`read_dataset` reads case labels from when ``labels`` is not given.
DEFAULT_LABELS_FILE = "cases.csv"


def detect_layout(root: str | Path) -> str:
    """Name of the registered layout that recognises ``root`` (highest priority first).

    Raises:
        DataError: ``root`` does not exist or no layout recognises it; the message describes
            each layout.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"Dataset {root} does not exist; check the path")
    layouts = sorted((LAYOUTS.get(n)() for n in LAYOUTS), key=lambda lay: -lay.priority)
    for layout in layouts:
        if layout.detect(root):
            return layout.name
    expected = "\n".join(f"  {lay.name}: {lay.description}" for lay in layouts)
    raise DataError(
        f"No dataset layout recognises {root}. Arrange it as one of:\n{expected}\n"
        "or name the layout explicitly: --layout NAME on the command line, layout=NAME in Python"
    )


def read_dataset(
    root: str | Path,
    *,
    layout: str = "auto",
    labels: LabelsSource | CaseLabels | None = None,
    label_names: Mapping[str, int] | None = None,
) -> DatasetIndex:
    """Index a dataset's cases (image channels, mask, subtype label, split) without opening files.

    Args:
        root: Dataset folder (or manifest CSV).
        layout: A name from :data:`LAYOUTS` (``"study"``, ``"nnunet"``, ``"manifest"``) or
            ``"auto"`` to detect it.
        labels: Case-level labels: a CSV/JSON file or a ``{case_id: label}`` mapping (see
            :mod:`~multitask_unet.data.readers.labels`). By default ``root/cases.csv`` is used
            when it has case and label columns. In the study layout they are cross-checked
            against the ``subtypeK`` folders; in the other layouts they provide the labels.
        label_names: Segmentation labels ``{name: value}``, overriding ``dataset.json``. Where
            neither declares them, the values found in the masks are used, named
            ``labelK`` (see :meth:`DatasetIndex.with_found_labels`).

    Returns:
        The :class:`DatasetIndex`; problems seen from file names alone are in its ``issues``
        (run :func:`~multitask_unet.data.validation.validate_dataset` for a full check).

    Raises:
        DataError: ``root`` is missing or of no known layout, or ``labels`` is unreadable.
        RegistryError: ``layout`` is not registered (close names are suggested).
    """
    root = Path(root)
    name = detect_layout(root) if layout == "auto" else layout
    layout_obj = LAYOUTS.get(name)()
    if not root.exists():
        raise DataError(f"Dataset {root} does not exist; check the path")
    if labels is not None:
        case_labels: CaseLabels | None = load_case_labels(labels)
    else:
        folder = root if root.is_dir() else root.parent
        case_labels = read_labels_table(folder / DEFAULT_LABELS_FILE)
    index = layout_obj.read(root, labels=case_labels)
    if label_names is not None:
        index = replace(index, label_names=dict(label_names))
    return index
