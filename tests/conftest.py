"""Fixtures shared by every test folder.

- ``real_data``: the folder named by ``MULTITASK_UNET_TEST_DATA`` (the shared real CT, i.e.
  ``../shared/data``); the test is skipped, with the reason, when the variable is unset.
- ``quiz_subset``: ``real_data / "pancreas_quiz_subset"`` (the study's layout, 59 cases).
- ``phantom_dataset``: a tiny synthetic dataset in the study's layout written to ``tmp_path``
  (6 train / 3 validation / 3 test cases of 24 x 24 x 12 voxels, labels 0/1/2, every subtype in
  every split, masks for the test cases too, ``cases.csv`` and ``dataset.json``), returned as a
  :class:`~multitask_unet.data.readers.DatasetIndex`; ``phantom_dataset.root`` is its folder.
  Each test gets its own copy, so tests may modify it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/_references.py for every test module

from _references import real_data_folder
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.readers import DatasetIndex

#: Keyword arguments of ``write_phantom_dataset`` behind the ``phantom_dataset`` fixture.
TINY_PHANTOMS = {
    "n_train": 6,
    "n_validation": 3,
    "n_test": 3,
    "shape": (24, 24, 12),
    "spacing": (2.0, 2.0, 3.0),
    "class_counts": (1, 1, 1),
    "seed": 0,
}


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared real CT folder (``MULTITASK_UNET_TEST_DATA``); skips the test when unset."""
    return real_data_folder()


@pytest.fixture(scope="session")
def quiz_subset(real_data: Path) -> Path:
    """The study's real cases, ``pancreas_quiz_subset`` (skips when absent)."""
    path = real_data / "pancreas_quiz_subset"
    if not path.is_dir():
        pytest.fail(f"{path} is missing from MULTITASK_UNET_TEST_DATA={real_data}; point the "
                    "variable to the shared real CT folder", pytrace=False)  # fmt: skip
    return path


@pytest.fixture
def phantom_dataset(tmp_path: Path) -> DatasetIndex:
    """A tiny phantom dataset in the study's layout, written to ``tmp_path / "phantoms"``."""
    return write_phantom_dataset(tmp_path / "phantoms", **TINY_PHANTOMS)
