"""``multitask-unet crossval``: K-fold cross-validation with out-of-fold post-processing choice.

Example::

    multitask-unet crossval ../shared/data/pancreas_quiz_subset -o runs/cv --folds 3 --budget 30m
    multitask-unet predict --model runs/cv ../shared/data/pancreas_quiz_subset/test -o pred/
    multitask-unet crossval DATA -o runs/cv_ft --plans MODEL/plans.json --configuration 3d_fullres \\
        --init-weights MODEL/fold_0/checkpoint_final.pth
"""

from __future__ import annotations

import argparse
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import seed
from multitask_unet.cli._paths import output_folder
from multitask_unet.cli._plans import PLANS_EPILOG, plans_planner

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``crossval`` subcommand."""
    from multitask_unet.cli.train import add_training_options

    parser = dataset_command(
        subparsers,
        "crossval",
        help="K-fold cross-validation: splits, a run per fold, out-of-fold predictions, "
        "post-processing choice",
        description=(
            "Pool the labelled cases of DATA, split them into folds stratified by class "
            "(RUN/splits.json), plan and preprocess once, train one run per fold (RUN/fold_K), "
            "predict each fold's held-out cases (RUN/validation) and choose post-processing "
            "(label weights, largest component) on them (RUN/postprocessing.json). "
            "`predict --model RUN` then predicts with the fold ensemble. Interrupted runs "
            "continue where they stopped."
        ),
        epilog=PLANS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_folder,
        metavar="RUN",
        help="cross-validation folder",
    )
    parser.add_argument(
        "--folds", type=int, metavar="K", help="number of folds (default 5; a run's own)"
    )
    parser.add_argument(
        "--only", type=int, nargs="+", metavar="K", help="run only these folds (0-based) now"
    )
    parser.add_argument(
        "--split-seed", type=seed, default=0, metavar="N", help="seed of the splits"
    )
    add_training_options(parser, budget_help="wall-clock budget of each fold, e.g. 30m")
    parser.set_defaults(_log="crossval.log")  # RUN/crossval.log: what the command prints
    return parser


def run(args: argparse.Namespace) -> int:
    """Cross-validate and print the summary."""
    from multitask_unet.cli.train import build_config
    from multitask_unet.training.crossval import cross_validate, labelled_records

    config = build_config(args)
    data, planner = args.data, None
    if args.plans is not None:
        data, planner = plans_planner(args, config, records=labelled_records, continuing=True)
    summary = cross_validate(
        data,
        args.output,
        config,
        folds=args.folds,
        budget=args.budget,
        seed=args.split_seed,
        only=args.only,
        layout=args.layout,
        workers=args.workers,
        intensity_samples=args.intensity_samples,
        planner=planner,
    )
    for name in ("raw", "postprocessed"):
        scores = summary.get(name) or {}
        line = ", ".join(f"{k} mean {v['mean']:.3f} median {v['median']:.3f}"
                         for k, v in scores.items())  # fmt: skip
        if line:
            print(f"{name}: {line}")
    chosen = (summary.get("postprocessing") or {}).get("chosen_on_every_case")
    if chosen:
        print(
            f"post-processing: label weights {chosen['label_weights']}, largest component "
            f"{chosen['largest_component']} -> {args.output / 'postprocessing.json'}"
        )
    print(f"summary: {args.output / 'crossval.json'}")
    return 0
