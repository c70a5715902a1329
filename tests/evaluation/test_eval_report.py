"""End to end: prediction folder + reference dataset -> cases.csv, summary.json, figures."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re

import numpy as np
import pytest
from sklearn import metrics as skm

from multitask_unet._atomic import write_text_atomic
from multitask_unet.cli import evaluate as evaluate_cli
from multitask_unet.errors import DataError, RegistryError, ShapeError
from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, evaluate, summarize

HEADLINE = (
    "dice_whole_pancreas",
    "dice_lesion",
    "nsd_whole_pancreas",
    "auc_ovr_macro",
    "macro_f1",
    "balanced_accuracy",
)
FAST = EvaluationConfig(regions=PANCREAS_REGIONS, n_bootstrap=200)  # the study's regions


def _f1(pred, ref):
    return skm.f1_score(ref.ravel(), pred.ravel()) if ref.any() or pred.any() else 1.0


def test_report_files_and_values(study, tmp_path):
    out = tmp_path / "report"
    report = evaluate(
        study.pred_dir, study.ref_root, output_dir=out, split="validation", config=FAST
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "cases.csv",
        "confusion_matrix.png",
        "dice_distribution.png",
        "dice_vs_volume.png",
        "hd95_distribution.png",
        "nsd_distribution.png",
        "overlays",
        "reliability_diagram.png",
        "roc_curves.png",
        "summary.json",
    ]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == sorted([*(f"{c}.png" for c in study.refs), "contact_sheet.png"])
    for png in [*out.glob("*.png"), *(out / "overlays").glob("*.png")]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    for key in HEADLINE:
        record = summary[key]
        assert record["low"] <= record["estimate"] <= record["high"], key
        assert record["confidence"] == 0.95 and record["n_resamples"] == 200
    cases = sorted(study.refs)
    # Segmentation: the mean of independently computed per-case Dice values.
    whole = [_f1(np.isin(study.preds[c], [1, 2]), np.isin(study.refs[c], [1, 2])) for c in cases]
    lesion = [_f1(study.preds[c] == 2, study.refs[c] == 2) for c in cases]
    assert summary["dice_whole_pancreas"]["estimate"] == pytest.approx(np.mean(whole))
    assert summary["dice_lesion"]["estimate"] == pytest.approx(np.mean(lesion))
    assert summary["dice_lesion"]["n"] == len(cases)
    # Classification: scikit-learn on the same probabilities.
    y = np.array([study.labels[c] for c in cases])
    p = np.stack([study.probs[c] for c in cases])
    auc = skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert summary["auc_ovr_macro"]["estimate"] == pytest.approx(auc)
    assert summary["macro_f1"]["estimate"] == pytest.approx(
        skm.f1_score(y, p.argmax(1), average="macro", zero_division=0)
    )
    assert summary["confusion_matrix"]["counts"] == skm.confusion_matrix(y, p.argmax(1)).tolist()
    assert summary["cases"] == {
        "evaluated": 9,
        "segmentation": 9,
        "classification": 9,
        "split": "validation",
    }
    assert "Metrics Reloaded" in summary["conventions"]["empty_reference"]
    assert report.summary["dice_lesion"] == summary["dice_lesion"]


def test_cases_csv_rows(study, tmp_path):
    out = tmp_path / "report"
    evaluate(study.pred_dir, study.ref_root, output_dir=out, config=FAST, figures=False)
    assert not list(out.glob("*.png"))
    with (out / "cases.csv").open() as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(study.refs)  # split=None: exactly the predicted cases
    row = rows["case_0_00"]  # no lesion in the reference
    assert row["label"] == "0" and row["split"] == "validation"
    lesion_predicted = bool((study.preds["case_0_00"] == 2).any())
    assert float(row["dice_lesion"]) == (0.0 if lesion_predicted else 1.0)
    assert row["hd95_lesion"] == ("nan" if lesion_predicted else "0.0")
    assert float(row["prob_subtype1"]) == pytest.approx(study.probs["case_0_00"][1])
    assert float(row["ref_volume_ml_lesion"]) == 0.0


def test_hd95_undefined_cases_are_counted_not_averaged(study, tmp_path):
    report = evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False)
    values = np.array([row["hd95_lesion"] for row in report.cases])
    record = report.summary["hd95_lesion"]
    assert record["n_undefined"] == int(np.isnan(values).sum())
    assert record["n"] == int((~np.isnan(values)).sum())
    assert record["estimate"] == pytest.approx(np.nanmean(values))


def test_same_seed_same_summary(study):
    a = evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False).summary
    b = evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False).summary
    c = evaluate(study.pred_dir, study.ref_root, config=FAST.replace(seed=1), figures=False).summary
    assert a["dice_whole_pancreas"] == b["dice_whole_pancreas"]
    assert a["dice_whole_pancreas"]["low"] != c["dice_whole_pancreas"]["low"]


def test_segmentation_only_and_classification_only(study, tmp_path, predictions_writer):
    (study.pred_dir / "predictions.csv").unlink()
    seg = evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False).summary
    assert "dice_lesion" in seg and "auc_ovr_macro" not in seg
    cls_dir = tmp_path / "cls"
    cls_dir.mkdir()
    predictions_writer(cls_dir / "predictions.csv", study.probs)
    cls = evaluate(cls_dir, study.ref_root, config=FAST, figures=False).summary
    assert "auc_ovr_macro" in cls and "dice_lesion" not in cls


@pytest.mark.parametrize(
    ("damage", "error", "where", "problem", "fix"),
    [
        ("missing_case", DataError, "PRED", "lacks predictions", "predict them into"),
        ("unknown_case", DataError, "REF", "not in the reference", "check --pred and --ref"),
        ("bad_shape", ShapeError, "PRED/case_1_01.nii.gz", "has shape",
         "write predictions on the grid of the input image"),
        ("bad_affine", DataError, "PRED/case_1_01.nii.gz", "affines",
         "with the input image's geometry"),
        ("bad_csv", DataError, "PRED/predictions.csv line", "must be numbers",
         "predict the case again"),
        ("bad_split", DataError, "REF", "split 'nope' not found", "with --split"),
        ("swapped_columns", DataError, "PRED/predictions.csv", "is class 0 of the reference",
         "order the prob_ columns by class"),
        ("fractional_class", DataError, "PRED/predictions.csv line 2", "'predicted' an integer",
         "predict the case again"),
        ("duplicate_row", DataError, "PRED/predictions.csv", "more than once",
         "keep one row per case"),
    ],
)  # fmt: skip
def test_errors_name_file_and_fix(study, nifti_writer, damage, error, where, problem, fix):
    split = "validation"
    if damage == "missing_case":
        (study.pred_dir / "case_1_01.nii.gz").unlink()
    elif damage == "unknown_case":
        nifti_writer(study.pred_dir / "stranger.nii.gz", np.zeros((14, 12, 8), np.uint8))
        split = None
    elif damage == "bad_shape":
        nifti_writer(study.pred_dir / "case_1_01.nii.gz", np.zeros((14, 12, 9), np.uint8))
    elif damage == "bad_affine":
        nifti_writer(study.pred_dir / "case_1_01.nii.gz", study.preds["case_1_01"], (1, 1, 1))
    elif damage == "bad_csv":
        path = study.pred_dir / "predictions.csv"
        path.write_text(path.read_text().replace("case_2_02,", "case_2_02,abc,", 1))
    elif damage == "swapped_columns":
        path = study.pred_dir / "predictions.csv"
        text = path.read_text()
        path.write_text(text.replace("prob_subtype0,prob_subtype1", "prob_subtype1,prob_subtype0"))
    elif damage == "fractional_class":
        path = study.pred_dir / "predictions.csv"
        lines = path.read_text().splitlines()
        lines[1] = lines[1].rsplit(",", 1)[0] + ",1.5"
        path.write_text("\n".join(lines) + "\n")
    elif damage == "duplicate_row":
        path = study.pred_dir / "predictions.csv"
        path.write_text(path.read_text() + path.read_text().splitlines()[1] + "\n")
    else:
        split = "nope"
    with pytest.raises(error) as raised:
        evaluate(study.pred_dir, study.ref_root, split=split, config=FAST, figures=False)
    message = str(raised.value)
    where = where.replace("PRED", str(study.pred_dir)).replace("REF", str(study.ref_root))
    assert where in message and problem in message and fix in message, message


def test_layout_is_passed_to_the_reader(study):
    report = evaluate(study.pred_dir, study.ref_root, layout="study", config=FAST, figures=False)
    assert report.summary["cases"]["evaluated"] == 9
    with pytest.raises(RegistryError, match="nnunet"):
        evaluate(study.pred_dir, study.ref_root, layout="nnunett", config=FAST, figures=False)


def test_float_stored_reference_labels_are_rounded_within_tolerance(study, nifti_writer):
    ref = study.refs["case_1_00"].astype(np.float32)
    ref[ref == 1] = 1.0000153  # as in the real dataset
    path = study.ref_root / "validation" / "subtype1" / "case_1_00.nii.gz"
    nifti_writer(path, ref)
    row = next(
        r
        for r in evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False).cases
        if r["case_id"] == "case_1_00"
    )
    assert row["dice_label_1"] == pytest.approx(
        _f1(study.preds["case_1_00"] == 1, study.refs["case_1_00"] == 1)
    )
    ref[ref == 2] = 2.4
    nifti_writer(path, ref)
    with pytest.raises(DataError, match="non-integer"):
        evaluate(study.pred_dir, study.ref_root, config=FAST, figures=False)


def test_cli(study, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_parser(parser.add_subparsers())
    out = tmp_path / "cli_report"
    config_file = tmp_path / "eval.yaml"
    EvaluationConfig(seed=11, labels=(1,), n_bootstrap=10).save(config_file)
    args = parser.parse_args(
        [
            "evaluate",
            "--pred", str(study.pred_dir),
            "--ref", str(study.ref_root),
            "-o", str(out),
            "--split", "validation",
            "--region", "organ=1",
            "--region", "lesion=2",
            "--nsd-tolerance", "1.0",
            "--n-bootstrap", "50",
            "--no-figures",
            "--config", str(config_file),
        ]
    )  # fmt: skip
    assert evaluate_cli.run(args) == 0
    text = capsys.readouterr().out
    assert "evaluated 9 cases" in text and "auc_ovr_macro" in text
    assert re.search(r"^  dice_organ +\d\.\d{4} \[95% CI \d\.\d{4}, \d\.\d{4}\]$", text, re.M)
    summary = json.loads((out / "summary.json").read_text())
    assert "dice_organ" in summary and "dice_whole_pancreas" not in summary
    assert summary["config"]["nsd_tolerance_mm"] == 1.0
    assert summary["config"]["n_bootstrap"] == 50  # flags override the file
    assert summary["config"]["seed"] == 11 and "dice_label_2" not in summary


def test_summarize_in_memory_without_files():
    rows = [
        {"dice_lesion": 0.5, "hd95_lesion": float("nan")},
        {"dice_lesion": 1.0, "hd95_lesion": 2.0},
    ]
    summary = summarize(
        rows, y_true=np.array([0, 1, 1]), scores=np.eye(3)[[0, 1, 0], :2], config=FAST
    )
    assert summary["dice_lesion"]["estimate"] == 0.75
    assert summary["hd95_lesion"]["n_undefined"] == 1
    assert summary["accuracy"]["estimate"] == pytest.approx(2 / 3)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_text_atomic(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


def test_phantom_dataset_predicted_perfectly(phantom_dataset, tmp_path, predictions_writer):
    """The data package's phantom dataset as reference; predictions equal to its masks."""
    from multitask_unet.data.io import read_mask, write_image

    pred_dir = tmp_path / "pred"
    probs = {}
    for record in phantom_dataset.split("validation"):
        mask = read_mask(record.mask)
        write_image(pred_dir / f"{record.case_id}.nii.gz", mask.array.astype(np.uint8), mask.affine)
        probs[record.case_id] = np.eye(3)[record.label] * 0.8 + 0.2 / 3
    predictions_writer(pred_dir / "predictions.csv", probs)
    report = evaluate(
        pred_dir, phantom_dataset.root, split="validation", config=FAST, figures=False
    )
    summary = report.summary
    assert summary["cases"]["segmentation"] == len(probs) == 3
    for key in ("dice_whole_pancreas", "dice_lesion", "nsd_whole_pancreas", "auc_ovr_macro"):
        assert summary[key]["estimate"] == 1.0, key
    assert summary["hd95_whole_pancreas"]["estimate"] == 0.0


