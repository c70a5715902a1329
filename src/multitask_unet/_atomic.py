"""Atomic file writes: a reader never sees a half-written file, even if the writer is killed.

Every file the library keeps (caches, plans, checkpoints, predictions, reports) is written to a
temporary file in the target folder and moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_path",
    "remove_stale_temps",
    "save_npy_atomic",
    "save_npz_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Parent folders are created, and temporary files that a killed writer of ``path`` left are
    removed (one writer per file). On an exception the temporary file is removed and ``path``
    is left as it was. ``suffix`` lets writers that infer the format from the name (e.g.
    nibabel with ``.nii.gz``) see the right extension.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual permissions
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(path: str | os.PathLike[str]) -> None:
    """Delete temporary files that a killed writer of ``path`` left (``.NAME.*`` beside it)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*"):
        stale.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` (memory-mappable) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def save_npz_atomic(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Save ``arrays`` as a compressed ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
