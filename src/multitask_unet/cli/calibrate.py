"""``multitask-unet calibrate``: fit the classification heads' calibration on labelled cases.

Example::

    multitask-unet calibrate --checkpoint runs/model.pt data/pancreas --split validation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import add_predictor_options, predictor_options
from multitask_unet.cli._paths import output_file

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``calibrate`` subcommand."""
    parser = dataset_command(
        subparsers,
        "calibrate",
        help="fit temperature / Platt scaling of the subtype probabilities on labelled cases",
        description=(
            "Predict every labelled case of DATA with the sliding-window predictor, fit one "
            "calibration per classification head on the whole-case logits (temperature scaling "
            "for softmax heads, per-class Platt scaling for one-vs-rest heads) and store it in "
            "the checkpoint, which the predictor then applies. The predicted subtype never "
            "changes. Fit on cases the network was not trained on (e.g. --split validation)."
        ),
        data_help="labelled dataset or manifest CSV",
    )
    parser.add_argument(
        "--checkpoint", required=True, type=Path, metavar="CKPT", help="checkpoint to calibrate"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=output_file("calibrated.pt"),
        default=None,
        metavar="OUT",
        help="write the calibrated checkpoint here (default: replace CKPT atomically)",
    )
    parser.add_argument(
        "--split", default=None, help="use only this split (default: every labelled case)"
    )
    parser.add_argument(
        "--method",
        default="auto",
        choices=["auto", "temperature", "platt"],
        help="auto (default): temperature for softmax heads, platt for one-vs-rest heads",
    )
    group = parser.add_argument_group(
        "predictor options", "use the settings you predict with: they change the logits"
    )
    add_predictor_options(group)
    parser.add_argument("--quiet", action="store_true", help="do not print one line per case")
    return parser


def run(args: argparse.Namespace) -> int:
    """Fit, store and print the calibration of every head."""
    from multitask_unet.inference.checkpoint_calibration import calibrate_checkpoint

    options = predictor_options(args)
    result = calibrate_checkpoint(
        args.checkpoint,
        args.data,
        split=args.split,
        layout=args.layout,
        method=args.method,
        output=args.output,
        device=args.device,
        predictor_options=options,
        progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    print(f"calibrated on {len(result.case_ids)} labelled case(s) -> {result.path}")
    print("  head        method       parameters              ECE (15 bins)    Brier         NLL")
    for name, cal in result.calibrations.items():
        if cal.temperature is not None:
            params = f"T = {cal.temperature:.3f}"
        else:
            params = "a = " + ",".join(f"{a:.2f}" for a in cal.scale)
        before, after = result.metrics[name]["uncalibrated"], result.metrics[name]["calibrated"]
        cells = "  ".join(f"{before[m]:.3f} -> {after[m]:.3f}" for m in ("ece", "brier", "nll"))
        print(f"  {name:10s}  {cal.method:11s}  {params:22s}  {cells}")
    for name, count in result.reordered.items():
        if count:
            print(
                f"  note: for {count} of {len(result.case_ids)} cases the largest calibrated "
                f"probability of head {name!r} is not its predicted subtype (per-class maps "
                "cross; the predicted subtype stays argmax of the raw logits). Refit with "
                "--method temperature to keep them in agreement."
            )
    return 0
