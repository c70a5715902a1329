"""Fixtures of the training tests: one tiny phantom dataset, planned and cached once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _helpers import Prepared, prepare


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """16^3 phantoms (6 train, 2 validation), their plan and preprocessing cache."""
    root = tmp_path_factory.mktemp("training_data")
    return prepare(root / "phantoms", root / "cache")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Bitwise-reproducible CPU kernels need the same thread count in every process."""
    torch.set_num_threads(1)
