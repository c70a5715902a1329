"""``train``: validate -> plan -> preprocess (cached) -> :class:`Trainer`, as ``multitask-unet train``.

The plan is written once to ``RUN/plan.json`` and reused when the run is resumed or restarted.
With a wall-clock ``budget`` (``train --budget 30m``) the plan is made by the budget planner
(:func:`multitask_unet.training.budget.plan_for_budget`) within that budget, planning included,
and sets network, schedule and training recipe
(:func:`multitask_unet.training.budget.budget_train_config`); a plan made with
``plan --budget`` and placed in ``RUN/`` first does the same. The preprocessing cache (default
``RUN/preprocessed``) skips cases it already holds. Under ``torchrun``, rank 0 validates, plans
and preprocesses while the other ranks wait.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from multitask_unet.data.planning import Plan
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.sampling import sampling_warnings
from multitask_unet.data.sampling.loader import CacheEntry, cache_entries
from multitask_unet.errors import ConfigError, DataError
from multitask_unet.training.builders import build_model_config
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import cleanup_distributed, setup_distributed
from multitask_unet.training.fit_parts import check_run_folder
from multitask_unet.training.run_folder import finished_run
from multitask_unet.training.trainer import LAST, Trainer, TrainResult

__all__ = ["plan_dataset", "prepare_plan", "train", "train_config_for_plan"]

PLAN_NAME = "plan.json"
VALIDATION_SPLIT = "validation"


def plan_dataset(
    index: DatasetIndex,
    records: Sequence[CaseRecord],
    config: TrainConfig,
    *,
    budget: str | float | None = None,
    search: object | None = None,
    workers: int = 2,
    intensity_samples: int = 10**8,
    started: float | None = None,
) -> Plan:
    """Fingerprint ``records`` and plan for the network ``config`` builds, or within ``budget``.

    Without a budget the plan follows nnU-Net's rules, with the network's ``size_divisor``. With
    one, the budget planner chooses spacing, patch, network, batch and schedule by measured
    trial steps so that training fits what is left of ``budget`` since ``started`` (a
    ``time.perf_counter()`` value; default now), on the device ``config.runtime.device`` names.
    """
    from multitask_unet.data.planning import create_plan
    from multitask_unet.data.planning.budget_section import parse_duration
    from multitask_unet.data.planning.fingerprint import compute_fingerprint

    started = time.perf_counter() if started is None else started
    fingerprint = compute_fingerprint(
        records,
        intensity_samples=intensity_samples,
        workers=workers,
        progress=config.runtime.progress,
    )
    # Declared labels (dataset.json) are kept; undeclared ones are the values in the masks.
    labels = sorted(set(index.label_names.values())) if index.labels_declared else None
    if budget is not None:
        from multitask_unet.training.budget import plan_for_budget

        left = parse_duration(budget) - (time.perf_counter() - started)
        if left <= 0:
            raise ConfigError(
                f"the budget {budget!r} was used up by validation and fingerprinting "
                f"({time.perf_counter() - started:.0f} s); give a larger --budget"
            )
        return plan_for_budget(
            fingerprint,
            left,
            device=budget_device(config.runtime.device),
            search=search,  # type: ignore[arg-type]
            model=config.model,
            labels=labels,
        )
    model_config = build_model_config(
        config.model,
        in_channels=len(index.channel_names),
        seg_classes=max(labels or fingerprint.labels) + 1,
        case_classes=len(index.class_names),
    )
    return create_plan(fingerprint, size_divisor=model_config.size_divisor, labels=labels)


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
    return plan_dataset(
        index,
        index.split("train").records,
        config,
        workers=workers,
        intensity_samples=intensity_samples,
    )


def budget_device(device: str) -> str:
    """Where a budget plan's trial steps run: ``"auto"`` is CUDA when available, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def train_config_for_plan(plan: Plan, config: TrainConfig) -> TrainConfig:
    """``config`` as training uses it with ``plan``: a budget plan's choices applied."""
    if plan.budget is None:
        return config
    from multitask_unet.training.budget import budget_train_config

    return budget_train_config(plan, config)


