"""The cases the training loaders read: ``tio.Subject`` s, or cases of a preprocessing cache.

A case of a cache folder is a :class:`CacheEntry`: a folder, a case id and a label, opened as
memory maps only where it is used (in each loader worker), so that no voxel is read before a
patch is cropped. :func:`cache_entries` lists a folder's cases;
:mod:`~multitask_unet.data.sampling.loader` draws patches from them.

Example:
    >>> import torch, torchio as tio
    >>> subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)),
    ...                       label=1, case_id="c0")
    >>> cases, opened = open_cases([subject])
    >>> case_label(cases[0]), opened
    (1, {})
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchio as tio

from multitask_unet.data.sampling.patches import CLASS_LOCATIONS_KEY
from multitask_unet.errors import DataError

__all__ = ["CacheEntry", "cache_entries", "case_label", "open_cases"]


@dataclass(frozen=True)
class CacheEntry:
    """A case of a preprocessing cache folder, opened lazily (in each worker) as memory maps.

    Attributes:
        cache_dir: The cache folder (see :mod:`multitask_unet.data.preprocessing.cache`).
        case_id: The case.
        label: Its class, or None.
    """

    cache_dir: Path
    case_id: str
    label: int | None = None

    def open(self) -> tio.Subject:
        """A subject whose tensors are memory maps; no voxel is read until a patch is cropped."""
        from multitask_unet.data.preprocessing.cache import load_cached_case

        return _subject(load_cached_case(self.cache_dir, self.case_id, mmap=True), self.label)


def _subject(case: Any, label: int | None) -> tio.Subject:
    """A ``tio.Subject`` over a :class:`multitask_unet.data.preprocessing.cache.CachedCase`'s memory maps."""
    with warnings.catch_warnings():  # read-only memory maps; patches are always copies
        warnings.simplefilter("ignore", UserWarning)
        entries: dict[str, Any] = {"image": tio.ScalarImage(tensor=torch.from_numpy(case.image))}
        if case.seg is not None:
            entries["seg"] = tio.LabelMap(tensor=torch.from_numpy(case.seg))
    entries.update(label=label, case_id=case.case_id)
    entries[CLASS_LOCATIONS_KEY] = case.properties.class_locations_array()
    return tio.Subject(entries)


def _open_cache(cache_dir: str | os.PathLike[str]) -> list[tuple[CacheEntry, tio.Subject]]:
    from multitask_unet.data.preprocessing.cache import list_cached_cases, load_cached_case

    ids = list_cached_cases(cache_dir)
    if not ids:
        raise DataError(f"No cached case in {cache_dir}; run `multitask-unet preprocess` first")
    root, out = Path(cache_dir), []
    for case_id in ids:
        case = load_cached_case(root, case_id, mmap=True)
        label = case.properties.label
        out.append((CacheEntry(root, case_id, label), _subject(case, label)))
    return out


def cache_entries(cache_dir: str | os.PathLike[str]) -> list[CacheEntry]:
    """Every complete case of a preprocessing cache folder, with its label, sorted by id."""
    return [entry for entry, _ in _open_cache(cache_dir)]


def open_cases(
    source: Sequence[tio.Subject | CacheEntry] | str | os.PathLike[str],
) -> tuple[list[tio.Subject | CacheEntry], dict[int, tio.Subject]]:
    """The cases of a loader's source and the subjects already opened while listing them.

    Args:
        source: Subjects, :class:`CacheEntry` s, or a preprocessing cache folder (whose cases
            are opened once here to read their labels; the subjects are returned by index).

    Raises:
        DataError: No case, a case of another type, or a cache folder without cases.
    """
    if isinstance(source, (str, os.PathLike)):
        opened = _open_cache(source)
        return [entry for entry, _ in opened], {i: sub for i, (_, sub) in enumerate(opened)}
    cases = list(source)
    if not cases:
        raise DataError("The training loader got no cases; pass subjects or a cache folder")
    for case in cases:
        if not isinstance(case, (tio.Subject, CacheEntry)):
            raise DataError(f"Cases must be tio.Subject or CacheEntry, got {type(case).__name__}")
    return cases, {}


def case_label(case: tio.Subject | CacheEntry) -> int | None:
    """The class of a case, or ``None`` when it has none (missing or negative)."""
    label = case.label if isinstance(case, CacheEntry) else case.get("label")
    return None if label is None or int(label) < 0 else int(label)
