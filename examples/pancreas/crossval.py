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

Label weights: each fold also saves its segmentation probabilities (``CASE.npz``), and the
lesion is decided by ``argmax_k w_k p_k`` with a weight ``w`` on the lesion
(:func:`multitask_unet.inference.weighted_argmax`; ``*_weighted`` folders and metrics). Each
fold's ``w`` is chosen *cross-fitted*: the candidate with the best mean lesion Dice over the
other folds' cases, never over the fold it is applied to, so every weighted score is still that
of a choice made without the case. ``label_weight.all_folds`` is the weight the same rule
chooses on every case: the one to use on new data.

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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from budget import PLANNER_SEARCH, predict_validation, run_budget
from machine import environment, write_json_atomic

from multitask_unet.data.io import read_image, read_mask, write_image
from multitask_unet.data.readers import read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import evaluate
from multitask_unet.inference import keep_largest_component, label_weight_dice, weighted_argmax

__all__ = ["best_weight", "choose_label_weights", "link_fold", "main", "make_folds", "summarize"]

METRICS = ("dice_whole_pancreas", "dice_lesion")
VARIANTS = ("", "_lcc", "_weighted", "_weighted_lcc")
#: Candidate weights of the lesion label (1: the plain argmax).
WEIGHT_CANDIDATES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


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


def postprocessed_report(fold_out: Path, source_name: str = "predictions_validation") -> Path:
    """Score the fold's predictions after keeping the largest foreground component."""
    source, target = fold_out / source_name, fold_out / f"{source_name}_lcc"
    report = fold_out / (source_name.replace("predictions", "report") + "_lcc")
    if (report / "cases.csv").exists():
        return report
    for path in sorted(source.glob("*.nii.gz")):
        volume = read_image(path)
        write_image(target / path.name, keep_largest_component(volume.array), volume.affine)
    if (source / "predictions.csv").exists():
        shutil.copy(source / "predictions.csv", target / "predictions.csv")
    evaluate(target, fold_out / "data", out_dir=report, split="validation")
    return report


def lesion_weight_scores(
    fold_out: Path, candidates: tuple[float, ...], lesion: int
) -> dict[str, list[float]]:
    """Lesion Dice of each held-out case of a fold for every candidate weight (cached)."""
    cache = fold_out / "label_weight_scores.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if tuple(cached["candidates"]) == candidates and cached["label"] == lesion:
            return cached["cases"]
    index = read_dataset(fold_out / "data")
    predict_validation(fold_out, index, save_probabilities=True)  # folds run before they were kept
    scores = {}
    for record in index.split("validation").records:
        probabilities = _probabilities(fold_out, record.case_id)
        reference = read_mask(record.mask).array
        scores[record.case_id] = label_weight_dice(
            probabilities, reference, label=lesion, candidates=candidates
        )
    write_json_atomic(cache, {"label": lesion, "candidates": list(candidates), "cases": scores})
    return scores


def _probabilities(fold_out: Path, case_id: str) -> np.ndarray:
    with np.load(fold_out / "predictions_validation" / f"{case_id}.npz") as data:
        return data["probabilities"]


def best_weight(scores: list[list[float]], candidates: tuple[float, ...]) -> float:
    """The candidate with the highest mean score (the smallest weight on a tie)."""
    means = np.mean(np.asarray(scores, dtype=np.float64), axis=0)
    return candidates[int(np.argmax(means))]


