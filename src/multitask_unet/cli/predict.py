"""``multitask-unet predict``: segment and classify images with a checkpoint or a run.

The model is either one checkpoint (``--checkpoint FILE``) or a run folder (``--model RUN``):
the folder of ``multitask-unet train -o RUN`` (its ``checkpoints/last.pt``) or a
cross-validation folder, whose folds predict as an ensemble (mean of their segmentation
logits and class probabilities; ``--folds 0 1 2`` takes some of them). The post-processing
chosen for the run (``RUN/postprocessing.json``: label weights, largest component) is applied
unless ``--no-postprocessing``; ``--label-weights`` and ``--largest-component`` override it.

Examples::

    multitask-unet predict --checkpoint model.pt ../shared/data/pancreas_quiz_subset/test -o pred/
    multitask-unet predict --model crossval_run/ scans/ -o pred/
    multitask-unet predict --model crossval_run/ --folds 0 1 --no-postprocessing scans/ -o pred/
    torchrun --nproc_per_node 4 -m multitask_unet.cli predict --model crossval_run/ scans/ -o pred/

Under ``torchrun`` the cases are shared among the processes
(:mod:`multitask_unet.inference.distributed`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from multitask_unet.cli._options import add_predictor_options, numbers, predictor_options
from multitask_unet.cli._paths import output_folder

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="predict label maps and class probabilities with a checkpoint or a run's folds",
        description=(
            "Preprocess each input as the model's plan says, predict it with sliding "
            "windows (Gaussian blending, mirroring), and write OUT/CASE.nii.gz (uint8 labels on "
            "the input's grid) and OUT/predictions.csv (case_id, prob_<class>..., predicted); "
            "with --save-probabilities also OUT/CASE.npz (segmentation probabilities). "
            "INPUT may be image files (.nii.gz, .nii, .nrrd, .mha), folders of them (e.g. the "
            "study's test/ folder), DICOM series folders or a dataset root. Finished cases are "
            "skipped, so an interrupted run can be restarted; --overwrite predicts them again. "
            "A folder holding predictions of another model, post-processing or calibration "
            "(OUT/predict_settings.json) is refused unless --overwrite. "
            "Under torchrun (python -m torch.distributed.run ... -m multitask_unet.cli predict) "
            "each process predicts a share of the cases on cuda:LOCAL_RANK and rank 0 merges "
            "their rows into one predictions.csv. "
            "With --model RUN the folds of a cross-validation folder predict as an ensemble, "
            "post-processed as RUN/postprocessing.json says."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders")
    parser.add_argument(
        "--checkpoint", type=Path, metavar="CKPT", help="model checkpoint (.pt); or --model"
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="RUN",
        help="a training run or cross-validation folder: its fold ensemble and post-processing",
    )
    parser.add_argument(
        "--folds",
        type=int,
        nargs="+",
        metavar="K",
        help="with --model: the folds of the ensemble, e.g. --folds 0 1 2 (default all)",
    )
    parser.add_argument(
        "--no-postprocessing",
        action="store_true",
        help="with --model: ignore RUN/postprocessing.json (plain argmax)",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=output_folder, metavar="OUT", help="prediction folder"
    )
    add_predictor_options(parser)
    parser.add_argument("--cls-head", default=None, help="head written to predictions.csv")
    parser.add_argument(
        "--no-calibration", action="store_true", help="ignore the checkpoint's calibration"
    )
    parser.add_argument(
        "--largest-component",
        action="store_true",
        help="keep only the largest connected foreground component (one organ); overrides "
        "the run's post-processing",
    )
    parser.add_argument(
        "--label-weights",
        nargs="+",
        metavar="W",
        help="weights of the label argmax, one per label with background, e.g. 1 1 16 to call "
        "label 2 more readily; choose them on cross-validation predictions; overrides the "
        "run's post-processing",
    )
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write OUT/CASE.npz: the segmentation probabilities on the image's grid",
    )
    parser.add_argument(
        "--overlays",
        action="store_true",
        help="also write OUT/overlays/: every label map on its image (axial slice through the "
        "largest structure) and a contact sheet",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="predict finished cases again, also in a folder of another model or settings",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Refuse a bad choice of model or output before anything is loaded."""
    from multitask_unet.errors import ConfigError

    if (args.checkpoint is None) == (args.model is None):
        raise ConfigError(
            "give exactly one of --checkpoint FILE (one checkpoint) or --model RUN (a training "
            "run or cross-validation folder)"
        )
    if args.checkpoint is not None and args.folds is not None:
        raise ConfigError("--folds selects folds of --model RUN; drop it with --checkpoint")


def run(args: argparse.Namespace) -> int:
    """Predict and print a summary (under ``torchrun``: each rank its share; rank 0 prints)."""
    from multitask_unet.inference import Predictor
    from multitask_unet.inference.distributed import RankInfo, predict_distributed

    _check_args(args)
    ranks = RankInfo.from_env()
    say = print if ranks.is_main else _quiet
    options: dict[str, Any] = {
        **predictor_options(args),
        "device": ranks.device(args.device),
        "calibrated": not args.no_calibration,
        "cls_head": args.cls_head,
        "save_probabilities": args.save_probabilities,
    }
    weights = numbers(args.label_weights, float, "--label-weights", example="1 1 16")
    if args.checkpoint is not None:
        predictor = Predictor.from_checkpoint(
            args.checkpoint,
            largest_component=args.largest_component,
            label_weights=weights,
            **options,
        )
    else:  # the run's post-processing unless overridden
        if args.largest_component:
            options["largest_component"] = True
        if weights is not None:
            options["label_weights"] = weights
        predictor = Predictor.from_run(
            args.model,
            folds=args.folds,
            postprocessing=not args.no_postprocessing,
            **options,
        )
        source = predictor.source
        assert source is not None
        say(f"model: {source.describe()}")
        given = [f for f in ("label_weights", "largest_component") if f in options]
        notes = [f"from {source.postprocessing_file}"] if source.postprocessing_file else []
        notes += [f"--{f.replace('_', '-')} given" for f in given]
        origin = f" ({'; '.join(notes)})" if notes else ""
        say(f"post-processing: {predictor.postprocessing.describe()}{origin}")
    if ranks.distributed:
        say(f"{ranks.world_size} processes share the cases (rank 0's progress shown)")
    result = predict_distributed(
        predictor,
        args.inputs,
        args.output,
        ranks=ranks,
        overwrite=args.overwrite,
        progress=not args.no_progress and ranks.is_main,
        verbose=True,
    )
    if not ranks.is_main:
        return 0
    print(
        f"predicted {len(result.predicted)} case(s), skipped {len(result.skipped)} finished "
        f"case(s); label maps in {result.output_dir}"
        + (f", probabilities in {result.csv_path}" if result.csv_path else "")
    )
    if args.overlays:
        _write_overlays(args.inputs, result.output_dir, predictor.model.config.in_channels)
    return 0


def _quiet(*_args: object) -> None:
    """Print nothing (the ranks other than 0)."""


def _write_overlays(inputs: list[Path], out: Path, channels: int) -> None:
    from multitask_unet.evaluation.overlays import OverlayCase, write_overlays
    from multitask_unet.inference import collect_cases

    cases = [
        OverlayCase(r.case_id, r.images[0], out / f"{r.case_id}.nii.gz")
        for r in collect_cases(inputs, num_channels=channels)
        if (out / f"{r.case_id}.nii.gz").is_file()
    ]
    write_overlays(cases, out / "overlays")
    print(f"overlays of {len(cases)} case(s) in {out / 'overlays'} (contact_sheet.png)")
