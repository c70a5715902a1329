"""K-fold cross-validation of the CPU budget mode over every labelled case of the study dataset.

The ``train/`` and ``validation/`` cases are pooled and split into ``folds`` folds, stratified by
subtype (cases of each subtype dealt round-robin after a seeded shuffle). For each fold a
study-layout view of the data is built from symbolic links (``train/`` = the other folds,
``validation/`` = this fold; nothing is copied) and :func:`budget.run_budget` trains and
evaluates on it within the same wall-clock budget. Per-case Dice of all folds together gives
the mean and median over every case, each case scored by a model that never saw it.

Each fold's predictions are also scored after nnU-Net's largest-connected-component
post-processing (:func:`multitask_unet.inference.keep_largest_component`, applied to the saved
label maps; ``*_lcc`` folders), reported next to the raw ones, not instead of them.

Usage::

    python examples/pancreas/crossval.py DATA -o runs/cv --folds 3 --budget-minutes 30 --threads 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from budget import PLANNER_SEARCH, run_budget
from machine import environment, write_json_atomic

from multitask_unet.data.io import read_image, write_image
from multitask_unet.data.readers import read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import evaluate
from multitask_unet.inference import keep_largest_component

__all__ = ["link_fold", "main", "make_folds", "summarize"]

METRICS = ("dice_whole_pancreas", "dice_lesion")


def make_folds(records: list[Any], folds: int, seed: int = 0) -> list[list[Any]]:
    """Split records into ``folds`` folds, each subtype dealt round-robin after a seeded shuffle.

    A subtype with a single case is left out of every fold: it stays in every training set
    (the classification head needs each subtype in training; ``multitask-unet validate``
    refuses a training set without one) and is never evaluated (see :func:`never_held_out`).

    Raises:
        ConfigError: Fewer records than folds, or fewer than 2 folds.
    """
    if folds < 2 or len(records) < folds:
        raise ConfigError(f"need 2 <= folds <= {len(records)} cases, got folds={folds}")
    rng = random.Random(seed)
    by_class: dict[Any, list[Any]] = {}
    for record in sorted(records, key=lambda r: r.case_id):
        by_class.setdefault(record.label, []).append(record)
    out: list[list[Any]] = [[] for _ in range(folds)]
    position = 0
    for key in sorted(by_class, key=str):
        group = by_class[key]
        rng.shuffle(group)
        for record in group:  # continue where the last subtype ended, so fold sizes stay even
            out[position % folds].append(record)
            position += 1
    singles = {r.case_id for group in by_class.values() if len(group) == 1 for r in group}
    return [[r for r in fold if r.case_id not in singles] for fold in out]


def never_held_out(records: list[Any], folds: list[list[Any]]) -> list[Any]:
    """The records in no fold: trained on in every fold, evaluated in none."""
    held = {r.case_id for fold in folds for r in fold}
    return [r for r in records if r.case_id not in held]


def _subtype_dir(record: Any) -> str:
    return f"subtype{record.label}"


def link_fold(view: Path, train: list[Any], held_out: list[Any]) -> Path:
    """A study-layout folder of symbolic links: ``train/`` and ``validation/`` for one fold."""
    for split, records in (("train", train), ("validation", held_out)):
        for record in records:
            folder = view / split / _subtype_dir(record)
            folder.mkdir(parents=True, exist_ok=True)
            for source in (*record.images, record.mask):
                target = folder / Path(source).name
                if not target.exists():
                    target.symlink_to(Path(source).resolve())
    return view


def postprocessed_report(fold_out: Path) -> Path:
    """Score the fold's predictions after keeping the largest foreground component."""
    source, target = fold_out / "predictions_validation", fold_out / "predictions_validation_lcc"
    report = fold_out / "report_validation_lcc"
    if (report / "cases.csv").exists():
        return report
    for path in sorted(source.glob("*.nii.gz")):
        volume = read_image(path)
        write_image(target / path.name, keep_largest_component(volume.array), volume.affine)
    if (source / "predictions.csv").exists():
        shutil.copy(source / "predictions.csv", target / "predictions.csv")
    evaluate(target, fold_out / "data", out_dir=report, split="validation")
    return report