def test_cli_main_dispatch_and_error_exit(study, tmp_path, monkeypatch, capsys):
    import multitask_unet.cli as cli

    monkeypatch.setattr(cli, "_COMMANDS", ("evaluate",))
    base = ["evaluate", "--pred", str(study.pred_dir), "--ref", str(study.ref_root)]
    assert cli.main([*base, "-o", str(tmp_path / "r"), "--n-bootstrap", "20", "--no-figures"]) == 0
    assert (tmp_path / "r" / "summary.json").is_file()
    (study.pred_dir / "case_0_01.nii.gz").unlink()
    assert cli.main([*base, "-o", str(tmp_path / "r2"), "--split", "validation"]) == 2
    assert "lacks predictions" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()  # nothing written on error


def test_missing_matplotlib_gives_a_clear_error_before_any_work(study, tmp_path, monkeypatch):
    import sys

    from multitask_unet.errors import MultitaskUNetError

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(MultitaskUNetError, match=r"pip install matplotlib.*--no-figures"):
        evaluate(study.pred_dir, study.ref_root, output_dir=tmp_path / "r", config=FAST)
    assert not (tmp_path / "r").exists()
    report = evaluate(
        study.pred_dir, study.ref_root, output_dir=tmp_path / "r", config=FAST, figures=False
    )
    assert report.summary["cases"]["evaluated"] == 9


