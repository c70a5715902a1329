"""The ``multitask-unet`` command line: a thin layer over the Python API.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence

from multitask_unet.cli._log import run_log
from multitask_unet.errors import MultitaskUNetError

__all__ = ["main"]

# Subcommand modules, in the order ``--help`` lists them.
_COMMANDS: tuple[str, ...] = (
    "models",
    "validate",
    "evaluate",
    "plan",
    "preprocess",
    "train",
    "crossval",
    "predict",
    "calibrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multitask-unet",
        description="Joint 3D segmentation and classification with nnU-Net-style networks.",
    )
    from multitask_unet import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        module = importlib.import_module(f"multitask_unet.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``multitask-unet``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    log = getattr(args, "_log", None)  # commands with a run folder keep a copy of their output
    with run_log(args.output / log, argv) if log else contextlib.nullcontext(), _plain_warnings():
        try:
            return int(args._run(args) or 0)
        except MultitaskUNetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # a named file the system refuses (permissions, read-only disk)
            if exc.filename is None:
                raise
            names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
            print(
                f"error: {names}: {exc.strerror or exc}; check the path and its permissions",
                file=sys.stderr,
            )
            return 2


@contextlib.contextmanager
def _plain_warnings() -> Iterator[None]:
    """Warnings printed as one line, ``warning: MESSAGE``, without Python's file, line and
    source line (only the text changes: recorders such as ``pytest.warns`` still see them)."""

    def one_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
        kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
        return f"warning{kind}: {message}\n"

    original, warnings.formatwarning = warnings.formatwarning, one_line
    try:
        yield
    finally:
        warnings.formatwarning = original
