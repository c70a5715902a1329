"""Warnings of a command read as one line, not as Python's file, line and source."""

from __future__ import annotations

import warnings

from multitask_unet.cli import _plain_warnings
from multitask_unet.errors import DataWarning


def test_warnings_are_one_line_during_a_command_and_python_s_afterwards() -> None:
    with _plain_warnings():
        text = warnings.formatwarning("case a: 3 NaN voxels set to 0", DataWarning, "x.py", 7)
        other = warnings.formatwarning("old name", FutureWarning, "x.py", 7)
    assert text == "warning: case a: 3 NaN voxels set to 0\n"
    assert other == "warning (FutureWarning): old name\n"
    after = warnings.formatwarning("m", UserWarning, "x.py", 7, line="")
    assert "x.py:7: UserWarning: m" in after
