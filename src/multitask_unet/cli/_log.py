"""A copy of what a command prints, kept in the folder it writes (``RUN/train.log``, ...).

Everything written to stdout and stderr is also appended to the log, line by line; a progress
bar's in-place updates (text before a carriage return) are left out, so the log holds its last
state. Lines are kept in memory until the folder exists: a command refused before any work
leaves no folder behind. Under ``torchrun`` only rank 0 writes the log.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["run_log"]


class _Log:
    def __init__(self, path: Path, header: str) -> None:
        self.path = path
        self.pending = [header]

    def add(self, line: str) -> None:
        self.pending.append(line)
        if self.path.parent.is_dir():
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.writelines(self.pending)
            self.pending.clear()


class _Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` and hands finished lines to ``log``."""

    def __init__(self, stream: TextIO, log: _Log) -> None:
        self.stream, self.log, self.partial = stream, log, ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            self.log.add(line.rsplit("\r", 1)[-1] + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def run_log(path: Path, argv: Sequence[str]) -> Iterator[None]:
    """Copy stdout and stderr to ``path`` (appending) while the block runs."""
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log = _Log(Path(path), f"# {stamp} multitask-unet {' '.join(argv)}\n")
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
    try:
        yield
    finally:
        for tee in (sys.stdout, sys.stderr):
            if isinstance(tee, _Tee) and tee.partial:
                log.add(tee.partial.rsplit("\r", 1)[-1] + "\n")
        sys.stdout, sys.stderr = out, err
