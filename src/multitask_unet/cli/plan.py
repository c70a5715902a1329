"""``multitask-unet plan``: fingerprint a dataset and write an nnU-Net-style plan as JSON.

Example::

    multitask-unet plan ../shared/data/pancreas_quiz_subset -o plan.json --size-divisor 8 32 32
    multitask-unet plan ../shared/data/pancreas_quiz_subset -o RUN/plan.json --budget 30m --device cpu
"""

from __future__ import annotations

import argparse
from typing import Any

from multitask_unet.cli._dataset import dataset_command
from multitask_unet.cli._options import add_device_option, add_workers_option, numbers, positive_int
from multitask_unet.cli._paths import output_file

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``plan`` subcommand."""
    parser = dataset_command(
        subparsers,
        "plan",
        help="fingerprint a dataset and plan target spacing, normalisation and patch size",
        description=(
            "Read the labelled cases of one split of DATA, compute the dataset fingerprint "
            "(spacings, shapes, foreground intensities, label and subtype counts) and plan the "
            "target spacing, CT normalisation, patch size and batch size by nnU-Net's rules. "
            "The plan is written as JSON (see docs/concepts/plan.md)."
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_file("plan.json"),
        metavar="PLAN",
        help="plan .json to write",
    )
    parser.add_argument(
        "--split", default="train", help="split to fingerprint (default: train); needs masks"
    )
    parser.add_argument(
        "--size-divisor",
        nargs="+",
        default=None,
        metavar="N",
        help="the network's size_divisor (model.size_divisor): one power of two, or three "
        "(D H W); default 32",
    )
    parser.add_argument(
        "--gpu-memory", type=float, default=8.0, metavar="GB", help="GPU memory budget (8)"
    )
    parser.add_argument(
        "--normalization",
        default="ct",
        choices=["ct", "zscore", "none"],
        help="intensity normalisation of every channel (default: ct, as nnU-Net for CT)",
    )
    parser.add_argument(
        "--target-spacing",
        nargs="+",
        default=None,
        metavar="MM",
        help="override the planned target spacing: D H W in mm, slice axis first",
    )
    parser.add_argument(
        "--orientation", default="LPS", help="canonical orientation code (default LPS)"
    )
    parser.add_argument(
        "--intensity-samples",
        type=positive_int,
        default=10**8,
        metavar="N",
        help="foreground voxels sampled for the intensity statistics (nnU-Net: 1e8)",
    )
    parser.add_argument(
        "--budget",
        metavar="DURATION",
        help=(
            "wall-clock budget such as 30m or 2h: choose spacing, patch, network, batch and "
            "schedule by measured trial steps so that training fits it (docs/concepts/budget.md);"
            " the size divisor is then the chosen network's and --gpu-memory is not used; "
            "without it the plan follows nnU-Net's rules"
        ),
    )
    add_device_option(parser, what="with --budget: where the trial steps and training run")
    parser.add_argument(
        "--max-trial-seconds",
        type=float,
        metavar="S",
        help="with --budget: cap on the trial steps' time (default: 5%% of the budget)",
    )
    parser.add_argument(
        "--min-iterations",
        type=int,
        metavar="N",
        help="with --budget: fewest training steps (at batch 2) a choice must allow (default 2000)",
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "bf16", "fp16", "off"),
        help="with --budget: precision of the trial steps and of the training (default auto: "
        "bf16 on GPUs that support it, float32 on the CPU; bf16 on CPUs with native bfloat16)",
    )
    add_workers_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _fmt(values: Any, digits: int = 3) -> str:
    return " x ".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in values)


def _budget_plan(
    args: argparse.Namespace, fingerprint: Any, labels: list[int] | None, device: str
) -> Any:
    from multitask_unet.training.budget import BudgetSearch, plan_for_budget

    changes = {"max_trial_seconds": args.max_trial_seconds}
    if args.min_iterations is not None:
        changes["min_iterations"] = args.min_iterations
    if args.amp is not None:
        changes["amp"] = args.amp
    search = BudgetSearch.for_device(device, **changes)
    return plan_for_budget(
        fingerprint,
        args.budget,
        device=device,
        search=search,
        labels=labels,
        normalization=args.normalization,
    )


def run(args: argparse.Namespace) -> int:
    """Fingerprint, plan, save and print a summary."""
    from multitask_unet.data.planning import create_plan
    from multitask_unet.data.planning.fingerprint import compute_fingerprint
    from multitask_unet.data.readers import read_dataset
    from multitask_unet.devices import resolve_device
    from multitask_unet.errors import ConfigError

    # Options are checked before any file is read.
    spacing = numbers(args.target_spacing, float, "--target-spacing", count=3, example="2 0.7 0.7")
    divisor = numbers(args.size_divisor, int, "--size-divisor", example="8 32 32") or (32,)
    if len(divisor) not in (1, 3):
        raise ConfigError(
            f"--size-divisor takes 1 or 3 numbers (e.g. 32, or 8 32 32), got {divisor}"
        )
    if args.budget is not None and spacing is not None:
        raise ConfigError("--budget chooses the target spacing; leave out --target-spacing")
    device = resolve_device(args.device).type if args.budget is not None else None
    index = read_dataset(args.data, layout=args.layout).split(args.split)
    fingerprint = compute_fingerprint(
        index.records,
        orientation=args.orientation,
        intensity_samples=args.intensity_samples,
        workers=args.workers,
        progress=not args.no_progress,
    )
    labels = sorted(set(index.label_names.values())) if index.labels_declared else None
    if args.budget is not None:
        plan = _budget_plan(args, fingerprint, labels, device)
    else:
        plan = create_plan(
            fingerprint,
            size_divisor=divisor[0] if len(divisor) == 1 else divisor,
            gpu_memory_gb=args.gpu_memory,
            normalization=args.normalization,
            target_spacing=spacing,
            labels=labels,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plan.save(args.output)
    stats = fingerprint.intensity[0]
    print(
        f"cases ({args.split}):    {len(fingerprint.cases)}  subtypes {fingerprint.subtype_counts}"
    )
    print(f"median spacing:   {_fmt(fingerprint.median_spacing)} mm (D x H x W)")
    print(f"target spacing:   {_fmt(plan.target_spacing)} mm")
    print(f"median shape:     {_fmt(plan.median_shape)} voxels at the target spacing")
    print(f"patch size:       {_fmt(plan.patch_size)}  (divisible by {_fmt(plan.size_divisor)})")
    print(f"batch size:       {plan.batch_size}  for {plan.gpu_memory_gb:g} GB")
    print(
        f"foreground HU:    [{stats.percentile_00_5:.1f}, {stats.percentile_99_5:.1f}]  "
        f"mean {stats.mean:.1f}  std {stats.std:.1f}"
    )
    if plan.budget is not None:
        b = plan.budget
        print(f"budget:           {b.seconds / 60:g} min on {b.device} ({b.device_name})")
        print(f"model:            {b.preset}; {b.epochs} epochs x {b.iterations_per_epoch} steps")
        print(f"trial steps:      {len(b.candidates)} candidates, {b.trial_seconds:.1f} s")
        print(f"why:              {b.reason}")
    print(f"cache key:        {plan.cache_key()}")
    print(f"wrote {args.output}")
    return 0
