"""The budget tests' fingerprint: that of the training tests' phantoms."""

from __future__ import annotations

import pytest
from _helpers import Prepared

from multitask_unet.data.planning.fingerprint import DatasetFingerprint


@pytest.fixture(scope="module")
def fingerprint(prepared: Prepared) -> DatasetFingerprint:
    return prepared.plan.fingerprint
