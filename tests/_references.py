"""The reference implementations the parity tests compare with (nnU-Net and its libraries).

Locally, a reference that cannot be imported skips the tests that use it, with the reason. In CI
(``.ci/run`` sets ``MULTITASK_UNET_REQUIRE_REFERENCES=1``) it fails them, so a broken install
cannot make parity tests disappear quietly. Modules name a reference with :func:`reference`,
which imports it only when a test first uses it: tests of the same module that do not compare
with the reference run either way.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

__all__ = ["real_data_folder", "reference", "require"]

STRICT_VARIABLE = "MULTITASK_UNET_REQUIRE_REFERENCES"


def require(module: str, reason: str | None = None) -> ModuleType:
    """Import ``module``; without it, skip (locally) or fail (in CI) the calling test."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        why = reason or f"{module} is not installed (pip install -e '.[dev]')"
        if os.environ.get(STRICT_VARIABLE) == "1":
            pytest.fail(f"{why}: {error} ({STRICT_VARIABLE}=1 makes this a failure)", pytrace=False)
        pytest.skip(f"{why}: {error}")


class reference:
    """A reference module imported by :func:`require` on first attribute access."""

    def __init__(self, module: str, reason: str | None = None) -> None:
        self._name, self._reason, self._module = module, reason, None

    def _load(self) -> ModuleType:
        if self._module is None:
            self._module = require(self._name, self._reason)
        return self._module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)


def real_data_folder() -> Path:
    """The shared real CT named by ``MULTITASK_UNET_TEST_DATA``: unset skips the test, a
    folder that is not there fails it (the real-data tests must not vanish quietly)."""
    root = os.environ.get("MULTITASK_UNET_TEST_DATA")
    if not root:
        pytest.skip("MULTITASK_UNET_TEST_DATA is not set (point it to the shared real CT folder)")
    path = Path(root)
    if not path.is_dir():
        pytest.fail(
            f"MULTITASK_UNET_TEST_DATA={root} is not a folder; point it to the shared real CT "
            "folder (../shared/data) or unset it",
            pytrace=False,
        )
    return path
