"""The examples in the evaluation docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "multitask_unet.evaluation",
    "multitask_unet.evaluation.bootstrap",
    "multitask_unet.evaluation.calibration_metrics",
    "multitask_unet.evaluation.classification",
    "multitask_unet.evaluation.config",
    "multitask_unet.evaluation.figures",
    "multitask_unet.evaluation.report",
    "multitask_unet.evaluation.report_writer",
    "multitask_unet.evaluation.segmentation",
    "multitask_unet.evaluation.surface",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