def _read_cases(report_dir: Path) -> list[dict[str, str]]:
    with open(report_dir / "cases.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, median, min and max of each metric (raw and ``_lcc``) over the per-case rows."""
    out: dict[str, Any] = {"n": len(rows)}
    for metric in (m + suffix for suffix in ("", "_lcc") for m in METRICS):
        if not any(metric in r for r in rows):
            continue
        values = [float(r[metric]) for r in rows if r.get(metric) not in (None, "", "nan")]
        out[metric] = {
            "mean": statistics.fmean(values),
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "n": len(values),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="study-layout dataset (train/, validation/)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only", type=int, nargs="*", help="run only these folds (0-based)")
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--budget-plan", default="fixed", choices=("auto", "planner", "fixed"))
    parser.add_argument("--config", type=Path, help="training YAML (configs/cpu_budget.yaml)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--result", type=Path, help="also write the summary JSON here")
    parser.add_argument(
        "--min-coverage",
        type=float,
        help="planner: share of the median case a patch must cover (BudgetSearch.min_coverage)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    search = None
    if args.min_coverage is not None:
        search = PLANNER_SEARCH.replace(min_coverage=args.min_coverage)

    index = read_dataset(args.data)
    labelled = [r for split in ("train", "validation") for r in index.split(split).records]
    folds = make_folds(labelled, args.folds, seed=args.seed)
    per_fold: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for k, held_out in enumerate(folds):
        fold_out = args.out / f"fold{k}"
        summary_path = fold_out / "summary.json"
        if args.only is not None and k not in args.only and not summary_path.exists():
            continue
        if not summary_path.exists():
            train_records = [r for j, fold in enumerate(folds) if j != k for r in fold]
            train_records += never_held_out(labelled, folds)
            view = link_fold(fold_out / "data", train_records, held_out)
            summary = run_budget(
                view, fold_out, minutes=args.budget_minutes, plan_mode=args.budget_plan,
                config_path=args.config, workers=min(2, args.threads), search=search,
            )  # fmt: skip
            summary["environment"] = environment("cpu")
            write_json_atomic(summary_path, summary)
        summary = json.loads(summary_path.read_text())
        cases = _read_cases(fold_out / "report_validation")
        lcc = {r["case_id"]: r for r in _read_cases(postprocessed_report(fold_out))}
        for row in cases:
            row["fold"] = k
            for metric in METRICS:
                row[f"{metric}_lcc"] = lcc[row["case_id"]][metric]
        rows.extend(cases)
        per_fold.append({"fold": k, **summarize(cases), "run": summary})
        print(f"fold {k}: " + ", ".join(
            f"{m} mean {per_fold[-1][m]['mean']:.3f}" for m in METRICS
        ))  # fmt: skip
    result = {
        "mode": "cpu_budget_crossval",
        "folds": args.folds,
        "seed": args.seed,
        "budget_minutes": args.budget_minutes,
        "budget_plan": args.budget_plan,
        "planner_min_coverage": (search or PLANNER_SEARCH).min_coverage,
        "cases": len(labelled),
        "never_held_out": [r.case_id for r in never_held_out(labelled, folds)],
        "all_cases": summarize(rows) if rows else None,
        "per_fold": per_fold,
        "per_case": [
            {k: r.get(k) for k in ("fold", "case_id", *METRICS, *(m + "_lcc" for m in METRICS))}
            for r in rows
        ],
        "environment": environment("cpu"),
    }
    write_json_atomic(args.out / "crossval.json", result)
    if args.result:
        write_json_atomic(args.result, result)
    if rows:
        every = result["all_cases"]
        print("all cases: " + ", ".join(
            f"{m} mean {every[m]['mean']:.3f} median {every[m]['median']:.3f}"
            for m in (*METRICS, *(m + "_lcc" for m in METRICS))
        ))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
