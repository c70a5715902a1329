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
        type=Path,
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
    parser.add_argument("--device", default="cpu", help="device of the network (default: cpu)")
    group = parser.add_argument_group(
        "predictor options", "use the settings you predict with: they change the logits"
    )
    group.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="network precision (default float32)",
    )
    group.add_argument("--overlap", type=float, default=0.5, help="window overlap (0.5)")
    group.add_argument(
        "--mirror-axes",
        default="0,1,2",
        help="axes mirrored for test-time augmentation, e.g. '0,1,2' (default) or '' for none",
    )
    group.add_argument("--batch-size", type=int, default=1, help="windows per network call")
    group.add_argument(
        "--cls-weighting",
        default="ownership",
        choices=["ownership", "foreground"],
        help="voxel weights of classification pooling (default ownership)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print one line per case")
    return parser


def run(args: argparse.Namespace) -> int:
    """Fit, store and print the calibration of every head."""
    import torch

    from multitask_unet.errors import ConfigError
    from multitask_unet.inference.checkpoint_calibration import calibrate_checkpoint

    try:
        mirror_axes = tuple(int(a) for a in args.mirror_axes.replace(" ", "").split(",") if a)
    except ValueError:
        raise ConfigError(
            f"--mirror-axes must be comma-separated axes like 0,1,2, got {args.mirror_axes!r}"
        ) from None
    options = {
        "overlap": args.overlap,
        "mirror_axes": mirror_axes,
        "window_batch_size": args.batch_size,
        "dtype": None if args.dtype == "float32" else getattr(torch, args.dtype),
        "cls_weighting": args.cls_weighting,
    }
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
