"""The on-disk cache of preprocessed cases: memory-mappable, atomic, reused across runs.

Layout of a cache folder (one plan per folder)::

    CACHE/
      plan.json                 the plan the cache was made with
      CASE/image.npy            (C, D, H, W) float32
      CASE/seg.npy              (1, D, H, W) uint8 (absent for unlabelled cases)
      CASE/properties.json      CaseProperties, including the cache key

Every file is written to a temporary file and renamed, and ``properties.json`` is written last,
so a case counts as cached only once all its files are complete. A case whose
``properties.json`` carries the plan's :meth:`~multitask_unet.data.planning.Plan.cache_key` is
skipped by :func:`preprocess_dataset`; any other is preprocessed again.

Example:
    >>> preprocess_dataset(records, plan, "cache/", workers=2)  # doctest: +SKIP
    >>> case = load_cached_case("cache/", "quiz_2_044")  # doctest: +SKIP
    >>> case.image.shape, type(case.image)  # doctest: +SKIP
    ((1, 38, 75, 125), <class 'numpy.memmap'>)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multitask_unet._atomic import save_npy_atomic, write_text_atomic
from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.data._parallel import parallel_map
from multitask_unet.data.planning.plan import Plan
from multitask_unet.data.preprocessing.case import CaseProperties, preprocess_case
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError, DataError

__all__ = [
    "CachedCase",
    "PreprocessSummary",
    "list_cached_cases",
    "load_cached_case",
    "load_cached_plan",
    "preprocess_dataset",
]

PLAN_FILE = "plan.json"
IMAGE_FILE = "image.npy"
SEG_FILE = "seg.npy"
PROPERTIES_FILE = "properties.json"


@dataclass(frozen=True, eq=False)
class CachedCase:
    """A cached case, its arrays memory-mapped (read-only) unless loaded with ``mmap=False``.

    Attributes:
        case_id: The case.
        image: ``(C, D, H, W)`` float32.
        seg: ``(1, D, H, W)`` integer label map, or ``None`` for an unlabelled case.
        properties: The :class:`~multitask_unet.data.preprocessing.CaseProperties`.
    """

    case_id: str
    image: np.ndarray
    seg: np.ndarray | None
    properties: CaseProperties


@dataclass(frozen=True)
class PreprocessSummary:
    """What :func:`preprocess_dataset` did: case ids preprocessed now and found cached."""

    processed: tuple[str, ...]
    skipped: tuple[str, ...]


def _read_properties(case_dir: Path) -> CaseProperties | None:
    path = case_dir / PROPERTIES_FILE
    if not path.is_file():
        return None
    try:
        return CaseProperties.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None  # unreadable or from an older layout: treat as not cached


def _is_cached(case_dir: Path, cache_key: str) -> bool:
    props = _read_properties(case_dir)
    if props is None or props.cache_key != cache_key or not (case_dir / IMAGE_FILE).is_file():
        return False
    return props.mask_file is None or (case_dir / SEG_FILE).is_file()


def load_cached_plan(cache_dir: str | os.PathLike[str]) -> Plan:
    """The plan a cache folder was made with."""
    path = Path(cache_dir) / PLAN_FILE
    if not path.is_file():
        raise DataError(
            f"{cache_dir} is not a preprocessing cache (no {PLAN_FILE}); create it with "
            "`multitask-unet preprocess DATA --plan plan.json -o CACHE`"
        )
    return Plan.load(path)


def list_cached_cases(cache_dir: str | os.PathLike[str]) -> list[str]:
    """Sorted ids of the complete cases made with the cache folder's plan."""
    key = load_cached_plan(cache_dir).cache_key()
    root = Path(cache_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _is_cached(p, key))


def load_cached_case(
    cache_dir: str | os.PathLike[str],
    case_id: str,
    *,
    mmap: bool = True,
    cache_key: str | None = None,
) -> CachedCase:
    """Load one cached case.

    Args:
        cache_dir: The cache folder.
        case_id: The case to load.
        mmap: Memory-map the arrays read-only (``np.load(mmap_mode="r")``); ``False`` reads them.
        cache_key: If given, the case must have been made with this key (``plan.cache_key()``);
            :func:`list_cached_cases` already lists only cases of the folder's plan.

    Raises:
        DataError: The case is missing, incomplete or made with another plan.
    """
    case_dir = Path(cache_dir) / case_id
    props = _read_properties(case_dir)
    if props is None or not (case_dir / IMAGE_FILE).is_file():
        raise DataError(
            f"case {case_id!r} is not in the cache {cache_dir} (or is incomplete); run "
            "`multitask-unet preprocess` for it"
        )
    if cache_key is not None and props.cache_key != cache_key:
        raise DataError(
            f"case {case_id!r} in {cache_dir} was made with another plan (key "
            f"{props.cache_key}, expected {cache_key}); run `multitask-unet preprocess` again"
        )
    mode = "r" if mmap else None
    image = np.load(case_dir / IMAGE_FILE, mmap_mode=mode)
    seg_path = case_dir / SEG_FILE
    seg = np.load(seg_path, mmap_mode=mode) if seg_path.is_file() else None
    return CachedCase(case_id=case_id, image=image, seg=seg, properties=props)


def _preprocess_and_write(record: CaseRecord, *, plan: Plan, cache_dir: Path) -> str:
    case = preprocess_case(record, plan.preprocessing)
    case_dir = cache_dir / record.case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / PROPERTIES_FILE).unlink(missing_ok=True)  # the case is incomplete from here on
    save_npy_atomic(case_dir / IMAGE_FILE, case.image)
    if case.seg is not None:
        save_npy_atomic(case_dir / SEG_FILE, case.seg)
    else:
        (case_dir / SEG_FILE).unlink(missing_ok=True)
    write_text_atomic(case_dir / PROPERTIES_FILE, case.properties.to_json(indent=None))
    return record.case_id


@renamed_kwargs(num_workers="workers")
def preprocess_dataset(
    cases: Sequence[CaseRecord],
    plan: Plan,
    cache_dir: str | os.PathLike[str],
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> PreprocessSummary:
    """Preprocess cases into ``cache_dir``, skipping those already cached with this plan.

    Args:
        cases: The records (labelled or not).
        plan: The :class:`~multitask_unet.data.planning.Plan`; saved as ``CACHE/plan.json``.
        cache_dir: The cache folder (created if needed).
        workers: Worker processes (1: in this process). ``num_workers``, its former name,
            still works with a ``FutureWarning``.
        overwrite: Preprocess every case again even if cached.
        progress: Show a progress bar.

    Returns:
        A :class:`PreprocessSummary`.
    """
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"case ids must be unique, repeated: {', '.join(duplicates)}")
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    plan.save(root / PLAN_FILE)
    key = plan.cache_key()
    todo = [c for c in cases if overwrite or not _is_cached(root / c.case_id, key)]
    worker = functools.partial(_preprocess_and_write, plan=plan, cache_dir=root)
    done = parallel_map(worker, todo, workers=workers, desc="Preprocess", progress=progress)
    skipped = tuple(c.case_id for c in cases if c.case_id not in set(done))
    return PreprocessSummary(processed=tuple(done), skipped=skipped)
