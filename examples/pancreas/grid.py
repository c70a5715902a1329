"""The study's ablation grid: every ``configs/study_*.yaml`` trained, predicted and compared.

For each variant (four classification heads x two imbalance strategies) the grid

1. trains on ``train/`` and validates on ``validation/`` with :func:`multitask_unet.training.train`
   (one plan and one preprocessing cache shared by all variants: the heads do not change the
   network's size divisor);
2. predicts ``validation/`` and ``test/`` with the :class:`~multitask_unet.inference.Predictor`
   (label maps on each case's own grid and ``predictions.csv`` of subtype probabilities) from
   the checkpoint with the best validation score;
3. evaluates ``validation/`` (the split with ground truth) with
   :func:`multitask_unet.evaluation.evaluate`;

then :func:`multitask_unet.evaluation.compare_reports` writes ``OUT/report/study_report.md``,
``.json`` and ``.png``. Every step is skipped when its output exists (a finished training run
returns at once), so an interrupted grid continues where it stopped.

Example:
    >>> from grid import variants
    >>> sorted(variants())[:2]
    ['attention_balanced', 'attention_wce']
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, compare_reports, evaluate
from multitask_unet.inference import Predictor
from multitask_unet.training import TrainConfig, prepare_plan, run_checkpoint, train

__all__ = ["SMOKE", "run_grid", "run_smoke", "study_metrics", "variants"]

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
#: Overrides of the smoke mode: the grid's chain on phantoms, a few iterations per variant.
SMOKE: dict[str, Any] = {
    "model": {"preset": "tiny_residual"},
    "data": {"batch_size": 2, "patch_size": [16, 32, 32], "augment": False},
    "optimization": {"epochs": 1, "iterations_per_epoch": 2},
    "runtime": {"val_every": 1, "progress": False, "device": "cpu"},
}
SMOKE_PHANTOMS: dict[str, Any] = {
    "n_train": 6,
    "n_validation": 3,
    "n_test": 3,
    "shape": (32, 32, 16),
    "spacing": (1.25, 1.25, 2.0),
    "class_counts": (1, 1, 1),  # every subtype in every split: every AUC is defined
}


def variants(config_dir: str | os.PathLike[str] = CONFIGS) -> dict[str, Path]:
    """Variant name (``<head>_<imbalance>``) -> its YAML, for every ``study_*.yaml``."""
    found = {
        p.stem.removeprefix("study_"): p for p in sorted(Path(config_dir).glob("study_*.yaml"))
    }
    if not found:
        raise ConfigError(f"no study_*.yaml configs in {config_dir}")
    return found


def study_metrics(class_names: Sequence[str]) -> dict[str, str]:
    """The compared metrics (summary key -> column): the study's Dice, AUC per subtype, F1."""
    metrics = {"dice_whole_pancreas": "whole-pancreas Dice", "dice_lesion": "lesion Dice"}
    metrics |= {f"auc_ovr_{name}": f"AUC {name} vs rest" for name in class_names}
    return metrics | {"macro_f1": "macro-F1"}


def run_variant(
    index: DatasetIndex,
    name: str,
    config: TrainConfig,
    out: Path,
    *,
    plan_path: Path,
    workers: int = 2,
    mirror_axes: Sequence[int] | None = None,
) -> Path:
    """Train, predict ``validation/`` and ``test/``, evaluate ``validation/``; returns the report
    folder (``OUT/NAME/report_validation``). Test-time mirroring defaults to the axes the
    training augmentation mirrored (the checkpoint records them)."""
    folder = out / name
    run = folder / "run"
    if not (run / "plan.json").is_file():  # every variant trains with the shared plan
        run.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plan_path, run / "plan.json")
    print(f"[{name}] {config.model.preset} + {config.model.head}")
    resume = (run / "checkpoints" / "last.pt").is_file()
    train(index, run, config, resume=resume, cache_dir=out / "preprocessed", workers=workers,
          verbose=False)  # fmt: skip
    options = {} if mirror_axes is None else {"mirror_axes": tuple(mirror_axes)}
    predictor = Predictor.from_checkpoint(
        run_checkpoint(run, prefer="best"), device=config.runtime.device, **options
    )
    for split in ("validation", "test"):
        if split in index.splits:
            records = index.split(split).records
            predictor.predict(records, folder / f"predictions_{split}", progress=False)
    report = folder / "report_validation"
    if not (report / "summary.json").is_file():
        evaluate(folder / "predictions_validation", index.root, output_dir=report,
                 split="validation", config=EvaluationConfig(regions=PANCREAS_REGIONS))  # fmt: skip
    return report


def run_grid(
    data: str | os.PathLike[str] | DatasetIndex,
    out: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    workers: int = 2,
    intensity_samples: int = 10**8,
    mirror_axes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run the variants (all, or ``only``) and write the comparison report.

    Args:
        data: The study-layout dataset (``train/``, ``validation/``, ``test/``).
        out: Output folder: ``plan.json``, ``preprocessed/``, one folder per variant
            (``run/``, ``predictions_validation/``, ``predictions_test/``, ``report_validation/``)
            and ``report/``.
        only: Variant names to run (default: every ``configs/study_*.yaml``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        overrides: Nested config keys applied to every variant (``TrainConfig.merged``).
        workers: Processes for planning and preprocessing.
        intensity_samples: Foreground voxels for the CT percentiles (nnU-Net: 1e8).
        mirror_axes: Test-time mirroring of the predictor (``()`` turns it off); default: the
            axes the training augmentation mirrored.

    Returns:
        A summary: per variant the compared metrics, plus the report's path.
    """
    out = Path(out)
    index = data if isinstance(data, DatasetIndex) else read_dataset(data)
    found = variants()
    names = list(only) if only else list(found)
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; choose from {', '.join(found)}")
    device_only = {"runtime": {"device": device}}  # then the caller's overrides
    configs = {n: TrainConfig.load(found[n]).merged(device_only).merged(overrides or {})
               for n in names}  # fmt: skip
    plan_path = out / "plan.json"
    if not plan_path.is_file():
        plan = prepare_plan(index, configs[names[0]], workers=workers,
                            intensity_samples=intensity_samples)  # fmt: skip
        plan.save(plan_path)
    reports = {
        n: run_variant(
            index, n, c, out, plan_path=plan_path, workers=workers, mirror_axes=mirror_axes
        )
        for n, c in configs.items()
    }
    table = compare_reports(
        reports,
        study_metrics(index.class_names),
        output_dir=out / "report",
        name="study_report",
        title="Pancreas study: variants compared on validation/",
    )
    return {"mode": "grid", "variants": table, "report": str(out / "report" / "study_report.md")}


def run_smoke(out: str | os.PathLike[str], *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """The grid on small phantoms for a few iterations per variant (CPU, a minute or less)."""
    out = Path(out)
    data = out / "phantoms"
    index = (
        read_dataset(data)
        if (data / "dataset.json").is_file()
        else write_phantom_dataset(data, **SMOKE_PHANTOMS)
    )
    return run_grid(index, out / "grid", only=only, device="cpu", overrides=SMOKE, workers=1,
                    intensity_samples=10**4)  # fmt: skip
