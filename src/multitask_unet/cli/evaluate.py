"""``multitask-unet evaluate``: score a prediction folder against a reference dataset.

Example::

    multitask-unet evaluate --pred runs/pred --ref data/pancreas --split validation -o runs/report
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from multitask_unet.cli._options import seed
from multitask_unet.cli._paths import output_folder

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions (Dice, NSD, HD95, AUC, F1) against a reference dataset",
        description=(
            "Compare OUT/CASE.nii.gz label maps and OUT/predictions.csv with a reference dataset "
            "(e.g. SPLIT/subtypeK/CASE.nii.gz) and write REPORT/cases.csv, REPORT/summary.json and "
            "PNG figures. Both-empty regions score Dice = NSD = 1 and HD95 = 0 (Metrics Reloaded)."
        ),
    )
    parser.add_argument("--pred", required=True, type=Path, metavar="OUT", help="prediction folder")
    parser.add_argument("--ref", required=True, type=Path, metavar="DATA", help="reference dataset")
    parser.add_argument(
        "-o", "--output", required=True, type=output_folder, metavar="REPORT", help="report folder"
    )
    parser.add_argument(
        "--split",
        default=None,
        help="evaluate exactly this reference split (every case needs a prediction); "
        "default: the predicted cases",
    )
    parser.add_argument(
        "--layout",
        default="auto",
        help="layout of the reference dataset: study, nnunet, manifest or auto (default)",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="EvaluationConfig as .yaml or .json"
    )
    parser.add_argument(
        "--region",
        action="append",
        default=None,
        metavar="NAME=L1,L2",
        help="region to score (repeatable); default: one per foreground label of the dataset, "
        "named after it, and their union 'foreground'",
    )
    parser.add_argument(
        "--nsd-tolerance", type=float, default=None, metavar="MM",
        help="tolerance of the normalised surface Dice in mm (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--n-bootstrap", type=int, default=None, metavar="N",
        help="bootstrap resamples of the confidence intervals (default 1000; 0: none)",
    )  # fmt: skip
    parser.add_argument("--seed", type=seed, default=None, help="seed of the bootstrap (default 0)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print the headline metrics."""
    from multitask_unet.evaluation import EvaluationConfig, Region, evaluate

    config = EvaluationConfig.load(args.config) if args.config else EvaluationConfig()
    changes: dict[str, Any] = {}
    if args.region:
        changes["regions"] = [Region.parse(text).to_dict() for text in args.region]
    if args.nsd_tolerance is not None:
        changes["nsd_tolerance_mm"] = args.nsd_tolerance
    if args.n_bootstrap is not None:
        changes["n_bootstrap"] = args.n_bootstrap
    if args.seed is not None:
        changes["seed"] = args.seed
    if changes:
        config = config.replace(**changes)
    report = evaluate(
        args.pred,
        args.ref,
        output_dir=args.output,
        split=args.split,
        layout=args.layout,
        config=config,
        figures=not args.no_figures,
    )
    cases = report.summary["cases"]
    print(
        f"evaluated {cases['evaluated']} cases ({cases['segmentation']} segmentation, "
        f"{cases['classification']} classification) -> {args.output}"
    )
    if "why_no_classification" in cases:
        print(f"  no classification cases: {cases['why_no_classification']}")
    if text := report.format_summary(digits=4):
        print("  " + text.replace("\n", "\n  "))
    return 0
