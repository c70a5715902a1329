"""CPU budget mode of the pancreas example: train on ``train/``, evaluate on ``validation/``.

Everything (planning, preprocessing, training, prediction of the validation cases on their own
grid, evaluation) fits in ``minutes`` of wall-clock time: planning and preprocessing are timed,
training gets what is left minus a reserve for prediction and evaluation
(``TrainConfig.time_limit_minutes``), then the last checkpoint predicts ``validation/`` and
:func:`multitask_unet.evaluation.evaluate` scores it.

The network and the grid are fixed for a small CPU (``configs/cpu_budget.yaml``, target spacing
:data:`BUDGET_SPACING`): a budget planner that sizes them from the budget can replace
:func:`budget_config` without changing the rest.

Example:
    >>> from budget import run_budget  # doctest: +SKIP
    >>> summary = run_budget("pancreas_quiz_subset", "runs/budget", minutes=30)  # doctest: +SKIP
    >>> summary["results"]["dice_whole_pancreas"]["estimate"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from multitask_unet.data.fingerprint import compute_fingerprint
from multitask_unet.data.planning import create_plan
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import evaluate
from multitask_unet.inference import Predictor
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training import TrainConfig, train
from multitask_unet.training.builders import build_model_config

__all__ = ["BUDGET_SPACING", "HEADLINE", "budget_config", "run_budget"]

HERE = Path(__file__).parent
#: Target spacing (D, H, W) in mm of the CPU budget mode: about 2x coarser than the data's own
#: (2.0, 0.73, 0.73), so a patch of (32, 48, 64) voxels covers most of a pancreas crop.
BUDGET_SPACING = (3.0, 1.6, 1.6)
#: Evaluation summary keys reported by the example, with their labels.
HEADLINE = {
    "dice_whole_pancreas": "whole-pancreas Dice",
    "dice_lesion": "lesion Dice",
    "macro_f1": "macro-F1",
    "auc_ovr_macro": "one-vs-rest AUC (macro)",
}
_RESERVE_MINUTES = 3.0  # prediction of validation/ on its own grid + evaluation


def budget_config(
    minutes: float, *, elapsed_minutes: float = 0.0, path: str | os.PathLike[str] | None = None
) -> TrainConfig:
    """The CPU training config whose time limit leaves room for prediction and evaluation.

    Args:
        minutes: The whole budget.
        elapsed_minutes: Already spent (planning, preprocessing).
        path: The YAML config (default ``configs/cpu_budget.yaml``).

    Raises:
        ConfigError: Less than a minute is left for training.
    """
    config = TrainConfig.load(path or HERE / "configs" / "cpu_budget.yaml")
    left = minutes - elapsed_minutes - _RESERVE_MINUTES
    if left < 1.0:
        raise ConfigError(
            f"a budget of {minutes:g} min leaves {left:.1f} min for training after "
            f"{elapsed_minutes:.1f} min of preparation and a {_RESERVE_MINUTES:g} min reserve; "
            "give --budget-minutes of at least 10"
        )
    return dataclasses.replace(config, time_limit_minutes=left)


def _save_plan(index: DatasetIndex, config: TrainConfig, run: Path, *, workers: int) -> None:
    """Plan on the budget grid and save it where :func:`train` reuses it (``RUN/plan.json``)."""
    plan_path = run / "plan.json"
    if plan_path.is_file():
        return
    model_config = build_model_config(
        config.model,
        in_channels=len(index.channel_names),
        seg_classes=max(index.label_names.values()) + 1,
        case_classes=len(index.class_names),
    )
    fingerprint = compute_fingerprint(
        index.split("train").records,
        intensity_samples=10**6,
        num_workers=workers,
        progress=False,
    )
    plan = create_plan(
        fingerprint,
        size_divisor=MultiTaskUNet(model_config).size_divisor,
        target_spacing=BUDGET_SPACING,
        labels=sorted(set(index.label_names.values())),
    )
    # The checkpoints carry the plan: make its patch (the predictor's window) the trained one.
    plan = dataclasses.replace(
        plan,
        patch_size=config.patch_size or plan.patch_size,
        batch_size=config.batch_size or plan.batch_size,
    )
    run.mkdir(parents=True, exist_ok=True)
    plan.save(plan_path)


def run_budget(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    minutes: float,
    config_path: str | os.PathLike[str] | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Train within ``minutes`` on ``data/train`` and evaluate on ``data/validation``.

    Args:
        data: The study-layout dataset (``train/subtypeK``, ``validation/subtypeK``).
        out: Output folder: ``run/`` (the training run, with ``metrics.csv`` and
            ``curves.png``), ``predictions_validation/``, ``report_validation/``.
        minutes: Wall-clock budget for everything.
        config_path: Training YAML (default ``configs/cpu_budget.yaml``).
        workers: Processes for planning, preprocessing and torch threads.

    Returns:
        The summary: results (Dice, macro-F1, AUC with intervals), timings, epochs, config.
    """
    started = time.perf_counter()
    out = Path(out)
    run = out / "run"
    index = read_dataset(data)
    if "validation" not in index.splits:
        raise ConfigError(f"{index.root} has no validation/ split to evaluate the budget run on")
    timings: dict[str, float] = {}
    config = budget_config(minutes, path=config_path)
    _save_plan(index, config, run, workers=workers)
    timings["plan_s"] = time.perf_counter() - started

    # Preprocessing happens inside train(); time it as part of the training budget's start.
    elapsed = (time.perf_counter() - started) / 60
    config = budget_config(minutes, elapsed_minutes=elapsed, path=config_path)
    resume = (run / "checkpoints" / "last.pt").is_file()
    step = time.perf_counter()
    result = train(index, run, config, resume=resume, workers=workers, intensity_samples=10**6)
    timings["train_s"] = time.perf_counter() - step

    step = time.perf_counter()
    predictor = Predictor.from_checkpoint(run / "checkpoints" / "last.pt", device="cpu")
    records = list(index.split("validation").records)
    predictor.predict(records, out / "predictions_validation", progress=False)
    timings["predict_s"] = time.perf_counter() - step

    step = time.perf_counter()
    report = evaluate(
        out / "predictions_validation",
        index.root,
        out_dir=out / "report_validation",
        split="validation",
    )
    timings["evaluate_s"] = time.perf_counter() - step
    timings["total_s"] = time.perf_counter() - started
    results = {k: report.summary[k] for k in HEADLINE if k in report.summary}
    return {
        "mode": "cpu_budget",
        "budget_minutes": minutes,
        "data": {
            "root": index.root.name,
            "train_cases": len(index.split("train")),
            "validation_cases": len(records),
        },
        "settings": {
            "preset": config.model.preset,
            "head": config.model.head,
            "target_spacing": list(BUDGET_SPACING),
            "patch_size": list(config.patch_size or ()),
            "batch_size": config.batch_size,
            "optimizer": f"{config.optimizer.name} lr {config.optimizer.lr:g}",
            "torch_threads": torch.get_num_threads(),
            "epochs_trained": result.epochs,
            "iterations_trained": result.epochs * config.iterations_per_epoch,
            "checkpoint": "last.pt",
        },
        "results": results,
        "timings": timings,
    }