def test_a_split_folder_as_reference_gives_its_classes(study):
    report = evaluate(study.pred_dir, study.ref_root / "validation", config=FAST, figures=False)
    cases = report.summary["cases"]
    assert (cases["segmentation"], cases["classification"]) == (9, 9)
    assert "why_no_classification" not in cases


def test_a_reference_without_classes_says_why(study, tmp_path):
    import shutil

    root = tmp_path / "Dataset001"
    masks = [m for m in (study.ref_root / "validation").rglob("case_*.nii.gz")
             if not m.name.endswith("_0000.nii.gz")]  # fmt: skip
    assert len(masks) == 9
    for mask in masks:
        for name, folder in ((mask.name, "labelsTr"),
                             (mask.name.replace(".nii.gz", "_0000.nii.gz"), "imagesTr")):  # fmt: skip
            (root / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(mask.parent / name, root / folder / name)
    dataset = {"channel_names": {"0": "CT"}, "numTraining": 9, "file_ending": ".nii.gz",
               "labels": {"background": 0, "pancreas": 1, "lesion": 2}}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(dataset))
    cases = evaluate(study.pred_dir, root, config=FAST, figures=False).summary["cases"]
    assert (cases["segmentation"], cases["classification"]) == (9, 0)
    assert f"under {root} has a class" in cases["why_no_classification"]


def test_by_default_the_regions_are_the_datasets_labels_and_their_union(study):
    report = evaluate(study.pred_dir, study.ref_root, config=EvaluationConfig(n_bootstrap=20),
                      figures=False)  # fmt: skip
    regions = [r["key"] for r in report.summary["config"]["regions"]]
    assert regions == ["label1", "label2", "foreground"]  # no dataset.json: the masks' values
    row = next(r for r in report.cases if r["case_id"] == "case_1_01")
    assert row["dice_foreground"] == pytest.approx(
        _f1(np.isin(study.preds["case_1_01"], [1, 2]), np.isin(study.refs["case_1_01"], [1, 2]))
    )
