"""CPU budget mode of the pancreas example: train on ``train/``, evaluate on ``validation/``.

Everything (fingerprint, planning, preprocessing, training, prediction of the validation cases
on their own grid, evaluation) fits in ``minutes`` of wall-clock time. Two ways to plan:

* ``"planner"``: the library's budget planner
  (:func:`multitask_unet.training.budget.plan_for_budget`) measures trial steps of candidate
  spacings, patches and networks on this machine and picks one whose schedule fits; ``train``
  applies it (:func:`~multitask_unet.training.budget.budget_train_config`), in bfloat16 on CPUs
  with native bfloat16 (:func:`planner_search`).
* ``"fixed"``: ``configs/cpu_budget.yaml`` as written (a small residual U-Net on a
  :data:`BUDGET_SPACING` grid, AdamW), with ``time_budget_minutes`` set to the time left, so the
  trainer shortens its poly schedule to finish in time.

``"auto"`` (the default) tries the planner and falls back to the fixed configuration when no
candidate is feasible (on a heavily loaded machine every measured step is slow). Either way the
last checkpoint then predicts ``validation/`` and :func:`multitask_unet.evaluation.evaluate`
scores it.

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
from typing import Any, Literal

import torch

from multitask_unet.data.fingerprint import DatasetFingerprint, compute_fingerprint
from multitask_unet.data.planning import Plan, create_plan
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import evaluate
from multitask_unet.inference import Predictor
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training import TrainConfig, train
from multitask_unet.training.budget import BudgetSearch, plan_for_budget
from multitask_unet.training.builders import build_model_config
from multitask_unet.training.precision import cpu_has_native_bf16

__all__ = [
    "BUDGET_SPACING",
    "HEADLINE",
    "PLANNER_SEARCH",
    "PlanMode",
    "budget_config",
    "planner_search",
    "predict_validation",
    "run_budget",
    "trained_mirror_axes",
]

PlanMode = Literal["auto", "planner", "fixed"]
HERE = Path(__file__).parent
#: Target spacing (D, H, W) in mm of the fixed configuration: about 2x coarser than the data's
#: own (2.0, 0.73, 0.73), so a patch of (32, 48, 64) voxels covers most of a pancreas crop.
BUDGET_SPACING = (3.0, 1.6, 1.6)
#: Evaluation summary keys reported by the example, with their labels.
HEADLINE = {
    "dice_whole_pancreas": "whole-pancreas Dice",
    "dice_lesion": "lesion Dice",
    "macro_f1": "macro-F1",
    "auc_ovr_macro": "one-vs-rest AUC (macro)",
}
_RESERVE_MINUTES = 3.0  # preprocessing, then prediction of validation/ and evaluation
#: The planner's own reserve (15% by default) need only cover what _RESERVE_MINUTES does not:
#: preprocessing the 47 crops took 12 s on 2 cores, checkpoints a second each.
PLANNER_SEARCH = BudgetSearch.for_device("cpu", overhead_fraction=0.05)


def budget_config(
    minutes: float, *, elapsed_minutes: float = 0.0, path: str | os.PathLike[str] | None = None
) -> TrainConfig:
    """The fixed CPU config with ``time_budget_minutes`` leaving room for the other steps.

    Args:
        minutes: The whole budget.
        elapsed_minutes: Already spent (fingerprint, planning).
        path: The YAML config (default ``configs/cpu_budget.yaml``).

    Raises:
        ConfigError: Less than a minute is left for training.
    """
    config = TrainConfig.load(path or HERE / "configs" / "cpu_budget.yaml")
    if config.amp == "bf16" and not cpu_has_native_bf16():
        print("amp: bf16 -> off: this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
        config = dataclasses.replace(config, amp="off")
    left = minutes - elapsed_minutes - _RESERVE_MINUTES
    if left < 1.0:
        raise ConfigError(
            f"a budget of {minutes:g} min leaves {left:.1f} min for training after "
            f"{elapsed_minutes:.1f} min of preparation and a {_RESERVE_MINUTES:g} min reserve; "
            "give --budget-minutes of at least 10"
        )
    return dataclasses.replace(config, time_budget_minutes=left)


def planner_search(config: TrainConfig, search: BudgetSearch | None = None) -> BudgetSearch:
    """The planner's search with the precision its trials and the training use.

    The config's ``amp``; with ``"auto"``, bfloat16 on CPUs with native bfloat16 (1.7x faster
    steps, buying more steps or a finer spacing), else float32. The fixed configuration keeps
    the config's precision (float32 on the CPU), as its results were measured.
    """
    amp = config.amp
    if amp == "auto" and cpu_has_native_bf16():
        amp = "bf16"
    return (search or PLANNER_SEARCH).replace(amp=amp)


def trained_mirror_axes(config: TrainConfig) -> tuple[int, ...]:
    """The axes the training augmentation mirrored: the only ones test-time mirroring may use.

    A network trained without mirroring has never seen flipped anatomy; averaging its
    predictions on flipped copies (the predictor's default) degrades them.
    """
    if not config.augment:
        return ()
    augmentation = config.augmentation
    if augmentation is None:  # nnU-Net's recipe: every axis
        return (0, 1, 2)
    return tuple(augmentation.mirror_axes) if augmentation.p_mirror > 0 else ()


def _fixed_plan(index: DatasetIndex, fingerprint: DatasetFingerprint, config: TrainConfig) -> Plan:
    """The plan of the fixed configuration: its spacing, and its patch as the predictor's window."""
    model_config = build_model_config(
        config.model,
        in_channels=len(index.channel_names),
        seg_classes=max(index.label_names.values()) + 1,
        case_classes=len(index.class_names),
    )
    plan = create_plan(
        fingerprint,
        size_divisor=MultiTaskUNet(model_config).size_divisor,
        target_spacing=BUDGET_SPACING,
        labels=sorted(set(index.label_names.values())),
    )
    return dataclasses.replace(
        plan,
        patch_size=config.patch_size or plan.patch_size,
        batch_size=config.batch_size or plan.batch_size,
    )


def predict_validation(
    out: str | os.PathLike[str], index: DatasetIndex, *, save_probabilities: bool = False
) -> list[Any]:
    """Predict ``validation/`` with ``out/run``'s last checkpoint into ``out/predictions_validation``.

    Cases already predicted are skipped (with ``save_probabilities``, those without their
    ``CASE.npz`` are predicted again). Returns the validation records.
    """
    run = Path(out) / "run"
    trained = TrainConfig.load(run / "config.yaml")
    predictor = Predictor.from_checkpoint(
        run / "checkpoints" / "last.pt",
        device="cpu",
        mirror_axes=trained_mirror_axes(trained),
        save_probabilities=save_probabilities,
    )
    records = list(index.split("validation").records)
    predictor.predict(records, Path(out) / "predictions_validation", progress=False)
    return records


def run_budget(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    minutes: float,
    plan_mode: PlanMode = "auto",
    config_path: str | os.PathLike[str] | None = None,
    workers: int = 2,
    search: BudgetSearch | None = None,
    save_probabilities: bool = False,
) -> dict[str, Any]:
    """Train within ``minutes`` on ``data/train`` and evaluate on ``data/validation``.

    Args:
        data: The study-layout dataset (``train/subtypeK``, ``validation/subtypeK``).
        out: Output folder: ``run/`` (the training run, with ``plan.json``, ``metrics.csv`` and
            ``curves.png``), ``predictions_validation/``, ``report_validation/``.
        minutes: Wall-clock budget for everything.
        plan_mode: ``"auto"``, ``"planner"`` or ``"fixed"`` (see the module docstring).
        config_path: Training YAML (default ``configs/cpu_budget.yaml``).
        workers: Processes for fingerprinting and preprocessing.
        search: The planner's search (default: the library's CPU search with a 5% reserve); its
            precision is set by :func:`planner_search`.
        save_probabilities: Also write each validation case's segmentation probabilities
            (``predictions_validation/CASE.npz``), e.g. to choose label weights on them.

    Returns:
        The summary: results (Dice, macro-F1, AUC with intervals), settings, timings.

    Raises:
        ConfigError: No validation split; a budget too small; ``"planner"`` found nothing.
    """
    started = time.perf_counter()
    out = Path(out)
    run = out / "run"
    index = read_dataset(data)
    if "validation" not in index.splits:
        raise ConfigError(f"{index.root} has no validation/ split to evaluate the budget run on")
    if plan_mode not in ("auto", "planner", "fixed"):
        raise ConfigError(f"plan_mode must be 'auto', 'planner' or 'fixed', got {plan_mode!r}")
    base = budget_config(minutes, path=config_path)  # fails early on a budget too small
    timings: dict[str, float] = {}
    fingerprint = compute_fingerprint(
        index.split("train").records, intensity_samples=10**6, num_workers=workers, progress=False
    )
    timings["fingerprint_s"] = time.perf_counter() - started

    planner_note = None
    plan: Plan | None = None
    if plan_mode != "fixed":
        left = minutes - (time.perf_counter() - started) / 60 - _RESERVE_MINUTES
        try:
            plan = plan_for_budget(
                fingerprint, left * 60, device="cpu",
                search=planner_search(base, search),
                head=base.model.head, labels=sorted(set(index.label_names.values())),
            )  # fmt: skip
        except ConfigError as error:
            if plan_mode == "planner":
                raise
            planner_note = f"planner found no feasible candidate, fixed config used: {error}"
            print(planner_note)
        timings["planner_s"] = time.perf_counter() - started - timings["fingerprint_s"]
    if plan is None:
        plan = _fixed_plan(index, fingerprint, base)
        config = budget_config(
            minutes, elapsed_minutes=(time.perf_counter() - started) / 60, path=config_path
        )
    else:
        config = base  # train() applies the budget plan (preset, schedule, time budget)
    run.mkdir(parents=True, exist_ok=True)
    plan.save(run / "plan.json")

    step = time.perf_counter()
    result = train(index, run, config, workers=workers, intensity_samples=10**6)
    timings["preprocess_and_train_s"] = time.perf_counter() - step
    trained = TrainConfig.load(run / "config.yaml")

    step = time.perf_counter()
    records = predict_validation(out, index, save_probabilities=save_probabilities)
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
    return {
        "mode": "cpu_budget",
        "budget_minutes": minutes,
        "data": {
            "root": index.root.name,
            "train_cases": len(index.split("train")),
            "validation_cases": len(records),
        },
        "settings": {
            "plan": "planner" if plan.budget is not None else "fixed",
            "planner_note": planner_note,
            "preset": trained.model.preset,
            "head": trained.model.head,
            "target_spacing": [round(s, 3) for s in plan.target_spacing],
            "patch_size": list(trained.patch_size or plan.patch_size),
            "batch_size": trained.batch_size or plan.batch_size,
            "optimizer": f"{trained.optimizer.name} lr {trained.optimizer.lr:g}",
            "augment": trained.augment,
            "test_time_mirroring": list(trained_mirror_axes(trained)),
            "torch_threads": torch.get_num_threads(),
            "epochs_trained": result.epochs,
            "iterations_trained": result.epochs * trained.iterations_per_epoch,
            "checkpoint": "last.pt",
        },
        "results": {k: report.summary[k] for k in HEADLINE if k in report.summary},
        "timings": timings,
    }