def describe_training(
    config: TrainConfig, plan: Plan, index: DatasetIndex, records: Sequence[CaseRecord] = ()
) -> list[str]:
    """What training will use, in words, and the sampling warnings for the training cases.

    ``records`` are the training cases (default: the ``train`` split).
    """
    data, opt, run = config.data, config.optimization, config.runtime
    patch = tuple(data.patch_size or plan.patch_size)
    batch = data.batch_size or plan.batch_size
    model = config.model
    network = model.preset or f"a {_name(model.encoder)} encoder"
    if model.heads is not None:
        named = [f"{k}: {_name(v)}" for k, v in model.heads.items()]
        heads = f"heads {', '.join(named)}" if named else "no head"
    else:
        heads = f"{model.head or 'no'} head"
    limit = ""
    if run.fit_minutes:
        limit = f" (finishing within {run.fit_minutes:.1f} min)"
    elif run.stop_minutes is not None:
        limit = f" (stopping after {run.stop_minutes:g} min)"
    on_device = data.augmentation_config(patch).backend == "device"
    lines = [
        f"training: {network} ({heads}), patch {patch}, "
        f"batch {batch}, spacing {tuple(round(s, 3) for s in plan.target_spacing)}, "
        f"{opt.optimizer.name} lr {opt.optimizer.lr:g}, {opt.epochs} epochs x "
        f"{opt.iterations_per_epoch} steps, amp {run.amp}, cases drawn with class weights {data.class_weights!r}"
        + limit
        + (", augmentation on the device" if on_device else "")
    ]
    labels = [r.label for r in (records or index.split("train").records)]
    if any(label is not None for label in labels):
        lines += sampling_warnings(
            labels,
            class_weights=data.class_weights,
            max_oversampling=data.max_oversampling,
            class_names=index.class_names,
        )
    return lines


def _name(spec: Any) -> str:
    """The registered name of a component given as a name or a dict with ``name``."""
    return spec if isinstance(spec, str) else str(spec["name"])


def fit_cases(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    plan: Plan,
    entries: dict[str, CacheEntry],
    index: DatasetIndex,
    train_ids: Sequence[str],
    val_ids: Sequence[str] = (),
    resume: bool = False,
) -> TrainResult:
    """Train on cached cases ``train_ids`` (validating on ``val_ids``) into ``run_dir``."""
    missing = [i for i in (*train_ids, *val_ids) if i not in entries]
    if missing:
        raise DataError(
            f"{len(missing)} case(s) are not in the preprocessing cache ({missing[:5]}); "
            "preprocess them with the run's plan first"
        )
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


def _finished(run_dir: Path, config: TrainConfig) -> TrainResult | None:
    """The result of the run in ``run_dir`` when it has trained all its epochs (no data read)."""
    plan_path = run_dir / PLAN_NAME
    if plan_path.is_file():  # a budget plan changes the config training used
        config = train_config_for_plan(Plan.load(plan_path), config)
    return finished_run(run_dir, config)


