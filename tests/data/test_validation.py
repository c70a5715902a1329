"""Validation: every problem reported in one pass, each naming its file and fix; the CLI's exit codes."""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.cli import validate as validate_cli
from multitask_unet.data.io import read_image, spacing_affine, write_image
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.validation import validate_dataset
from multitask_unet.data.validation_report import ValidationReport


def _case(index: DatasetIndex, split: str = "train", label: int | None = 0):
    return next(r for r in index if r.split == split and r.label == label)


def _rewrite(path: Path, *, array=None, affine=None, dtype=None) -> Path:
    vol = read_image(path)
    return write_image(
        path,
        vol.array if array is None else array,
        vol.affine if affine is None else affine,
        dtype=dtype,
    )


# Each breaker damages the tiny phantom dataset in one way and returns the file to be named.
def missing_image(index):
    path = _case(index).images[0]
    path.unlink()
    return path


def missing_mask(index):
    path = _case(index).mask
    path.unlink()
    return path


def corrupt_file(index):
    path = _case(index).images[0]
    path.write_bytes(gzip.compress(b"this is not NIfTI" * 10))
    return path


def truncated_file(index):
    path = _case(index).mask
    path.write_bytes(path.read_bytes()[:200])
    return path


def shape_mismatch(index):
    path = _case(index).mask
    return _rewrite(path, array=read_image(path).array[:-2])


def spacing_mismatch(index):
    path = _case(index).mask
    affine = read_image(path).affine.copy()
    affine[:3, 2] *= 1.05
    return _rewrite(path, affine=affine)


def origin_mismatch(index):
    path = _case(index).mask
    affine = read_image(path).affine.copy()
    affine[0, 3] += 1.0
    return _rewrite(path, affine=affine)


def direction_mismatch(index):
    path = _case(index).mask
    affine = read_image(path).affine.copy()
    affine[:3, 0] *= -1
    return _rewrite(path, affine=affine)


def image_2d(index):
    path = _case(index).images[0]
    return _rewrite(path, array=read_image(path).array[:, :, 5])


def image_4d(index):
    path = _case(index).images[0]
    array = read_image(path).array
    return _rewrite(path, array=np.stack([array, array], axis=-1))


def nan_intensity(index):
    path = _case(index).images[0]
    array = read_image(path).array.astype(np.float32)
    array[3, 4, 5] = np.nan
    return _rewrite(path, array=array)


def inf_intensity(index):
    path = _case(index).images[0]
    array = read_image(path).array.astype(np.float32)
    array[1, 1, 1] = -np.inf
    return _rewrite(path, array=array)


def nearly_integer_labels(index):
    path = _case(index).mask
    array = read_image(path).array.astype(np.float32)
    array[array == 1] = 1.0000153  # as in the real train/subtype1/quiz_1_010
    return _rewrite(path, array=array)


def non_integer_labels(index):
    path = _case(index).mask
    array = read_image(path).array.astype(np.float32)
    array[array == 2] = 1.5
    return _rewrite(path, array=array)


def undeclared_label(index):
    path = _case(index).mask
    array = read_image(path).array.copy()
    array[0, 0, 0] = 7
    return _rewrite(path, array=array)


def duplicate_case_id(index):
    record = _case(index, label=0)
    target = record.images[0].parent.parent / "subtype1"
    for path in (*record.images, record.mask):
        shutil.copy(path, target / path.name)
    return target / record.images[0].name


def label_contradicts_folder(index):
    record = _case(index, label=0)
    table = index.root / "cases.csv"
    rows = list(csv.reader(table.open()))
    for row in rows:
        if row[0] == record.case_id:
            row[2] = "2"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return record.images[0]


def empty_split(index):
    (index.root / "holdout").mkdir()
    return index.root / "holdout"


def empty_subtype_folder(index):
    (index.root / "train" / "subtype3").mkdir()
    return index.root / "train" / "subtype3"


def subtype_without_training_cases(index):
    folder = index.root / "train" / "subtype1"
    for path in folder.iterdir():
        path.unlink()
    return index.root


def no_foreground(index):
    path = _case(index).mask
    return _rewrite(path, array=np.zeros_like(read_image(path).array))


PROBLEMS: list[tuple[Callable, str, str]] = [
    (missing_image, "error", "image channel 0 missing"),
    (missing_mask, "error", "mask missing"),
    (corrupt_file, "error", "unreadable image"),
    (truncated_file, "error", "unreadable mask"),
    (shape_mismatch, "error", "mask shape"),
    (spacing_mismatch, "error", "mask spacing"),
    (origin_mismatch, "error", "mask origin"),
    (direction_mismatch, "error", "mask direction"),
    (image_2d, "error", "is 2D"),
    (image_4d, "error", "is 4D"),
    (nan_intensity, "error", "NaN or Inf"),
    (inf_intensity, "error", "NaN or Inf"),
    (nearly_integer_labels, "warning", "rounded to integers"),
    (non_integer_labels, "error", "non-integer values such as 1.5"),
    (undeclared_label, "error", "mask values [7] are not declared"),
    (duplicate_case_id, "error", "appears 2 times"),
    (label_contradicts_folder, "error", "gives subtype 2 but the case is in train/subtype0"),
    (empty_split, "error", "split folder 'holdout' has no cases"),
    (empty_subtype_folder, "error", "subtype folder train/subtype3 has no cases"),
    (subtype_without_training_cases, "error", "subtype1 (label 1) has no training cases"),
    (no_foreground, "warning", "no foreground"),
]


def test_clean_phantoms_validate_without_issues(phantom_dataset: DatasetIndex):
    report = validate_dataset(phantom_dataset.root)
    assert report.ok and report.issues == (), str(report)
    assert report.n_cases == 12 and report.n_files == 24


@pytest.mark.parametrize(
    ("breaker", "severity", "message"), PROBLEMS, ids=[p[0].__name__ for p in PROBLEMS]
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


def test_all_problems_are_reported_in_one_pass(phantom_dataset: DatasetIndex):
    expected = [missing_mask(phantom_dataset), undeclared_label_in(phantom_dataset, 1)]
    expected.append(empty_split(phantom_dataset))
    report = validate_dataset(phantom_dataset.root)
    assert {i.file for i in report.errors} == set(expected)


def undeclared_label_in(index: DatasetIndex, label: int) -> Path:
    path = _case(index, label=label).mask
    array = read_image(path).array.copy()
    array[0, 0, 0] = 9
    return _rewrite(path, array=array)


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
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "organ": 1},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    assert validate_dataset(root).issues == ()
    (root / "labelsTr" / "c1.nii.gz").unlink()
    report = validate_dataset(root)
    assert [i.file for i in report.errors] == [root / "labelsTr" / "c1.nii.gz"]


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
