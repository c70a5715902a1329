"""Calibration metrics and the reliability diagram in the evaluation report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from multitask_unet.errors import DataError
from multitask_unet.evaluation import EvaluationConfig, evaluate
from multitask_unet.evaluation.calibration_metrics import calibration_metrics, summarize_calibration
from multitask_unet.evaluation.figures import plot_reliability_diagram

FAST = EvaluationConfig(n_bootstrap=50)


def write_predictions(folder, case_ids, names, probs, raw=None, raw_names=None):
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["case_id"] + [f"prob_{n}" for n in names] + ["predicted"]
    if raw is not None:
        columns += [f"uncalibrated_prob_{n}" for n in (raw_names or names)]
    with (folder / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, case in enumerate(case_ids):
            row = [case, *probs[i], int(np.argmax(probs[i]))]
            writer.writerow(row + ([] if raw is None else list(raw[i])))


def sharpen(probs, power):
    out = probs**power
    return out / out.sum(axis=1, keepdims=True)


@pytest.fixture
def predictions(phantom_dataset, tmp_path):
    rng = np.random.default_rng(0)
    cases = [r for r in phantom_dataset.records if r.label is not None]
    k = len(phantom_dataset.class_names)
    logits = rng.standard_normal((len(cases), k)) + 1.5 * np.eye(k)[[r.label for r in cases]]
    raw = sharpen(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 3.0)
    calibrated = sharpen(raw, 1 / 3.0)
    labels = np.array([r.label for r in cases])
    return phantom_dataset, tmp_path / "pred", [r.case_id for r in cases], labels, calibrated, raw


def test_report_has_calibration_before_and_after(predictions, tmp_path):
    index, pred_dir, case_ids, labels, calibrated, raw = predictions
    write_predictions(pred_dir, case_ids, index.class_names, calibrated, raw)
    out = tmp_path / "report"
    report = evaluate(pred_dir, index.root, output_dir=out, config=FAST)
    summary = json.loads((out / "summary.json").read_text())
    order = np.argsort(case_ids)  # the report lists cases sorted by id
    for probs, suffix in ((calibrated, ""), (raw, "_uncalibrated")):
        expected = calibration_metrics(labels[order], probs[order])
        for name, value in expected.items():
            record = summary[name + suffix]
            assert record["estimate"] == pytest.approx(value), name + suffix
            assert record["low"] <= record["estimate"] <= record["high"]
            assert record["n"] == len(case_ids) and record["n_resamples"] == 50
    assert "15 equal-width bins" in summary["conventions"]["calibration"]
    assert (out / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.uncalibrated is not None


def test_report_without_uncalibrated_columns(predictions, tmp_path):
    index, pred_dir, case_ids, _, calibrated, _ = predictions
    write_predictions(pred_dir, case_ids, index.class_names, calibrated)
    summary = evaluate(pred_dir, index.root, config=FAST, figures=False).summary
    assert "ece" in summary and "brier" in summary and "nll" in summary
    assert not any(key.endswith("_uncalibrated") for key in summary)


def test_mismatched_uncalibrated_columns_are_rejected(predictions):
    index, pred_dir, case_ids, _, calibrated, raw = predictions
    names = list(index.class_names)
    write_predictions(pred_dir, case_ids, names, calibrated, raw[:, :-1], raw_names=names[:-1])
    with pytest.raises(DataError, match="uncalibrated_prob_"):
        evaluate(pred_dir, index.root, config=FAST, figures=False)


def test_summary_intervals_are_paired_and_seeded():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    a = summarize_calibration(labels, probs, uncalibrated=probs, n_resamples=100, seed=3)
    b = summarize_calibration(labels, probs, n_resamples=100, seed=3)
    assert a["ece"] == a["ece_uncalibrated"] == b["ece"]  # same cases, same resamples
    c = summarize_calibration(labels, probs, n_resamples=100, seed=4)
    assert c["ece"]["low"] != a["ece"]["low"]


def test_reliability_diagram_png(tmp_path):
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), 30)
    path = tmp_path / "rel.png"
    plot_reliability_diagram(rng.integers(0, 3, 30), {"a": probs, "b": sharpen(probs, 2)}, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["rel.png"]  # no temporary file left
