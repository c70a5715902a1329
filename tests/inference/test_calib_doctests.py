"""The examples in the calibration docstrings of inference run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "multitask_unet.inference.calibration",
    "multitask_unet.inference.checkpoint_calibration",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
