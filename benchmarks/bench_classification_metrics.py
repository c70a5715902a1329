"""The classification metrics of a report's bootstrap: ours (numpy) against scikit-learn's.

An evaluation report computes the one-vs-rest AUC of every class, macro F1, balanced accuracy and
the log loss once per bootstrap resample (1000 by default). This benchmark times that loop with
``multitask_unet.evaluation`` (numpy) and with the same metrics from ``sklearn.metrics``
(``roc_auc_score`` per class, ``f1_score(average="macro", zero_division=0)``,
``balanced_accuracy_score``, ``log_loss``) on the same resamples, and checks that both give the
same numbers (the largest absolute difference is reported; the tests compare them too).

    python -m benchmarks.bench_classification_metrics --cases 72 --classes 3 --resamples 1000
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import environment, save


def _ours(y: np.ndarray, p: np.ndarray) -> list[float]:
    from multitask_unet.evaluation.calibration_metrics import negative_log_likelihood
    from multitask_unet.evaluation.classification import (
        balanced_accuracy,
        macro_f1,
        roc_auc_ovr,
    )

    pred = p.argmax(axis=1)
    auc = roc_auc_ovr(y, p).tolist()
    return [*auc, macro_f1(y, pred), balanced_accuracy(y, pred), negative_log_likelihood(y, p)]


def _sklearn(y: np.ndarray, p: np.ndarray) -> list[float]:
    from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss, roc_auc_score

    k = p.shape[1]
    auc = [
        float(roc_auc_score(y == c, p[:, c])) if 0 < (y == c).sum() < y.size else float("nan")
        for c in range(k)
    ]
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        f1 = float(f1_score(y, pred, average="macro", zero_division=0))
        balanced = float(balanced_accuracy_score(y, pred))
    return [*auc, f1, balanced, float(log_loss(y, p, labels=list(range(k))))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=72, help="cases (the study's test set: 72)")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    y = rng.integers(0, args.classes, args.cases)
    logits = rng.normal(size=(args.cases, args.classes)) + 1.5 * np.eye(args.classes)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    resamples = rng.integers(0, args.cases, (args.resamples, args.cases))

    times: dict[str, list[float]] = {"ours": [], "sklearn": []}
    results: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name, fn in sorted({"ours": _ours, "sklearn": _sklearn}.items(), reverse=r % 2 == 1):
            start = time.perf_counter()
            values = [fn(y[idx], p[idx]) for idx in resamples]
            times[name].append(time.perf_counter() - start)
            results[name] = np.asarray(values, dtype=np.float64)
    both = np.isfinite(results["ours"]) & np.isfinite(results["sklearn"])
    same_nan = bool((np.isnan(results["ours"]) == np.isnan(results["sklearn"])).all())
    difference = float(np.abs(results["ours"] - results["sklearn"])[both].max())
    ours_s, sklearn_s = statistics.median(times["ours"]), statistics.median(times["sklearn"])
    result = {
        "benchmark": "classification metrics of a bootstrap",
        "cases": args.cases,
        "classes": args.classes,
        "resamples": args.resamples,
        "seconds": {"ours_numpy": ours_s, "sklearn": sklearn_s},
        "median_ratio_sklearn_to_ours": sklearn_s / ours_s,
        "largest_absolute_difference": difference,
        "undefined_in_the_same_resamples": same_nan,
        "environment": environment("cpu"),
    }
    print(
        f"{args.resamples} resamples of {args.cases} cases: ours {ours_s:.2f} s, scikit-learn "
        f"{sklearn_s:.2f} s ({sklearn_s / ours_s:.1f}x); largest difference {difference:.2e}"
    )
    print("saved", save("classification_metrics", result, args.output))
    return result


if __name__ == "__main__":
    main()
