"""Checks of folders the library writes into, made before any work.

A report or run folder that is a file, or that lies below a file, cannot be created; without the
check the error would come as a raw ``FileExistsError`` after the work was done.
"""

from __future__ import annotations

import os
from pathlib import Path

from multitask_unet.errors import ConfigError

__all__ = ["check_creatable", "check_output_folder"]


def check_output_folder(path: str | os.PathLike[str], *, what: str = "") -> Path:
    """``path`` as a folder to write into: an existing folder, or a new path that can be made.

    Args:
        path: The folder.
        what: What the folder is called in the error, e.g. ``"the report folder output_dir"``.

    Raises:
        ConfigError: ``path`` is a file, or lies below one.

    Example:
        >>> check_output_folder("reports/new")
        PosixPath('reports/new')
    """
    text = os.fspath(path)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{what + ' ' if what else ''}{text} is a file, not a folder; give a new or an "
            "existing folder"
        )
    check_creatable(path, text=text)
    return path


def check_creatable(path: Path, *, text: str | None = None) -> None:
    """Refuse a path whose nearest existing parent is a file (it cannot be created).

    Args:
        path: The file or folder to be written.
        text: ``path`` as the user wrote it, for the message (default ``str(path)``).

    Raises:
        ConfigError: A parent of ``path`` is a file.
    """
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"{text or path} cannot be created: {parent} is a file, not a folder; choose "
                    "a path in a folder"
                )
            return
