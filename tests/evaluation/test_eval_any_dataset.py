"""The evaluation speaks the dataset's labels: one label, four labels, with and without classes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.data.io import spacing_affine, write_image
from multitask_unet.evaluation import EvaluationConfig, evaluate

FAST = EvaluationConfig(n_bootstrap=20)


def _nnunet_dataset(root: Path, names: dict[str, int], *, cases: int = 4, classes: int = 0):
    """An nnU-Net raw dataset with one blob per foreground label, and predictions of it."""
    rng = np.random.default_rng(0)
    affine = spacing_affine((1.0, 1.0, 2.0))
    pred_dir = root.parent / "pred"
    rows = []
    for i in range(cases):
        ref = np.zeros((16, 16, 8), np.uint8)
        for value in sorted(v for v in names.values() if v > 0):
            x = 1 + 3 * (value - 1)
            ref[x : x + 3, 2 + i : 10 + i, 2:6] = value
        pred = ref.copy()
        pred[rng.random(ref.shape) < 0.03] = 0
        write_image(root / "imagesTr" / f"c{i}_0000.nii.gz", ref.astype(np.int16) * 40, affine)
        write_image(root / "labelsTr" / f"c{i}.nii.gz", ref, affine)
        write_image(pred_dir / f"c{i}.nii.gz", pred, affine)
        rows.append((f"c{i}", i % classes if classes else None))
    dataset = {"channel_names": {"0": "CT"}, "labels": names, "numTraining": cases,
               "file_ending": ".nii.gz"}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(dataset))
    if classes:
        with open(root / "cases.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([("case_id", "label"), *rows])
        with open(pred_dir / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", *(f"prob_subtype{k}" for k in range(classes)), "predicted"])
            for case, label in rows:
                p = np.full(classes, 0.2 / (classes - 1))
                p[label] = 0.8
                writer.writerow([case, *map(repr, p.tolist()), label])
    return root, pred_dir


def test_one_label_is_one_region_and_nothing_is_called_a_lesion(tmp_path: Path) -> None:
    root, pred = _nnunet_dataset(tmp_path / "Dataset001", {"background": 0, "liver": 1})
    report = evaluate(pred, root, config=FAST, figures=False)
    dice = {k for k in report.summary if k.startswith("dice_")}
    assert dice == {"dice_liver"}  # the region is the label: no dice_label_1 beside it
    assert 0.9 < report.summary["dice_liver"]["estimate"] < 1.0
    assert report.summary["cases"]["classification"] == 0  # segmentation only: no classes


def test_four_labels_and_two_classes_are_all_scored(tmp_path: Path) -> None:
    names = {"background": 0, "kidney": 1, "cyst": 2, "tumour": 3, "vessel": 4}
    root, pred = _nnunet_dataset(tmp_path / "Dataset002", names, classes=2)
    report = evaluate(pred, root, config=FAST, figures=False)
    regions = [r["key"] for r in report.summary["config"]["regions"]]
    assert regions == ["kidney", "cyst", "tumour", "vessel", "foreground"]
    assert {f"dice_{k}" for k in ("kidney", "cyst", "tumour", "vessel")} <= set(report.summary)
    assert not [k for k in report.summary if k.startswith("dice_label_")]
    assert report.summary["config"]["labels"] == []
    assert report.summary["cases"]["classification"] == 4
    assert report.summary["auc_ovr_macro"]["estimate"] == 1.0


def test_a_dataset_without_foreground_labels_asks_for_them(tmp_path: Path) -> None:
    from multitask_unet.errors import ConfigError

    root, pred = _nnunet_dataset(tmp_path / "Dataset003", {"background": 0, "organ": 1})
    dataset = json.loads((root / "dataset.json").read_text())
    dataset["labels"] = {"background": 0}
    (root / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(ConfigError, match=r"declares no foreground label.*--region"):
        evaluate(pred, root, config=FAST, figures=False)


def _as_manifest(root: Path, *, class_names: list[str] | None = None) -> Path:
    """The same cases listed in a manifest without dataset.json (or with only class names)."""
    labels = {}
    if (root / "cases.csv").is_file():
        with open(root / "cases.csv", newline="") as handle:
            labels = {row["case_id"]: row["label"] for row in csv.DictReader(handle)}
    (root / "dataset.json").unlink()
    if class_names is not None:
        (root / "dataset.json").write_text(json.dumps({"class_names": class_names}))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "mask", "label"])
        for image in sorted((root / "imagesTr").glob("*_0000.nii.gz")):
            case = image.name.removesuffix("_0000.nii.gz")
            writer.writerow([case, f"imagesTr/{image.name}", f"labelsTr/{case}.nii.gz",
                             labels.get(case, "")])  # fmt: skip
    return manifest


def test_undeclared_labels_are_the_values_in_the_reference_masks(tmp_path: Path) -> None:
    names = {"background": 0, "a": 1, "b": 2, "c": 3}
    root, pred = _nnunet_dataset(tmp_path / "Dataset004", names)
    report = evaluate(pred, _as_manifest(root), config=FAST, figures=False)
    regions = [r["key"] for r in report.summary["config"]["regions"]]
    assert regions == ["label1", "label2", "label3", "foreground"]
    assert 0.9 < report.summary["dice_label3"]["estimate"] < 1.0


def test_class_names_come_from_dataset_json(tmp_path: Path) -> None:
    from multitask_unet.data.readers import read_dataset

    names = {"background": 0, "organ": 1}
    root, _ = _nnunet_dataset(tmp_path / "Dataset005", names, classes=2)
    index = read_dataset(_as_manifest(root, class_names=["benign", "malignant"]))
    assert index.class_names == ("benign", "malignant")
    assert not index.labels_declared and index.label_names == {}
    (root / "dataset.json").write_text(json.dumps({"class_names": ["benign"]}))
    index = read_dataset(root / "manifest.csv")
    assert index.class_names == ("class0", "class1")  # the list is too short: reported
    assert any('"class_names" names 1 classes' in i.message for i in index.issues)


def _add_false_positive(pred: Path, value: int) -> None:
    """A blob of ``value`` in the first prediction, where no reference has that label."""
    from multitask_unet.data.io import read_mask

    volume = read_mask(pred / "c0.nii.gz")
    array = volume.array.copy()
    array[12:15, 12:15, 5:7] = value
    write_image(pred / "c0.nii.gz", array.astype(np.uint8), volume.affine)


def test_a_label_only_predicted_is_scored_when_the_labels_are_undeclared(tmp_path: Path) -> None:
    root, pred = _nnunet_dataset(tmp_path / "Dataset005", {"background": 0, "a": 1})
    _add_false_positive(pred, 3)
    report = evaluate(pred, _as_manifest(root), config=FAST, figures=False)
    assert [r["key"] for r in report.summary["config"]["regions"]][:2] == ["label1", "label3"]
    by_case = {row["case_id"]: row for row in report.cases}
    assert by_case["c0"]["dice_label3"] == 0.0 and by_case["c1"]["dice_label3"] == 1.0


def test_a_predicted_value_the_dataset_does_not_declare_is_refused(tmp_path: Path) -> None:
    from multitask_unet.errors import DataError

    root, pred = _nnunet_dataset(tmp_path / "Dataset006", {"background": 0, "a": 1})
    _add_false_positive(pred, 3)
    with pytest.raises(DataError, match=r"c0\.nii\.gz holds label value\(s\) \[3\] that the ref"):
        evaluate(pred, root, config=FAST, figures=False)
