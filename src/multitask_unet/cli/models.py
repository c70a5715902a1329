"""``multitask-unet models``: list model presets, encoders, decoders and heads."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list model presets, encoders, decoders and classification heads",
        description="List what create_model and the configs can name. "
        "Example: multitask-unet models 'tiny*'",
    )
    parser.add_argument("pattern", nargs="?", help="shell pattern to filter names, e.g. 'tiny*'")
    return parser


def run(args: argparse.Namespace) -> int:
    from multitask_unet.decoders import DECODERS
    from multitask_unet.encoders import ENCODERS
    from multitask_unet.heads import HEADS
    from multitask_unet.models import PRESETS

    for title, registry in (
        ("presets", PRESETS),
        ("encoders", ENCODERS),
        ("decoders", DECODERS),
        ("heads", HEADS),
    ):
        names = registry.list(args.pattern)
        print(f"{title}: {', '.join(names) if names else '(none match)'}")
    return 0
