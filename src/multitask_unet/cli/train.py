"""``multitask-unet train``: validate -> plan -> preprocess (cached) -> train.

Example::

    multitask-unet train phantoms/ -o runs/demo --preset small_residual --head panda \\
        --epochs 50 --iters-per-epoch 100 --batch-size 2
    multitask-unet train DATA -o runs/ft --plans MODEL/plans.json --configuration 3d_fullres \\
        --init-weights MODEL/fold_0/checkpoint_final.pth --head panda
    torchrun --nproc_per_node 2 $(which multitask-unet) train phantoms/ -o runs/ddp
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import add_workers_option, numbers, positive_int, seed
from multitask_unet.cli._paths import input_file, output_folder
from multitask_unet.cli._plans import PLANS_EPILOG, add_plans_options, plans_network, plans_planner
from multitask_unet.errors import ConfigError

__all__ = ["add_parser", "run"]

_EPILOG = """\
The YAML config (--config) may set any option of multitask_unet.training.TrainConfig, by
section, e.g.

  model: {preset: small_residual, head: panda}
  optimization:
    optimizer: {name: sgd, lr: 0.01}   # nnU-Net's recipe; or {name: adamw, lr: 0.001}
    epochs: 100
    iterations_per_epoch: 250
  runtime:
    val_every: 10
    time_limit_minutes: 60             # stop after the epoch in which 60 min passed
    on_time_limit: stop                # (--resume continues); fit: end the schedule within it

Options given on the command line override the file. Every key is described in
docs/concepts/training.md. The run folder receives config.yaml, plan.json, preprocessed/,
checkpoints/{last,best}.pt, metrics.csv and curves.png. Under torchrun each process trains on
its share of every batch (DDP: gloo on CPU, NCCL on GPU) and rank 0 writes.

"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand."""
    parser = dataset_command(
        subparsers,
        "train",
        help="train a multi-task U-Net (validate, plan, preprocess, then train; resumable)",
        description=(
            "Check the dataset DATA, plan preprocessing and patch size for the network (nnU-Net's "
            "rules), preprocess the train and validation splits into a cache, and train with "
            "nnU-Net's recipe (SGD 0.01, Nesterov 0.99, poly decay, gradient clipping 12); with "
            "--budget, plan spacing, patch, network, schedule and recipe by measured trial steps "
            "and train within that wall-clock time. Checkpoints are written after every epoch; "
            "--resume continues an interrupted run exactly where its last checkpoint left it."
        ),
        epilog=_EPILOG + PLANS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_folder,
        metavar="RUN",
        help="run folder to write",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from RUN/checkpoints/last.pt, with RUN/config.yaml unless --config is given",
    )
    parser.add_argument(
        "--cache",
        type=output_folder,
        metavar="DIR",
        help="preprocessing cache (default RUN/preprocessed)",
    )
    add_training_options(
        parser,
        budget_help="wall-clock budget of the whole run, e.g. 30m or 2h: plan spacing, patch, "
        "network, batch, schedule and recipe by measured trial steps to fit it",
    )
    parser.set_defaults(_log="train.log")  # RUN/train.log: a copy of what the command prints
    return parser


