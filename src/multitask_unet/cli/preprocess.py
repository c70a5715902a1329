"""``multitask-unet preprocess``: preprocess a dataset with a plan into an on-disk cache.

Example::

    multitask-unet preprocess ../shared/data/pancreas_quiz_subset --plan plan.json -o cache/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import add_workers_option
from multitask_unet.cli._paths import output_folder

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``preprocess`` subcommand."""
    parser = dataset_command(
        subparsers,
        "preprocess",
        help="reorient, crop, normalise and resample cases into a memory-mappable cache",
        description=(
            "Preprocess the cases of DATA as the plan says (canonical orientation, crop to "
            "non-zero, CT normalisation, resampling to the target spacing) and store them under "
            "CACHE/CASE/{image.npy, seg.npy, properties.json}. Cases already cached with the "
            "same plan are skipped, so the command can be rerun after an interruption."
        ),
    )
    parser.add_argument(
        "--plan", required=True, type=Path, metavar="PLAN", help="plan from `multitask-unet plan`"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=output_folder, metavar="CACHE", help="cache folder"
    )
    parser.add_argument(
        "--split",
        action="append",
        default=None,
        help="split to preprocess (repeatable; default: every split)",
    )
    add_workers_option(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="preprocess cached cases again too"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Preprocess and print what was done."""
    from multitask_unet.data.planning import Plan
    from multitask_unet.data.preprocessing.cache import preprocess_dataset
    from multitask_unet.data.readers import read_dataset

    plan = Plan.load(args.plan)
    index = read_dataset(args.data, layout=args.layout)
    records = list(index.records)
    if args.split:
        records = [r for name in args.split for r in index.split(name).records]
    summary = preprocess_dataset(
        records,
        plan,
        args.output,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"preprocessed {len(summary.processed)} case(s), {len(summary.skipped)} already cached, "
        f"into {args.output} (cache key {plan.cache_key()})"
    )
    return 0
