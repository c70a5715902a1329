"""Validation: every problem reported in one pass, each naming its file and fix; the CLI's exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from _defects import (
    CASE_DEFECTS,
    DEFECTS,
    empty_split,
    first_case,
    missing_image,
    missing_mask,
    nearly_integer_labels,
    non_integer_labels,
    spacing_mismatch,
)
from _nnunet_files import write_dataset_json
from multitask_unet.cli import validate as validate_cli
from multitask_unet.data.io import read_image, spacing_affine, write_image
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.validation import validate_dataset
from multitask_unet.data.validation_report import ValidationReport


def test_clean_phantoms_validate_without_issues(phantom_dataset: DatasetIndex):
    report = validate_dataset(phantom_dataset.root)
    assert report.ok and report.issues == (), str(report)
    assert report.n_cases == 12 and report.n_files == 24


@pytest.mark.parametrize(
    ("breaker", "severity", "message"), DEFECTS, ids=[d[0].__name__ for d in DEFECTS]
)
def test_each_problem_is_reported_with_its_file_and_fix(
    phantom_dataset: DatasetIndex, breaker, severity: str, message: str
):
    path = breaker(phantom_dataset)
    report = validate_dataset(phantom_dataset.root, workers=2)
    found = [i for i in report.issues if message in i.message]
    assert found, f"expected {message!r} in:\n{report}"
    issue = found[0]
    assert issue.severity == severity
    assert issue.file == path
    assert issue.fix and str(path) in str(issue)
    assert report.ok == (severity == "warning")


def test_many_defects_are_all_reported_in_one_pass_and_train_stops_before_training(
    tmp_path: Path, capsys
):
    """Every defect of one case, twice over, each in a case of its own, in one dataset."""
    from multitask_unet.cli import main
    from multitask_unet.data.phantoms import write_phantom_dataset

    kinds = len(CASE_DEFECTS)
    index = write_phantom_dataset(
        tmp_path / "data", n_train=2 * kinds + 4, n_validation=3, n_test=0, shape=(16, 16, 12),
        spacing=(2.0, 2.0, 3.0), class_counts=(2 * kinds, 1, 1), seed=0,
    )  # fmt: skip
    victims = [r for r in index if r.split == "train" and r.label == 0][: 2 * kinds]
    assert len(victims) == 2 * kinds
    expected = [
        (breaker(index, victim), severity, words)
        for victim, (breaker, severity, words) in zip(victims, CASE_DEFECTS * 2, strict=True)
    ]
    assert len({path for path, _, _ in expected}) == len(expected) >= 30
    report = validate_dataset(index.root, workers=2)
    missed = [
        (path.name, words)
        for path, severity, words in expected
        if not any(i.file == path and i.severity == severity and words in i.message
                   for i in report.issues)
    ]  # fmt: skip
    assert not missed, f"not reported: {missed}\n{report}"

    run = tmp_path / "run"
    assert main(["train", str(index.root), "-o", str(run), "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert all(str(path) in err for path, severity, _ in expected if severity == "error")
    assert not (run / "checkpoints").exists() and not (run / "plan.json").exists()


def test_all_problems_are_reported_in_one_pass(phantom_dataset: DatasetIndex):
    expected = [missing_mask(phantom_dataset), undeclared_label_in(phantom_dataset, 1)]
    expected.append(empty_split(phantom_dataset))
    report = validate_dataset(phantom_dataset.root)
    assert {i.file for i in report.errors} == set(expected)


def undeclared_label_in(index: DatasetIndex, label: int) -> Path:
    path = first_case(index, label=label).mask
    array = read_image(path).array.copy()
    array[0, 0, 0] = 9
    vol = read_image(path)
    return write_image(path, array, vol.affine)


def test_tolerances_are_parameters(phantom_dataset: DatasetIndex):
    non_integer_labels(phantom_dataset)
    path = spacing_mismatch(phantom_dataset)
    strict = validate_dataset(phantom_dataset.root)
    lenient = validate_dataset(phantom_dataset.root, label_tolerance=0.6, geometry_tolerance=0.1)
    assert {i.file for i in strict.errors} == {path}
    assert lenient.ok and [w.message for w in lenient.warnings] == [
        "mask values such as 1.5 are rounded to integers (0.5)"
    ]


def test_undetectable_dataset_is_one_error(tmp_path: Path):
    report = validate_dataset(tmp_path)
    assert not report.ok and "No dataset layout recognises" in report.errors[0].message


def test_nnunet_dataset_validates(tmp_path: Path):
    root = tmp_path / "Dataset001"
    affine = spacing_affine((1.0, 1.0, 2.0))
    for i in range(2):
        mask = np.zeros((6, 6, 4), np.uint8)
        mask[2:4, 2:4, 1:3] = 1
        write_image(root / "imagesTr" / f"c{i}_0000.nii.gz", mask.astype(np.int16) * 50, affine)
        write_image(root / "labelsTr" / f"c{i}.nii.gz", mask, affine)
    write_dataset_json(root, {"background": 0, "organ": 1}, num_training=2)
    assert validate_dataset(root).issues == ()
    (root / "labelsTr" / "c1.nii.gz").unlink()
    report = validate_dataset(root)
    assert [i.file for i in report.errors] == [root / "labelsTr" / "c1.nii.gz"]


def test_a_file_with_another_ending_than_the_dataset_uses_is_named_with_the_fix(tmp_path: Path):
    """nnU-Net reads only file_ending (.nii.gz): a .nii image or a .NII.GZ file is not found."""
    root = tmp_path / "Dataset002"
    affine = spacing_affine((1.0, 1.0, 2.0))
    mask = np.zeros((6, 6, 4), np.uint8)
    mask[2:4, 2:4, 1:3] = 1
    write_image(root / "imagesTr" / "a_0000.nii", mask.astype(np.int16) * 50, affine)
    write_image(root / "labelsTr" / "a.nii.gz", mask, affine)
    write_image(root / "imagesTr" / "b_0000.NII.GZ", mask.astype(np.int16) * 50, affine)
    write_dataset_json(root, {"background": 0, "organ": 1}, num_training=1)
    report = validate_dataset(root)
    [missing] = report.errors
    assert missing.file == root / "imagesTr" / "a_0000.nii.gz"
    assert (
        missing.message == "image channel 0 missing; a_0000.nii beside it has another file ending"
    )
    assert missing.fix == "save it as a_0000.nii.gz (the dataset's file ending)"
    [upper] = [w for w in report.warnings if w.file == root / "imagesTr" / "b_0000.NII.GZ"]
    assert upper.fix.startswith("rename it b_0000.nii.gz (file endings are case-sensitive")


# -- command line -----------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    validate_cli.add_parser(parser.add_subparsers())
    return validate_cli.run(parser.parse_args(["validate", *argv]))


def test_cli_exit_codes(phantom_dataset: DatasetIndex, capsys):
    root = str(phantom_dataset.root)
    assert _cli(root) == 0
    nearly_integer_labels(phantom_dataset)
    assert _cli(root) == 0
    assert "WARNING" in capsys.readouterr().out
    missing_image(phantom_dataset)
    assert _cli(root, "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert not data["ok"] and {i["severity"] for i in data["issues"]} == {"error", "warning"}


def test_report_raise_if_errors_lists_files(phantom_dataset: DatasetIndex):
    path = missing_mask(phantom_dataset)
    report = validate_dataset(phantom_dataset)
    assert isinstance(report, ValidationReport)
    with pytest.raises(ValueError, match=path.name):
        report.raise_if_errors()


# -- real data --------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_subset_validates_with_warnings_only(quiz_subset: Path):
    report = validate_dataset(quiz_subset)
    assert report.ok, str(report)
    files = sorted(quiz_subset.glob("*/**/*.nii.gz"))
    assert report.n_files == len(files) and report.n_cases == len(
        list(quiz_subset.glob("*/**/*_0000.nii.gz"))
    )
    rounded = [w for w in report.warnings if "rounded to integers" in w.message]
    assert [w.file.name for w in rounded] == ["quiz_1_010.nii.gz"]
    assert "1.0000152" in rounded[0].message
    others = {w.message for w in report.warnings} - {w.message for w in rounded}
    assert others == {
        "validation split has no subtype0 (label 0) case",
        "validation split has no subtype1 (label 1) case",
    }
