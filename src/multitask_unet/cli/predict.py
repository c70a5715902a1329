"""``multitask-unet predict``: segment and classify images with a checkpoint.

Example::

    multitask-unet predict --checkpoint model.pt ../shared/data/pancreas_quiz_subset/test -o pred/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_DTYPES = {"float32": None, "float16": "float16", "bfloat16": "bfloat16"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="predict label maps and class probabilities for images with a checkpoint",
        description=(
            "Preprocess each input as the checkpoint's plan says, predict it with sliding "
            "windows (Gaussian blending, mirroring), and write OUT/CASE.nii.gz (uint8 labels on "
            "the input's grid) and OUT/predictions.csv (case_id, prob_<class>..., predicted); "
            "with --save-probabilities also OUT/CASE.npz (segmentation probabilities). "
            "INPUT may be image files (.nii.gz, .nii, .nrrd, .mha), folders of them (e.g. the "
            "study's test/ folder), DICOM series folders or a dataset root. Finished cases are "
            "skipped, so an interrupted run can be restarted; --overwrite predicts them again."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders")
    parser.add_argument(
        "--checkpoint", required=True, type=Path, metavar="CKPT", help="model checkpoint (.pt)"
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(_DTYPES),
        help="network precision (float16 / bfloat16 use autocast; default float32)",
    )
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap (0.5)")
    parser.add_argument(
        "--mirror-axes",
        default="0,1,2",
        help="axes mirrored for test-time augmentation, e.g. '0,1,2' (default) or '' for none",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="network batch (windows x mirrored copies); default: one window's mirrored copies "
        "on the CPU, 1 on GPUs",
    )
    parser.add_argument("--cls-head", default=None, help="head written to predictions.csv")
    parser.add_argument(
        "--cls-weighting",
        default="ownership",
        choices=["ownership", "foreground"],
        help="voxel weights of classification pooling (default ownership)",
    )
    parser.add_argument(
        "--no-calibration", action="store_true", help="ignore the checkpoint's calibration"
    )
    parser.add_argument(
        "--largest-component",
        action="store_true",
        help="keep only the largest connected foreground component (one organ)",
    )
    parser.add_argument(
        "--label-weights",
        help="weights of the label argmax, one per label with background, e.g. '1,1,16' to call "
        "the lesion (label 2) more readily; choose them on cross-validation predictions",
    )
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write OUT/CASE.npz: the segmentation probabilities on the image's grid",
    )
    parser.add_argument("--overwrite", action="store_true", help="predict finished cases again")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _axes(text: str) -> tuple[int, ...]:
    from multitask_unet.errors import ConfigError

    try:
        return tuple(int(a) for a in text.replace(" ", "").split(",") if a)
    except ValueError:
        raise ConfigError(
            f"--mirror-axes must be comma-separated axes like 0,1,2, got {text!r}"
        ) from None


def _weights(text: str | None) -> tuple[float, ...] | None:
    from multitask_unet.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise ConfigError(
            f"--label-weights must be comma-separated numbers like 1,1,16, got {text!r}"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Predict and print a summary."""
    import torch

    from multitask_unet.inference import Predictor

    dtype = _DTYPES[args.dtype]
    predictor = Predictor.from_checkpoint(
        args.checkpoint,
        device=args.device,
        calibrated=not args.no_calibration,
        overlap=args.overlap,
        mirror_axes=_axes(args.mirror_axes),
        window_batch_size=args.batch_size,
        dtype=getattr(torch, dtype) if dtype else None,
        cls_head=args.cls_head,
        cls_weighting=args.cls_weighting,
        largest_component=args.largest_component,
        label_weights=_weights(args.label_weights),
        save_probabilities=args.save_probabilities,
    )
    result = predictor.predict(
        args.inputs, args.output, overwrite=args.overwrite, progress=not args.no_progress
    )
    print(
        f"predicted {len(result.predicted)} case(s), skipped {len(result.skipped)} finished "
        f"case(s); label maps in {result.output_dir}"
        + (f", probabilities in {result.csv_path}" if result.csv_path else "")
    )
    return 0
