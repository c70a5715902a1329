"""Calibrate, predict, evaluate: predictions.csv carries both probabilities, the report both."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import save_checkpoint
from multitask_unet.data.planning import create_plan
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.evaluation import EvaluationConfig, evaluate
from multitask_unet.inference import Predictor
from multitask_unet.inference.checkpoint_calibration import calibrate_checkpoint


@pytest.fixture
def calibrated(phantom_dataset, tmp_path):
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})}).eval()
    fingerprint = compute_fingerprint(
        phantom_dataset.split("train").records,
        workers=0,
        progress=False,
        intensity_samples=10_000,
    )
    plan = create_plan(fingerprint, size_divisor=model.size_divisor)
    path = save_checkpoint(
        tmp_path / "model.pt", model, plan=plan, class_names=phantom_dataset.class_names
    )
    rng = np.random.default_rng(0)

    def case_logits(record):  # overconfident synthetic logits: the fitted T is well above 1
        return {"cls": torch.from_numpy(5.0 * (np.eye(3)[record.label] + rng.normal(size=3)))}

    run = calibrate_checkpoint(path, phantom_dataset.root, case_logits=case_logits)
    return path, run


def read_rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predictions_csv_has_calibrated_and_uncalibrated_probabilities(
    calibrated, phantom_dataset, tmp_path
):
    path, run = calibrated
    records = phantom_dataset.split("test").records
    out = tmp_path / "pred"
    Predictor.from_checkpoint(path, mirror_axes=()).predict(records, out, progress=False)
    rows = read_rows(out / "predictions.csv")
    names = phantom_dataset.class_names
    raw = Predictor.from_checkpoint(path, mirror_axes=(), calibrated=False)
    cal = run.calibrations["cls"]
    for row, record in zip(rows, sorted(records, key=lambda r: r.case_id)):
        logits = torch.from_numpy(raw.predict_case(record).logits["cls"])[None]
        written = np.array([float(row[f"prob_{n}"]) for n in names])
        before = np.array([float(row[f"uncalibrated_prob_{n}"]) for n in names])
        np.testing.assert_allclose(written, cal.probabilities(logits)[0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(before, raw.model.heads["cls"].probabilities(logits)[0])
        assert int(row["predicted"]) == int(logits.argmax())
    # Without calibration the file has the plain columns only.
    raw.predict(records, tmp_path / "plain", progress=False)
    assert not any(
        "uncalibrated" in c for c in read_rows(tmp_path / "plain" / "predictions.csv")[0]
    )


def test_evaluation_reports_before_and_after(calibrated, phantom_dataset, tmp_path):
    path, _ = calibrated
    records = [r for r in phantom_dataset.records if r.split != "train"]
    out = tmp_path / "pred"
    Predictor.from_checkpoint(path, mirror_axes=()).predict(records, out, progress=False)
    report_dir = tmp_path / "report"
    evaluate(
        out, phantom_dataset.root, output_dir=report_dir, config=EvaluationConfig(n_bootstrap=20)
    )
    summary = json.loads((report_dir / "summary.json").read_text())
    for name in ("ece", "brier", "nll"):
        assert summary[name]["estimate"] is not None
        assert summary[name + "_uncalibrated"]["estimate"] is not None
    # An untrained network is nearly uniform; the fitted temperature (> 1) makes it more so.
    assert summary["nll"]["estimate"] != summary["nll_uncalibrated"]["estimate"]
    assert (report_dir / "reliability_diagram.png").is_file()