def add_training_options(parser: argparse.ArgumentParser, *, budget_help: str) -> None:
    """The options ``train`` and ``crossval`` share: config, model, schedule, runtime, plans."""
    parser.add_argument("--budget", metavar="DURATION", help=budget_help)
    parser.add_argument(
        "--config", type=Path, metavar="FILE.yaml", help="training config (YAML or JSON)"
    )
    parser.add_argument(
        "--preset", metavar="NAME", help="model preset (see `multitask-unet models`)"
    )
    parser.add_argument(
        "--encoder", metavar="NAME", help="replace the preset's encoder (plain, residual, timm3d)"
    )
    parser.add_argument(
        "--head",
        metavar="NAME",
        help="classification head (panda, ovr, attention, last_stage, bottleneck) or 'none'",
    )
    parser.add_argument(
        "--init-weights",
        type=input_file,
        metavar="FILE",
        help="start from these weights: a checkpoint of train, an nnU-Net checkpoint_final.pth, "
        "a state_dict, or a timm-3d checkpoint of a timm3d encoder; new heads are initialised",
    )
    parser.add_argument("--epochs", type=int, metavar="N", help="training epochs (default 1000)")
    parser.add_argument(
        "--iters-per-epoch", type=int, metavar="N", help="optimiser steps per epoch (default 250)"
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="N", help="patches per step over all processes (plan's)"
    )
    parser.add_argument(
        "--patch-size", nargs="+", metavar="N", help="patch size D H W in voxels (plan's)"
    )
    parser.add_argument(
        "--optimizer", choices=["sgd", "adamw"], help="optimiser (default sgd, nnU-Net's)"
    )
    parser.add_argument("--lr", type=float, metavar="LR", help="initial learning rate")
    parser.add_argument("--val-every", type=int, metavar="N", help="validate every N epochs")
    parser.add_argument("--seed", type=seed, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--device", metavar="DEV", help="auto (default), cpu, cuda or cuda:N (torchrun: per rank)"
    )
    parser.add_argument(
        "--amp", choices=["auto", "bf16", "fp16", "off"], help="mixed precision on CUDA"
    )
    parser.add_argument(
        "--compile",
        choices=["auto", "off", "default", "reduce-overhead", "max-autotune"],
        help="torch.compile the training forward (auto: on CUDA, as nnU-Net)",
    )
    add_workers_option(parser)
    parser.add_argument(
        "--intensity-samples",
        type=positive_int,
        default=10**8,
        metavar="N",
        help="foreground voxels sampled for the CT percentiles (nnU-Net: 1e8; 1e6 is faster)",
    )
    parser.add_argument(
        "--loader-workers",
        type=int,
        metavar="N",
        help="data-loading worker processes of each training process (default 0)",
    )
    parser.add_argument(  # the former name of --loader-workers
        "--num-workers", dest="loader_workers", type=int, help=argparse.SUPPRESS
    )
    parser.add_argument("--no-progress", action="store_true", help="print one line per epoch")
    add_plans_options(parser)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig` of the file (if any) with the command-line options applied."""
    from multitask_unet.training import TrainConfig

    saved = Path(args.output) / "config.yaml"  # a resumed run keeps its own config
    if args.config:
        config = TrainConfig.load(args.config)
    elif getattr(args, "resume", False) and saved.is_file():  # crossval has no --resume
        config = TrainConfig.load(saved)
    else:
        config = TrainConfig()
    model: dict[str, Any] = {}
    if args.preset:
        model["preset"] = args.preset
    if args.encoder:
        model["encoder"] = args.encoder
    if args.init_weights is not None:
        model["init_weights"] = str(args.init_weights)
    if args.head:  # one head, in place of the file's head or heads
        model.update(head=None if args.head.lower() == "none" else args.head, heads=None)
    optimizer = config.optimization.optimizer.to_dict()
    if args.optimizer:
        optimizer["name"] = args.optimizer
    if args.lr is not None:
        optimizer["lr"] = args.lr
    flags = {
        "optimization": {
            "optimizer": optimizer,
            "epochs": args.epochs,
            "iterations_per_epoch": args.iters_per_epoch,
        },
        "data": {
            "batch_size": args.batch_size,
            "patch_size": numbers(
                args.patch_size, int, "--patch-size", count=3, example="32 64 64"
            ),
            "num_workers": args.loader_workers,
        },
        "runtime": {
            "val_every": args.val_every,
            "seed": args.seed,
            "device": args.device,
            "amp": args.amp,
            "compile": args.compile,
            "progress": False if args.no_progress else None,
        },
    }
    changes = {k: {o: v for o, v in opts.items() if v is not None} for k, opts in flags.items()}
    if getattr(args, "plans", None) is not None:
        model.update(plans_network(args, config))
    elif getattr(args, "configuration", None) is not None:
        raise ConfigError("--configuration names a configuration of --plans; give --plans too")
    if model:
        changes["model"] = {**config.model.to_dict(), **model}
    return config.replace(**changes)


def run(args: argparse.Namespace) -> int:
    """Train and print where the results are."""
    from multitask_unet.training import train

    config = build_config(args)
    data, planner = args.data, None
    if args.plans is not None:
        data, planner = plans_planner(
            args, config, records=lambda index: index.split("train").records, continuing=args.resume
        )
    result = train(
        data,
        args.output,
        config,
        budget=args.budget,
        layout=args.layout,
        cache_dir=args.cache,
        resume=args.resume,
        workers=args.workers,
        intensity_samples=args.intensity_samples,
        planner=planner,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        best = "" if result.best_score is None else f", best val/score {result.best_score:.4f}"
        print(
            f"trained {result.epochs} epoch(s) in {result.seconds / 60:.1f} min{best}; "
            f"checkpoints in {result.run_dir / 'checkpoints'}, curves in "
            f"{result.run_dir / 'curves.png'}"
        )
    return 0