def weighted_report(fold_out: Path, weights: tuple[float, ...]) -> tuple[Path, Path]:
    """Score the fold's predictions decided with label ``weights`` (raw and largest component)."""
    target = fold_out / "predictions_validation_weighted"
    report = fold_out / "report_validation_weighted"
    stamp = {"label_weights": list(weights)}
    stamp_path = target / "label_weights.json"
    if stamp_path.exists() and json.loads(stamp_path.read_text()) != stamp:
        for folder in (target, report, Path(f"{target}_lcc"), Path(f"{report}_lcc")):
            shutil.rmtree(folder, ignore_errors=True)  # a weight from an earlier set of folds
    if not (report / "cases.csv").exists():
        source = fold_out / "predictions_validation"
        for path in sorted(source.glob("*.nii.gz")):
            case_id = path.name[: -len(".nii.gz")]
            labels = weighted_argmax(_probabilities(fold_out, case_id), weights)
            write_image(target / path.name, labels, read_image(path).affine)
        if (source / "predictions.csv").exists():
            shutil.copy(source / "predictions.csv", target / "predictions.csv")
        write_json_atomic(stamp_path, stamp)
        evaluate(target, fold_out / "data", out_dir=report, split="validation")
    return report, postprocessed_report(fold_out, target.name)


def _read_cases(report_dir: Path) -> list[dict[str, str]]:
    with open(report_dir / "cases.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, median, min and max of each metric (every variant) over the per-case rows."""
    out: dict[str, Any] = {"n": len(rows)}
    for metric in (m + suffix for suffix in VARIANTS for m in METRICS):
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


def choose_label_weights(
    fold_scores: dict[int, dict[str, list[float]]], candidates: tuple[float, ...]
) -> dict[str, Any]:
    """Cross-fitted lesion weights: each fold's from the other folds' cases (see the docstring)."""
    every = [s for scores in fold_scores.values() for s in scores.values()]
    per_fold = {
        k: best_weight(
            [s for j, o in fold_scores.items() if j != k for s in o.values()], candidates
        )
        for k in fold_scores
    }
    return {
        "candidates": list(candidates),
        "selection": "each fold: the candidate with the best mean lesion Dice of the other folds",
        "per_fold": per_fold,
        "all_folds": best_weight(every, candidates),
        "mean_lesion_dice_by_candidate": dict(
            zip(map(str, candidates), np.mean(np.asarray(every), axis=0).tolist())
        ),
    }


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
        "--weight-candidates",
        type=float,
        nargs="+",
        default=list(WEIGHT_CANDIDATES),
        help="candidate weights of the lesion label (cross-fitted choice; see the docstring)",
    )
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
    candidates = tuple(float(w) for w in args.weight_candidates)
    lesion = index.label_names.get("lesion", 2)
    num_labels = max(index.label_names.values()) + 1
    fold_scores: dict[int, dict[str, list[float]]] = {}
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
                save_probabilities=True,
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
        fold_scores[k] = lesion_weight_scores(fold_out, candidates, lesion)
        per_fold.append({"fold": k, "run": summary})
    label_weight = None
    if len(fold_scores) > 1:
        label_weight = choose_label_weights(fold_scores, candidates)
        for entry in per_fold:
            k = entry["fold"]
            weights = [1.0] * num_labels
            weights[lesion] = label_weight["per_fold"][k]
            fold_out = args.out / f"fold{k}"
            reports = weighted_report(fold_out, tuple(weights))
            by_variant = [{r["case_id"]: r for r in _read_cases(d)} for d in reports]
            for row in (r for r in rows if r["fold"] == k):
                for suffix, table in zip(("_weighted", "_weighted_lcc"), by_variant):
                    for metric in METRICS:
                        row[metric + suffix] = table[row["case_id"]][metric]
    for entry in per_fold:
        entry.update(summarize([r for r in rows if r["fold"] == entry["fold"]]))
        print(f"fold {entry['fold']}: " + ", ".join(
            f"{m} mean {entry[m]['mean']:.3f}" for m in METRICS
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
        "label_weight": label_weight,
        "all_cases": summarize(rows) if rows else None,
        "per_fold": per_fold,
        "per_case": [
            {k: r.get(k) for k in ("fold", "case_id", *(m + v for v in VARIANTS for m in METRICS))}
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
            for m in (m + v for v in VARIANTS for m in METRICS) if m in every
        ))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
