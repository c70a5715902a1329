"""``multitask-unet validate``: check a dataset and list every problem with its fix.

Exit code 0 when the dataset is usable (warnings allowed), 1 when anything is wrong.

Example::

    multitask-unet validate ../shared/data/pancreas_quiz_subset
    multitask-unet validate data/Dataset501_Pancreas --layout nnunet --labels case_labels.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``validate`` subcommand."""
    from multitask_unet.data.readers import LAYOUTS

    parser = subparsers.add_parser(
        "validate",
        help="check a dataset (files, geometry, labels) and list every problem with its fix",
        description=(
            "Read every image and mask of DATA once and report all problems in one pass: missing "
            "or unreadable files, 2D/4D volumes, NaN/Inf, shape/spacing/origin/direction "
            "mismatches, non-integer or undeclared labels, duplicate ids, empty splits and "
            "subtypes. Exit code 1 when there is an error, 0 otherwise (warnings allowed)."
        ),
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="dataset folder or manifest CSV")
    parser.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *LAYOUTS.list()],
        help="dataset layout (default: detect it)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="FILE",
        help="case labels as CSV/JSON (default: DATA/cases.csv when present)",
    )
    parser.add_argument(
        "--label-tolerance",
        type=float,
        default=1e-3,
        metavar="TOL",
        help="mask values this close to an integer are rounded with a warning (default 1e-3)",
    )
    parser.add_argument(
        "--geometry-tolerance",
        type=float,
        default=1e-3,
        metavar="TOL",
        help="relative tolerance on spacing, origin (voxels) and direction (default 1e-3)",
    )
    parser.add_argument("--workers", type=int, default=None, help="threads reading files")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    """Validate ``args.data``, print the report and return 1 on errors, else 0."""
    from multitask_unet.data.validation import validate_dataset

    report = validate_dataset(
        args.data,
        layout=args.layout,
        labels=args.labels,
        label_tolerance=args.label_tolerance,
        geometry_tolerance=args.geometry_tolerance,
        workers=args.workers,
    )
    print(report.to_json() if args.json else report)
    return 0 if report.ok else 1
