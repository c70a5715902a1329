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

then :func:`report.write_comparison` writes ``OUT/report/study_report.md`` and ``.png``.
Every step is skipped when its output exists, so an interrupted grid continues where it stopped.

Example:
    >>> from grid import variants
    >>> sorted(variants())[:2]
    ['attention_balanced', 'attention_wce']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from report import write_comparison

from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, evaluate
from multitask_unet.inference import Predictor
from multitask_unet.training import TrainConfig, prepare_plan, train

__all__ = ["SMOKE", "run_grid", "run_smoke", "variant_config", "variants"]

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


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def variant_config(
    path: str | os.PathLike[str],
    index: DatasetIndex,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Load a variant's config; weight one-vs-rest positives when it uses weighted losses.

    A ``bce_ovr`` term without ``pos_weight`` in a variant that draws cases uniformly
    (``data.class_weights: none``, the weighted-loss strategy) gets ``pos_weight_k = negatives_k /
    positives_k`` from the training split: the binary counterpart of weighted cross-entropy.

    Args:
        path: The YAML file.
        index: The dataset (its training split gives the class counts).
        overrides: Nested keys replacing the file's (e.g. :data:`SMOKE`, or
            ``{"runtime": {"device": "cpu"}}``).
    """
    config = TrainConfig.load(path)
    if overrides:
        config = TrainConfig.from_dict(_merge(config.to_dict(), overrides))
    loss = config.optimization.loss
    terms = dict(loss.terms) if loss is not None else {}
    term = terms.get("cls")
    if (
        term is not None
        and term.loss == "bce_ovr"
        and "pos_weight" not in term.options
        and config.data.class_weights == "none"
    ):
        labels = [r.label for r in index.split("train") if r.label is not None]
        counts = [labels.count(k) for k in range(len(index.class_names))]
        if min(counts) == 0:
            raise ConfigError(f"{path}: a subtype has no training case (counts {counts})")
        pos_weight = [(len(labels) - n) / n for n in counts]
        terms["cls"] = dataclasses.replace(term, options={**term.options, "pos_weight": pos_weight})
        loss = dataclasses.replace(loss, terms=terms)
        config = config.replace(optimization={"loss": loss})
    return config


def _shared_plan(
    index: DatasetIndex, config: TrainConfig, out: Path, *, workers: int, intensity_samples: int
) -> Path:
    path = out / "plan.json"
    if not path.is_file():
        plan = prepare_plan(index, config, workers=workers, intensity_samples=intensity_samples)
        out.mkdir(parents=True, exist_ok=True)
        plan.save(path)
    return path


def _best_checkpoint(run: Path) -> Path:
    best = run / "checkpoints" / "best.pt"
    return best if best.is_file() else run / "checkpoints" / "last.pt"


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
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "plan.json").is_file():
        (run / "plan.json").write_text(plan_path.read_text(encoding="utf-8"), encoding="utf-8")
    done = run / "checkpoints" / "last.pt"
    finished = False
    if done.is_file() and (run / "metrics.csv").is_file():
        with (run / "metrics.csv").open() as fh:
            finished = sum(1 for _ in fh) - 1 >= config.optimization.epochs
    if not finished:
        print(f"[{name}] training {config.model.preset} + {config.model.head}")
        train(
            index,
            run,
            config,
            resume=done.is_file(),
            cache_dir=out / "preprocessed",
            workers=workers,
            verbose=False,
        )
    options = {} if mirror_axes is None else {"mirror_axes": tuple(mirror_axes)}
    predictor = Predictor.from_checkpoint(
        _best_checkpoint(run), device=_device(config.runtime.device), **options
    )
    for split in ("validation", "test"):
        if split in index.splits:
            records = list(index.split(split).records)
            predictor.predict(records, folder / f"predictions_{split}", progress=False)
    report = folder / "report_validation"
    if not (report / "summary.json").is_file():
        evaluate(
            folder / "predictions_validation",
            index.root,
            out_dir=report,
            split="validation",
            config=EvaluationConfig(regions=PANCREAS_REGIONS),
        )
    return report


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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
        overrides: Nested config keys applied to every variant.
        workers: Processes for planning and preprocessing.
        intensity_samples: Foreground voxels for the CT percentiles (nnU-Net: 1e8).
        mirror_axes: Test-time mirroring of the predictor (``()`` turns it off); default: the
            axes the training augmentation mirrored.

    Returns:
        A summary: per variant the headline metrics, plus the report's paths.
    """
    out = Path(out)
    index = data if isinstance(data, DatasetIndex) else read_dataset(data)
    found = variants()
    names = list(only) if only else list(found)
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; choose from {', '.join(found)}")
    overrides = _merge({"runtime": {"device": device}}, overrides or {})
    configs = {n: variant_config(found[n], index, overrides=overrides) for n in names}
    plan_path = _shared_plan(
        index, configs[names[0]], out, workers=workers, intensity_samples=intensity_samples
    )
    reports = {
        n: run_variant(
            index, n, c, out, plan_path=plan_path, workers=workers, mirror_axes=mirror_axes
        )
        for n, c in configs.items()
    }
    table = write_comparison(reports, out / "report", class_names=index.class_names)
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
    return run_grid(
        index,
        out / "grid",
        only=only,
        device="cpu",
        overrides=SMOKE,
        workers=1,
        intensity_samples=10**4,
    )
