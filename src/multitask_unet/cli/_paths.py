"""Argument types of paths, refused while the command line is read.

A run folder that is a file, a plan file that is a folder, a path below a file, or a missing
weights file would otherwise fail only after validation, preprocessing or training.

Example::

    parser.add_argument("-o", "--output", type=output_folder, metavar="RUN")
    parser.add_argument("-o", "--output", type=output_file("plan.json"), metavar="PLAN")
    parser.add_argument("--init-weights", type=input_file, metavar="FILE")
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from multitask_unet._folders import check_creatable, check_output_folder
from multitask_unet.errors import ConfigError

__all__ = ["input_file", "output_file", "output_folder"]


def input_file(text: str) -> Path:
    """A file to read: it exists and is not a folder.

    Raises:
        argparse.ArgumentTypeError: ``text`` does not exist or is a folder.
    """
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist; check the path")
    return path


def output_folder(text: str) -> Path:
    """A folder to write into: an existing folder or a new path with no file in the way.

    Raises:
        argparse.ArgumentTypeError: ``text`` is a file or lies below one.
    """
    try:
        return check_output_folder(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def output_file(example: str) -> Callable[[str], Path]:
    """The type of a file to write: not a folder (``DIR/`` included), not below a file.

    Args:
        example: A file name suggested in the error, e.g. ``"plan.json"``.
    """

    def output_file(text: str) -> Path:
        path = Path(text)
        if text.endswith(("/", os.sep)) or path.is_dir():
            raise argparse.ArgumentTypeError(
                f"{text} is a folder; give a file path, e.g. {path / example}"
            )
        _check_parents(path, text)
        return path

    return output_file


def _check_parents(path: Path, text: str) -> None:
    """Refuse a path whose nearest existing parent is a file (it cannot be created)."""
    try:
        check_creatable(path, text=text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
