"""``multitask-unet calibrate`` and calibrate_checkpoint on a tiny phantom dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.cli import main
from multitask_unet.data.planning import create_plan
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.preprocessing import preprocess_case
from multitask_unet.errors import DataError
from multitask_unet.inference.checkpoint_calibration import (
    calibrate_checkpoint,
    fit_heads,
    read_calibrations,
)
from multitask_unet.inference.sliding_window import sliding_window_predict

HEADS = {"cls": ("panda", {"num_classes": 3}), "cls_ovr": ("ovr", {"num_classes": 3})}
# Several heads and none called "cls": the predictor needs no default head to calibrate them.
OTHER_HEADS = {"subtype": ("panda", {"num_classes": 3}), "subtype_ovr": ("ovr", {"num_classes": 3})}


def make_checkpoint(phantom_dataset, tmp_path, heads):
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", heads=heads).eval()
    train = phantom_dataset.split("train").records
    fingerprint = compute_fingerprint(train, workers=0, progress=False, intensity_samples=10_000)
    plan = create_plan(fingerprint, size_divisor=model.size_divisor)
    path = save_checkpoint(
        tmp_path / "model.pt", model, plan=plan, class_names=phantom_dataset.class_names
    )
    return path, model, plan


@pytest.fixture
def checkpoint(phantom_dataset, tmp_path):
    return make_checkpoint(phantom_dataset, tmp_path, HEADS)


def test_cli_fits_every_head_on_the_predictor_logits(phantom_dataset, tmp_path, capsys):
    path, model, plan = make_checkpoint(phantom_dataset, tmp_path, OTHER_HEADS)
    out = tmp_path / "calibrated.pt"
    args = ["calibrate", "--checkpoint", str(path), str(phantom_dataset.root), "-o", str(out)]
    code = main([*args, "--mirror-axes", "", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "calibrated on 12 labelled case(s)" in printed and "temperature" in printed
    assert load_checkpoint(path).calibration is None  # -o leaves the input as it was
    cals = read_calibrations(load_checkpoint(out))
    # Independent path: preprocess each case and run the sliding windows directly.
    records = [r for r in phantom_dataset.records if r.label is not None]
    logits = {name: [] for name in OTHER_HEADS}
    for record in records:
        image = preprocess_case(dataclasses.replace(record, mask=None), plan).image
        result = sliding_window_predict(
            model, torch.from_numpy(image)[None], window_size=plan.patch_size
        )
        for name in OTHER_HEADS:
            logits[name].append(result[name][0].double())
    labels = torch.tensor([r.label for r in records])
    expected = fit_heads({k: torch.stack(v) for k, v in logits.items()}, labels, model=model)
    for name in OTHER_HEADS:
        assert cals[name].method == expected[name].method
        np.testing.assert_allclose(cals[name].scale, expected[name].scale, rtol=1e-4)
        np.testing.assert_allclose(cals[name].bias, expected[name].bias, rtol=1e-4, atol=1e-6)


def test_cases_and_labels_stay_aligned(checkpoint, phantom_dataset):
    path, _, _ = checkpoint
    rng = np.random.default_rng(0)
    noise = {r.case_id: rng.standard_normal(3) for r in phantom_dataset.records}

    def case_logits(record):
        z = 3.0 * (np.eye(3)[record.label] + noise[record.case_id])
        return {"cls": torch.from_numpy(z), "cls_ovr": torch.from_numpy(z - 1)}

    run = calibrate_checkpoint(path, phantom_dataset, case_logits=case_logits)  # an index
    records = [phantom_dataset[c] for c in run.case_ids]
    z = np.stack([case_logits(r)["cls"].numpy() for r in records])
    labels = np.array([r.label for r in records])
    model = load_checkpoint(path).build_model()
    expected = fit_heads({"cls": z, "cls_ovr": z - 1}, labels, model=model)
    assert run.calibrations == expected
    assert read_calibrations(load_checkpoint(path)) == expected  # written in place
    assert run.metrics["cls"]["calibrated"]["nll"] <= run.metrics["cls"]["uncalibrated"]["nll"]
    assert run.reordered["cls"] == 0  # a temperature never reorders
    p = expected["cls_ovr"].probabilities(torch.from_numpy(z - 1)).numpy()
    assert run.reordered["cls_ovr"] == int(np.sum(p.argmax(1) != (z - 1).argmax(1)))


def test_split_without_labelled_cases_fails_cleanly(checkpoint, phantom_dataset, capsys):
    path, _, _ = checkpoint
    args = ["calibrate", "--checkpoint", str(path), str(phantom_dataset.root), "--split", "nope"]
    assert main(args) == 2
    assert "no case with a subtype label" in capsys.readouterr().err
    with pytest.raises(DataError, match="splits: "):
        calibrate_checkpoint(path, phantom_dataset.root, split="nope", case_logits=dict)


def test_predictor_applies_the_stored_calibration(checkpoint, phantom_dataset):
    from multitask_unet.inference import Predictor

    path, _, _ = checkpoint
    rng = np.random.default_rng(1)

    def case_logits(record):
        z = 4.0 * (np.eye(3)[record.label] + rng.standard_normal(3))
        return {"cls": torch.from_numpy(z), "cls_ovr": torch.from_numpy(z)}

    run = calibrate_checkpoint(path, phantom_dataset.root, case_logits=case_logits)
    predictor = Predictor.from_checkpoint(path, mirror_axes=())
    assert predictor.calibration == run.calibrations["cls"]
    raw = Predictor.from_checkpoint(path, mirror_axes=(), calibrated=False)
    assert raw.calibration is None
    record = phantom_dataset.records[0]
    calibrated, plain = predictor.predict_case(record), raw.predict_case(record)
    z = torch.from_numpy(plain.logits["cls"])[None]
    np.testing.assert_allclose(
        calibrated.probabilities, run.calibrations["cls"].probabilities(z)[0].numpy(), rtol=1e-6
    )
    assert calibrated.predicted == plain.predicted == int(z.argmax())
