"""``multitask-unet validate``: check a dataset and list every problem with its fix.

Exit code 0 when the dataset is usable (warnings allowed), 1 when anything is wrong. It also
warns when a class of the train split has too few cases for the case sampling strategy
(``--class-weights``, ``--max-oversampling``; see
:func:`~multitask_unet.data.sampling.sampling_warnings`); these warnings never fail the check.

Example::

    multitask-unet validate ../shared/data/pancreas_quiz_subset
    multitask-unet validate data/Dataset501_Pancreas --layout nnunet --labels case_labels.csv
    multitask-unet validate data/lopsided --class-weights inverse_sqrt --max-oversampling 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import add_workers_option

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``validate`` subcommand."""
    from multitask_unet.data.sampling import CLASS_WEIGHTS, DEFAULT_MAX_OVERSAMPLING

    parser = dataset_command(
        subparsers,
        "validate",
        help="check a dataset (files, geometry, labels) and list every problem with its fix",
        description=(
            "Read every image and mask of DATA once and report all problems in one pass: missing "
            "or unreadable files (and files of another ending beside them), 2D/4D volumes, "
            "NaN/Inf, constant images, shape/spacing/origin/direction mismatches, headers that "
            "nnU-Net's reader reads differently (no or disagreeing qform/sform), non-integer, "
            "negative, undeclared or non-consecutive labels, duplicate ids, empty splits and "
            "subtypes. Then warn when a subtype of the train split has too few cases for the "
            "case sampling strategy. Exit code 1 when there is an error, 0 otherwise (warnings "
            "allowed)."
        ),
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
    parser.add_argument(
        "--class-weights",
        default="balanced",
        choices=CLASS_WEIGHTS,
        help="case sampling strategy to check the train split's classes against (default balanced)",
    )
    parser.add_argument(
        "--max-oversampling",
        type=_oversampling,
        default=DEFAULT_MAX_OVERSAMPLING,
        metavar="X",
        help=(
            "cap on how many times its natural frequency a class is drawn, >= 1, or 'none' "
            f"(default {DEFAULT_MAX_OVERSAMPLING:g})"
        ),
    )
    add_workers_option(parser, default=None, what="threads reading files")
    parser.add_argument(
        "--json", action="store_true", help="print the report, with the sampling warnings, as JSON"
    )
    return parser


def _oversampling(text: str) -> float | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1:
        raise argparse.ArgumentTypeError(
            f"must be a number >= 1 (times a class's natural frequency) or 'none', got {text!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    """Validate ``args.data``, print the report and sampling warnings; 1 on errors, else 0."""
    from multitask_unet.data.readers import read_dataset
    from multitask_unet.data.validation import validate_dataset
    from multitask_unet.errors import DataError

    try:  # index once; an unreadable dataset is reported by validate_dataset itself
        index = read_dataset(args.data, layout=args.layout, labels=args.labels)
    except DataError:
        index = None
    report = validate_dataset(
        index if index is not None else args.data,
        layout=args.layout,
        labels=args.labels,
        label_tolerance=args.label_tolerance,
        geometry_tolerance=args.geometry_tolerance,
        workers=args.workers,
    )
    weights, cap = args.class_weights, args.max_oversampling
    notes = _sampling_warnings(index, weights, cap)
    if args.json:
        data = json.loads(report.to_json())
        data["sampling_warnings"] = notes
        print(json.dumps(data, indent=2))
    else:
        print(report)
        if notes:
            cap_text = "none" if cap is None else f"{cap:g}"
            print(
                f"\nSampling of the train split (--class-weights {weights}, --max-oversampling {cap_text}):"
            )
            print("\n".join(f"WARNING {w}" for w in notes))
    return 0 if report.ok else 1


def _sampling_warnings(index: Any, class_weights: str, cap: float | None) -> list[str]:
    """Warnings for the train split's class labels (none without labelled training cases)."""
    from multitask_unet.data.sampling import sampling_warnings

    if index is None or "train" not in index.splits:
        return []
    labels = [r.label for r in index.split("train").records]
    if all(label is None for label in labels):
        return []
    return sampling_warnings(
        labels, class_weights=class_weights, max_oversampling=cap, class_names=index.class_names
    )
