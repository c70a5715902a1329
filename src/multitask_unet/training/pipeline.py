"""``train``: validate -> plan -> preprocess (cached) -> :class:`Trainer`, as ``multitask-unet train``.

The plan is written once to ``RUN/plan.json`` and reused when the run is resumed or restarted
(a plan made with ``plan --budget`` placed there first also sets the preset, the schedule and
``time_budget_minutes``: :func:`multitask_unet.training.budget.budget_train_config`);
the preprocessing cache (default ``RUN/preprocessed``) skips cases it already holds. Under
``torchrun``, rank 0 validates, plans and preprocesses while the other ranks wait.
"""

from __future__ import annotations

import os
from pathlib import Path

from multitask_unet.data.loader import cache_entries
from multitask_unet.data.planning import Plan
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import DataError
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training.builders import build_model_config
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import cleanup_distributed, setup_distributed
from multitask_unet.training.trainer import Trainer, TrainResult

__all__ = ["prepare_plan", "train"]

PLAN_NAME = "plan.json"
VALIDATION_SPLIT = "validation"


def prepare_plan(
    index: DatasetIndex,
    config: TrainConfig,
    *,
    workers: int = 2,
    intensity_samples: int = 10**8,
) -> Plan:
    """Fingerprint the training split and plan for the network that ``config`` builds.

    The plan's ``size_divisor`` is the network's, so the planned patch fits it.
    ``intensity_samples`` foreground voxels (nnU-Net: 1e8) estimate the CT percentiles; 1e6 is
    plenty for small datasets and much faster.
    """
    from multitask_unet.data.fingerprint import compute_fingerprint
    from multitask_unet.data.planning import create_plan

    model_config = build_model_config(
        config.model,
        in_channels=len(index.channel_names),
        seg_classes=max(index.label_names.values()) + 1,
        case_classes=len(index.class_names),
    )
    divisor = MultiTaskUNet(model_config).size_divisor
    train_split = index.split("train")
    fingerprint = compute_fingerprint(
        train_split.records,
        intensity_samples=intensity_samples,
        num_workers=workers,
        progress=config.progress,
    )
    return create_plan(
        fingerprint,
        size_divisor=divisor,
        labels=sorted(set(index.label_names.values())),
    )


def train(
    data: str | os.PathLike[str] | DatasetIndex,
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    layout: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    workers: int = 2,
    intensity_samples: int = 10**8,
    verbose: bool = True,
) -> TrainResult:
    """Train on a dataset folder: validate, plan, preprocess (cached), then fit.

    Args:
        data: A dataset folder (study or nnU-Net layout), a manifest CSV, or a read index. The
            ``train`` split trains; the ``validation`` split, when present, validates.
        run_dir: The run folder (see :mod:`multitask_unet.training.trainer`).
        config: The :class:`TrainConfig` (default: all defaults).
        layout: Dataset layout name, or ``"auto"``.
        cache_dir: Preprocessing cache (default ``RUN/preprocessed``).
        resume: Continue from ``RUN/checkpoints/last.pt``.
        workers: Processes for fingerprinting and preprocessing.
        intensity_samples: Foreground voxels sampled for the CT percentiles (nnU-Net: 1e8).
        verbose: Print what each step did (rank 0).

    Returns:
        The :class:`TrainResult`.

    Raises:
        DataError: The dataset has errors (all of them are listed) or no training split.
        ConfigError: Invalid options, or a run folder that holds a run without ``resume``.
    """
    from multitask_unet.data.cache import preprocess_dataset
    from multitask_unet.data.validation import validate_dataset

    config = config or TrainConfig()
    run_dir = Path(run_dir)
    cache = Path(cache_dir) if cache_dir is not None else run_dir / "preprocessed"
    dist = setup_distributed(config.device)
    try:
        index = data if isinstance(data, DatasetIndex) else read_dataset(data, layout=layout)
        if "train" not in index.splits:
            raise DataError(
                f"{index.root} has no 'train' split (splits: {', '.join(index.splits)}); "
                "put the training cases in train/ or name the split in the manifest"
            )
        splits = ["train"] + ([VALIDATION_SPLIT] if VALIDATION_SPLIT in index.splits else [])
        records = [r for s in splits for r in index.split(s).records]
        plan_path = run_dir / PLAN_NAME
        if dist.is_main:
            report = validate_dataset(index)
            report.raise_if_errors()
            if verbose:
                print(f"validated {len(index)} case(s) in {index.root}: no errors")
            if plan_path.is_file():
                plan = Plan.load(plan_path)
            else:
                plan = prepare_plan(
                    index, config, workers=workers, intensity_samples=intensity_samples
                )
                run_dir.mkdir(parents=True, exist_ok=True)
                plan.save(plan_path)
            summary = preprocess_dataset(
                records, plan, cache, num_workers=workers, progress=config.progress
            )
            if verbose:
                print(
                    f"plan: patch {plan.patch_size}, batch {plan.batch_size}, spacing "
                    f"{tuple(round(s, 3) for s in plan.target_spacing)}; preprocessed "
                    f"{len(summary.processed)} case(s), {len(summary.skipped)} already in {cache}"
                )
        if dist.distributed:
            import torch.distributed

            torch.distributed.barrier()
        plan = Plan.load(plan_path)
        if plan.budget is not None:  # a budget plan (plan --budget) sets model and schedule
            from multitask_unet.training.budget import budget_train_config

            config = budget_train_config(plan, config)
            if verbose and dist.is_main:
                print(
                    f"budget plan: {plan.budget.preset}, {config.epochs} epochs x "
                    f"{config.iterations_per_epoch} steps within {plan.budget.train_minutes:.1f} min"
                )
        entries = {e.case_id: e for e in cache_entries(cache)}
        train_ids = index.split("train").case_ids
        val_ids = index.split(VALIDATION_SPLIT).case_ids if len(splits) > 1 else ()
        trainer = Trainer(
            config,
            run_dir,
            plan=plan,
            train_cases=[entries[i] for i in train_ids],
            val_cases=[entries[i] for i in val_ids],
            class_names=index.class_names,
            label_names=index.label_names,
        )
        return trainer.fit(resume=resume)
    finally:
        cleanup_distributed()
