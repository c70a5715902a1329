"""Renamed keyword arguments: the new name works, the former one still works with a
``FutureWarning`` naming the new argument, and both give the same result.

- Worker processes are ``workers`` everywhere (``compute_fingerprint`` and
  ``preprocess_dataset`` said ``num_workers``); torch's and ``LoaderConfig``'s data-loading
  ``num_workers`` are another thing and keep their name.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.planning.plan import create_plan
from multitask_unet.data.preprocessing.cache import preprocess_dataset
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.validation import validate_dataset
from multitask_unet.training import train
from multitask_unet.training.crossval import cross_validate


def _warns_renamed(old: str, new: str) -> pytest.WarningsChecker:
    return pytest.warns(FutureWarning, match=rf"\({old}=\.\.\.\) is deprecated; use {new}=\.\.\.")


@renamed_kwargs(num_workers="workers", mode="class_weights")
def _example(value: int, *, workers: int = 2, class_weights: str = "balanced") -> tuple:
    """Docstring kept."""
    return value, workers, class_weights


def test_renamed_kwargs_maps_the_old_name_and_warns_at_the_callers_line() -> None:
    assert _example(1, workers=3, class_weights="none") == (1, 3, "none")
    with _warns_renamed("num_workers", "workers") as record:
        assert _example(1, num_workers=3) == (1, 3, "balanced")
    assert record[0].filename == __file__  # points at the call, not at the helper
    assert "_example(num_workers=...)" in str(record[0].message)
    with pytest.warns(FutureWarning) as record:
        assert _example(1, num_workers=4, mode="none") == (1, 4, "none")
    assert len(record) == 2
    with pytest.raises(TypeError, match="both num_workers= and workers="):
        _example(1, num_workers=3, workers=3)
    assert list(inspect.signature(_example).parameters) == ["value", "workers", "class_weights"]
    assert _example.__name__ == "_example" and _example.__doc__ == "Docstring kept."


def test_worker_processes_are_called_workers_everywhere() -> None:
    for fn in (validate_dataset, compute_fingerprint, preprocess_dataset, train, cross_validate):
        parameters = inspect.signature(fn).parameters
        assert "workers" in parameters and "num_workers" not in parameters, fn.__name__


def test_num_workers_still_works_for_fingerprint_and_preprocessing(
    phantom_dataset: DatasetIndex, tmp_path: Path
) -> None:
    records = list(phantom_dataset.split("train").records)[:2]
    options = {"progress": False, "intensity_samples": 500}
    new = compute_fingerprint(records, workers=1, **options)
    with _warns_renamed("num_workers", "workers") as record:
        old = compute_fingerprint(records, num_workers=1, **options)
    assert "compute_fingerprint(num_workers=...)" in str(record[0].message)
    assert old.to_dict() == new.to_dict()

    plan = create_plan(new, size_divisor=(4, 8, 8))
    kept = preprocess_dataset(records, plan, tmp_path / "new", workers=1, progress=False)
    with _warns_renamed("num_workers", "workers"):
        renamed = preprocess_dataset(records, plan, tmp_path / "old", num_workers=1, progress=False)
    assert renamed == kept and len(kept.processed) == 2
    files = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*.npy"))
    assert files
    for name in files:
        assert np.array_equal(np.load(tmp_path / "new" / name), np.load(tmp_path / "old" / name))
