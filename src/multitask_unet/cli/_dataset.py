"""What every command that reads a dataset shares: the ``DATA`` argument and ``--layout``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["dataset_command"]


def dataset_command(
    subparsers: Any,
    name: str,
    *,
    help: str,
    description: str,
    data_help: str = "dataset folder or manifest CSV",
    **options: Any,
) -> argparse.ArgumentParser:
    """A subcommand reading the dataset ``DATA`` in a layout (``--layout``, default: detected)."""
    from multitask_unet.data.readers import LAYOUTS

    parser = subparsers.add_parser(name, help=help, description=description, **options)
    parser.add_argument("data", type=Path, metavar="DATA", help=data_help)
    parser.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *LAYOUTS.list()],
        help="dataset layout (default: detect it)",
    )
    return parser
