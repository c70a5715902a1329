"""The end of a cross-validation: post-processing chosen on the out-of-fold cases, and scores.

Each fold's post-processing for reporting is chosen on the *other* folds' cases (cross-fitted),
so every post-processed score is that of a choice made without the case; the choice made on
every case is the one saved for new data (``RUN/postprocessing.json``).
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet.data.io import read_image, read_mask, write_image
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError
from multitask_unet.inference.postprocessing_search import (
    PostprocessingChoice,
    PostprocessingSearch,
)

__all__ = ["summarize_folds"]

OOF, POST = "validation", "validation_postprocessed"


def summarize_folds(
    run_dir: Path,
    index: DatasetIndex,
    splits: Sequence[dict[str, list[str]]],
    finished: Sequence[int],
    evaluation: Any,
) -> dict[str, Any]:
    """Choose post-processing (once all folds ran), score raw and post-processed, summarise."""
    from multitask_unet.evaluation import evaluate

    summary: dict[str, Any] = {
        "folds": len(splits),
        "finished_folds": list(finished),
        "cases": sum(len(s["val"]) for s in splits),
        "never_held_out": sorted(
            set(splits[0]["train"]).intersection(*(s["train"] for s in splits))
        ),
        "per_fold": [_fold_record(run_dir, k) for k in finished],
    }
    if not finished:
        return summary
    by_id = {r.case_id: r for r in index.records}
    held = {k: splits[k]["val"] for k in finished}
    raw = evaluate(run_dir / OOF, index.root, config=evaluation, figures=False,
                   output_dir=run_dir / "report_validation")  # fmt: skip
    summary["raw"] = _scores(raw.cases, held)
    summary["raw_classification"] = {
        k: v for k, v in raw.summary.items() if k.startswith(("auc", "macro", "accuracy"))
    }
    if len(finished) < len(splits):
        summary["note"] = "post-processing is chosen once every fold has run"
        return summary

    labels = sorted(v for v in index.label_names.values() if v != 0)
    search = PostprocessingSearch(
        {c: (lambda c=c: read_case(by_id[c], run_dir / OOF)) for ids in held.values() for c in ids},
        labels=labels,
    )
    everything = search.choose([c for ids in held.values() for c in ids])
    crossfit = {
        k: search.choose([c for j, ids in held.items() if j != k for c in ids]) for k in held
    }
    _write_postprocessed(run_dir, held, crossfit, search)
    post = evaluate(run_dir / POST, index.root, config=evaluation, figures=False,
                    output_dir=run_dir / "report_validation_postprocessed")  # fmt: skip
    summary["postprocessed"] = _scores(post.cases, held)
    summary["postprocessing"] = {
        "chosen_on_every_case": _choice(everything),
        "per_fold_cross_fitted": {str(k): _choice(c) for k, c in crossfit.items()},
    }
    record = {
        "label_weights": list(everything.label_weights),
        "largest_component": everything.largest_component,
        "details": {
            "chosen_on": f"out-of-fold predictions of {summary['cases']} cases",
            "criterion": "mean over foreground labels of the mean per-label Dice",
            "criterion_value": everything.criterion,
            "criterion_plain_argmax": everything.baseline,
        },
    }
    write_text_atomic(run_dir / "postprocessing.json", json.dumps(record, indent=1))
    return summary


def _write_postprocessed(
    run_dir: Path,
    held: dict[int, list[str]],
    choices: dict[int, PostprocessingChoice],
    search: PostprocessingSearch,
) -> None:
    """Each held-out case post-processed with its fold's cross-fitted choice."""
    from multitask_unet.inference import keep_largest_component, weighted_argmax

    target = run_dir / POST
    target.mkdir(parents=True, exist_ok=True)
    for k, ids in held.items():
        choice = choices[k]
        for case_id in ids:
            probabilities, _ = search.cases[case_id]()
            labels = weighted_argmax(probabilities, choice.label_weights)
            if choice.largest_component:
                labels = keep_largest_component(labels)
            source = run_dir / OOF / f"{case_id}.nii.gz"
            write_label_map(target / f"{case_id}.nii.gz", labels, source)
    table = run_dir / OOF / "predictions.csv"
    if table.is_file():
        shutil.copyfile(table, target / "predictions.csv")


def _scores(rows: list[dict[str, Any]], held: dict[int, list[str]]) -> dict[str, Any]:
    """Mean and median of every Dice column over all cases, and each fold's mean."""
    fold_of = {c: k for k, ids in held.items() for c in ids}
    out: dict[str, Any] = {}
    for column in sorted({k for r in rows for k in r if k.startswith("dice_")}):
        values = {r["case_id"]: float(r[column]) for r in rows if _finite(r.get(column))}
        if not values:
            continue
        out[column] = {
            "mean": statistics.fmean(values.values()),
            "median": statistics.median(values.values()),
            "n": len(values),
            "per_fold_mean": {
                str(k): statistics.fmean(v for c, v in values.items() if fold_of.get(c) == k)
                for k in held
                if any(fold_of.get(c) == k for c in values)
            },
        }
    return out


def _finite(value: Any) -> bool:
    try:
        return value is not None and float(value) == float(value)
    except (TypeError, ValueError):
        return False


def _choice(choice: PostprocessingChoice) -> dict[str, Any]:
    return {
        "label_weights": list(choice.label_weights),
        "largest_component": choice.largest_component,
        "criterion": choice.criterion,
        "criterion_plain_argmax": choice.baseline,
    }


def _fold_record(run_dir: Path, k: int) -> dict[str, Any]:
    return json.loads((run_dir / f"fold_{k}" / "fold.json").read_text(encoding="utf-8"))


def read_case(record: CaseRecord, predictions: Path) -> tuple[np.ndarray, np.ndarray]:
    """A held-out case's saved probabilities and its reference label map."""
    path = predictions / f"{record.case_id}.npz"
    if not path.is_file():
        raise DataError(f"{path} is missing; run the fold again (delete its fold.json)")
    with np.load(path) as saved:
        probabilities = saved["probabilities"]
    if record.mask is None:
        raise DataError(f"case {record.case_id} has no label map to score against")
    return probabilities, read_mask(record.mask).array


def write_label_map(path: Path, labels: np.ndarray, like: Path) -> None:
    """Write ``labels`` with the geometry of the prediction ``like``."""
    write_image(path, labels, read_image(like).affine)