def train(
    data: str | os.PathLike[str] | DatasetIndex,
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    budget: str | float | None = None,
    search: object | None = None,
    layout: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    workers: int = 2,
    intensity_samples: int = 10**8,
    planner: Callable[[DatasetIndex], Plan] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train on a dataset folder: validate, plan, preprocess (cached), then fit.

    Args:
        data: A dataset folder (study or nnU-Net layout), a manifest CSV, or a read index. The
            ``train`` split trains; the ``validation`` split, when present, validates.
        run_dir: The run folder (see :mod:`multitask_unet.training.trainer`).
        config: The :class:`TrainConfig` (default: all defaults).
        budget: Wall-clock budget of the whole run, e.g. ``"30m"``: the budget planner chooses
            spacing, patch, network, batch, schedule and recipe so that validation, planning,
            preprocessing and training fit it (see :mod:`multitask_unet.training.budget`).
        search: The planner's :class:`~multitask_unet.training.budget.BudgetSearch` (default:
            the device's).
        layout: Dataset layout name, or ``"auto"``.
        cache_dir: Preprocessing cache (default ``RUN/preprocessed``).
        resume: Continue from ``RUN/checkpoints/last.pt``. A run that has trained its
            ``optimization.epochs`` returns its result at once, before the dataset is read
            (:func:`~multitask_unet.training.run_folder.finished_run`).
        workers: Processes for fingerprinting and preprocessing.
        intensity_samples: Foreground voxels sampled for the CT percentiles (nnU-Net: 1e8).
        planner: Makes the plan from the validated dataset instead of nnU-Net's rules (e.g.
            from nnU-Net plans, :func:`~multitask_unet.interop.nnunet_plans.plan_from_nnunet`);
            called only when ``RUN/plan.json`` does not exist yet. Excludes ``budget``.
        verbose: Print what each step did (rank 0).

    Returns:
        The :class:`TrainResult`.

    Raises:
        DataError: The dataset has errors (all of them are listed) or no training split.
        ConfigError: Invalid options, a budget too small for any candidate, or a run folder
            that holds a run without ``resume``.
    """
    from multitask_unet.data.planning.budget_section import parse_duration
    from multitask_unet.data.preprocessing.cache import preprocess_dataset
    from multitask_unet.data.validation import validate_dataset

    started = time.perf_counter()
    if budget is not None:
        parse_duration(budget)  # a malformed budget fails before any work
        if planner is not None:
            raise ConfigError("a budget plans the run itself; give either budget or planner")
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    cache = Path(cache_dir) if cache_dir is not None else run_dir / "preprocessed"
    check_run_folder(run_dir, run_dir / "checkpoints" / LAST, resume=resume)  # before any work
    if resume and (done := _finished(run_dir, config)) is not None:
        if verbose and os.environ.get("RANK", "0") == "0":
            print(f"{run_dir} has trained its {done.epochs} epoch(s): nothing to resume")
        return done
    dist = setup_distributed(config.runtime.device)
    try:
        index = data if isinstance(data, DatasetIndex) else read_dataset(data, layout=layout)
        if "train" not in index.splits:
            errors = [f"{i.message} ({i.fix})" for i in index.issues if i.severity == "error"]
            why = f" as the {index.layout} layout reads it: {'; '.join(errors)}" if errors else ""
            raise DataError(
                f"{index.root} has no 'train' split (splits: {', '.join(index.splits) or 'none'})"
                f"{why}; put the training cases in train/ or name the split in the manifest"
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
                if budget is not None and plan.budget is None:
                    raise ConfigError(
                        f"{plan_path} was planned without a budget; remove it to plan within "
                        f"--budget {budget}, or leave out --budget to train with it"
                    )
            elif planner is not None:
                plan = planner(index)
                run_dir.mkdir(parents=True, exist_ok=True)
                plan.save(plan_path)
            else:
                plan = plan_dataset(
                    index, index.split("train").records, config, budget=budget, search=search,
                    workers=workers, intensity_samples=intensity_samples, started=started,
                )  # fmt: skip
                run_dir.mkdir(parents=True, exist_ok=True)
                plan.save(plan_path)
                if verbose and plan.budget is not None:
                    print(f"budget plan: {plan.budget.reason}")
            summary = preprocess_dataset(
                records, plan, cache, workers=workers, progress=config.runtime.progress
            )
            if verbose:
                print(
                    f"preprocessed {len(summary.processed)} case(s), {len(summary.skipped)} "
                    f"already in {cache}"
                )
        if dist.distributed:
            import torch.distributed

            torch.distributed.barrier()
        plan = Plan.load(plan_path)
        index = index.with_found_labels(plan.preprocessing.labels)
        config = train_config_for_plan(plan, config)
        if verbose and dist.is_main:
            print("\n".join(describe_training(config, plan, index)))
        return fit_cases(
            config,
            run_dir,
            plan=plan,
            entries={e.case_id: e for e in cache_entries(cache)},
            index=index,
            train_ids=index.split("train").case_ids,
            val_ids=index.split(VALIDATION_SPLIT).case_ids if len(splits) > 1 else (),
            resume=resume,
        )
    finally:
        cleanup_distributed()
