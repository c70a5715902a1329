"""Readers: the study's layout, nnU-Net raw datasets and CSV manifests, auto-detected or named."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from _nnunet_files import write_dataset_json
from multitask_unet.data.io import spacing_affine, write_image
from multitask_unet.data.readers import (
    LAYOUTS,
    DatasetIndex,
    Layout,
    detect_layout,
    load_case_labels,
    read_dataset,
)
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError, RegistryError

AFFINE = spacing_affine((1.0, 1.0, 2.0))


def _volume(path: Path, value: int = 0) -> Path:
    array = np.full((6, 5, 4), value, np.int16)
    array[2:4, 2:4, 1:3] = 1
    return write_image(path, array, AFFINE)


def _nnunet_dataset(root: Path, *, n_train: int = 4, n_test: int = 2, channels: int = 2) -> Path:
    for i in range(n_train):
        for c in range(channels):
            _volume(root / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz")
        _volume(root / "labelsTr" / f"case_{i:03d}.nii.gz")
    for i in range(n_test):
        for c in range(channels):
            _volume(root / "imagesTs" / f"test_{i:03d}_{c:04d}.nii.gz")
    labels = {"background": 0, "pancreas": 1, "lesion": 2}
    names = [f"ch{c}" for c in range(channels)]
    write_dataset_json(root, labels, num_training=n_train, channel_names=names)
    return root


def _cases_csv(path: Path) -> dict[tuple[str, int | None], int]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return Counter((r["split"], int(r["subtype"]) if r["subtype"] else None) for r in rows)


def _counts(index: DatasetIndex) -> Counter:
    return Counter({(s, k): n for s, by in index.counts().items() for k, n in by.items()})


# -- study layout -----------------------------------------------------------------------------


def test_study_layout_counts_equal_cases_csv(phantom_dataset: DatasetIndex):
    root = phantom_dataset.root
    index = read_dataset(root)
    assert index.layout == "study" and detect_layout(root) == "study"
    assert _counts(index) == _cases_csv(root / "cases.csv")
    assert index.splits == ("train", "validation", "test")
    assert index.class_names == ("subtype0", "subtype1", "subtype2")
    assert index.label_names == {"background": 0, "pancreas": 1, "lesion": 2}
    assert index.issues == ()
    for record in index:
        assert all(p.is_file() for p in record.images) and record.mask.is_file()
        if record.split != "test":
            assert record.images[0].parent.name == f"subtype{record.label}"


def test_study_layout_reads_test_cases_without_masks_or_labels(tmp_path: Path):
    _volume(tmp_path / "train" / "subtype0" / "a_0000.nii.gz")
    _volume(tmp_path / "train" / "subtype0" / "a.nii.gz")
    _volume(tmp_path / "test" / "t_0000.nii.gz")
    index = read_dataset(tmp_path)
    assert index["t"].mask is None and index["t"].label is None and index["t"].split == "test"
    assert index["a"].label == 0 and index["a"].mask == tmp_path / "train/subtype0/a.nii.gz"


def test_study_layout_expects_missing_files_instead_of_dropping_cases(tmp_path: Path):
    _volume(tmp_path / "train" / "subtype1" / "a_0000.nii.gz")  # mask missing
    _volume(tmp_path / "train" / "subtype1" / "b.nii.gz")  # image missing
    index = read_dataset(tmp_path)
    assert index["a"].mask == tmp_path / "train/subtype1/a.nii.gz"
    assert index["b"].images == (tmp_path / "train/subtype1/b_0000.nii.gz",)


def test_multichannel_study_cases(tmp_path: Path):
    for c in range(3):
        _volume(tmp_path / "train" / "subtype0" / f"a_{c:04d}.nii.gz")
    _volume(tmp_path / "train" / "subtype0" / "a.nii.gz")
    index = read_dataset(tmp_path, layout="study")
    assert [p.name for p in index["a"].images] == [f"a_{c:04d}.nii.gz" for c in range(3)]
    assert len(index.channel_names) == 3


# -- nnU-Net raw datasets ---------------------------------------------------------------------


def test_nnunet_layout_matches_nnunet_file_lists(tmp_path: Path):
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    root = _nnunet_dataset(tmp_path / "Dataset001_Test")
    index = read_dataset(root)
    assert index.layout == "nnunet"
    theirs = get_filenames_of_train_images_and_targets(str(root))
    train = index.split("train")
    assert set(train.case_ids) == set(theirs)
    for record in train:
        assert [str(p) for p in record.images] == theirs[record.case_id]["images"]
        assert str(record.mask) == theirs[record.case_id]["label"]
    assert index.split("test").case_ids == ("test_000", "test_001")
    assert index.channel_names == ("ch0", "ch1")


def test_nnunet_case_labels_and_splits_from_a_table(tmp_path: Path):
    root = _nnunet_dataset(tmp_path / "ds")
    labels = {"case_000": {"label": 0}, "case_001": {"label": 2, "split": "validation"}}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    index = read_dataset(root, labels=tmp_path / "labels.json")
    assert index["case_001"].split == "validation" and index["case_001"].label == 2
    assert index["case_002"].label is None
    assert index.class_names == ("class0", "class1", "class2")


def test_nnunet_structure_problems_are_issues_not_exceptions(tmp_path: Path):
    root = _nnunet_dataset(tmp_path / "ds")
    (root / "imagesTr" / "case_000_0001.nii.gz").unlink()  # a channel missing
    data = json.loads((root / "dataset.json").read_text())
    data["numTraining"] = 7
    (root / "dataset.json").write_text(json.dumps(data))
    index = read_dataset(root)
    assert index["case_000"].images[1] == root / "imagesTr" / "case_000_0001.nii.gz"
    assert any("numTraining" in i.message and i.severity == "error" for i in index.issues)


# -- CSV manifest -----------------------------------------------------------------------------


def test_manifest_layout(tmp_path: Path):
    _volume(tmp_path / "img" / "p1.nii.gz")
    _volume(tmp_path / "seg" / "p1.nii.gz")
    _volume(tmp_path / "img" / "p2.nii.gz")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "case_id,image,mask,label,split\n"
        "p1,img/p1.nii.gz,seg/p1.nii.gz,1,train\n"
        "p2,img/p2.nii.gz,,,test\n"
    )
    for root in (manifest, tmp_path):
        index = read_dataset(root)
        assert index.layout == "manifest"
        assert index["p1"] == CaseRecord(
            "p1", (tmp_path / "img/p1.nii.gz",), tmp_path / "seg/p1.nii.gz", 1, "train"
        )
        assert index["p2"].mask is None and index["p2"].label is None
        assert index.class_names == ("class0", "class1")


def test_manifest_without_image_column_is_an_error(tmp_path: Path):
    path = tmp_path / "m.csv"
    path.write_text("case_id,label\na,1\n")
    with pytest.raises(DataError, match="image column"):
        read_dataset(path)


# -- detection, registry, labels --------------------------------------------------------------


def test_unknown_folder_names_every_layout(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)
    for name in ("study", "nnunet", "manifest"):
        assert name in str(info.value)


def test_unknown_layout_name_suggests_close_matches(tmp_path: Path):
    with pytest.raises(RegistryError, match="nnunet"):
        read_dataset(tmp_path, layout="nnUnet")


def test_users_can_register_a_layout(tmp_path: Path):
    @LAYOUTS.register("test_flat_folder")
    class FlatLayout(Layout):
        name = "test_flat_folder"
        description = "CASE_0000.nii.gz files directly in the root"
        priority = -100

        def detect(self, root: Path) -> bool:
            return (root / "FLAT_LAYOUT_TEST").is_file()  # a marker: detects nothing else

        def read(self, root: Path, *, labels) -> DatasetIndex:
            found = sorted(root.glob("*_0000.nii.gz"))
            records = tuple(CaseRecord(p.name[: -len("_0000.nii.gz")], (p,)) for p in found)
            return DatasetIndex(root, self.name, records)

    _volume(tmp_path / "x_0000.nii.gz")
    (tmp_path / "FLAT_LAYOUT_TEST").touch()
    index = read_dataset(tmp_path)
    assert index.layout == "test_flat_folder" and index.case_ids == ("x",)


@pytest.mark.parametrize("form", ["csv", "json", "nested_json", "mapping"])
def test_case_label_sources_agree(tmp_path: Path, form: str):
    expected = {"a": 0, "b": 2, "c": None}
    if form == "csv":
        source = tmp_path / "l.csv"
        source.write_text("case,split,subtype\na,train,0\nb,train,2\nc,test,\n")
    elif form == "json":
        source = tmp_path / "l.json"
        source.write_text(json.dumps(expected))
    elif form == "nested_json":
        source = tmp_path / "l.json"
        source.write_text(json.dumps({"cases": {k: {"label": v} for k, v in expected.items()}}))
    else:
        source = expected
    assert dict(load_case_labels(source).labels) == expected


@pytest.mark.parametrize("bad", ["1.5", "-1", "one"])
def test_bad_case_labels_name_the_row(tmp_path: Path, bad: str):
    path = tmp_path / "l.csv"
    path.write_text(f"case_id,label\na,0\nb,{bad}\n")
    with pytest.raises(DataError, match="line 3"):
        load_case_labels(path)


def test_index_lookups_and_unknown_split(phantom_dataset: DatasetIndex):
    first = phantom_dataset[0]
    assert phantom_dataset[first.case_id] is first
    with pytest.raises(DataError, match="Did you mean 'validation'"):
        phantom_dataset.split("validaton")
    with pytest.raises(DataError, match="No case"):
        phantom_dataset["nope"]


# -- real data --------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_subset_counts_per_split_and_subtype_equal_cases_csv(quiz_subset: Path):
    index = read_dataset(quiz_subset)
    assert index.layout == "study"
    assert _counts(index) == _cases_csv(quiz_subset / "cases.csv")
    assert not [i for i in index.issues if i.severity == "error"]
    labelled = [r for r in index if r.split != "test"]
    assert all(r.mask is not None and r.mask.is_file() for r in labelled)
    assert all(r.images[0].is_file() for r in index)


def test_four_digit_case_ids_are_not_mistaken_for_channels(tmp_path: Path):
    folder = tmp_path / "train" / "subtype0"
    _volume(folder / "case_0010_0000.nii.gz")
    _volume(folder / "case_0010.nii.gz")
    index = read_dataset(tmp_path)
    assert index.case_ids == ("case_0010",)
    assert index["case_0010"].mask == folder / "case_0010.nii.gz"


@pytest.mark.parametrize(
    "module",
    [
        "multitask_unet.data.io",
        "multitask_unet.data.validation_report",
        "multitask_unet.data.readers",
        "multitask_unet.data.readers.base",
        "multitask_unet.data.readers.labels",
        "multitask_unet.data.validation",
        "multitask_unet.data.phantoms",
    ],
)
def test_docstring_examples_run(module: str):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_nnunet_explicit_dataset_lists_match_nnunet(tmp_path: Path):
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    root = tmp_path / "Dataset002_Lists"
    _volume(tmp_path / "elsewhere" / "a_ct.nii.gz")
    _volume(tmp_path / "elsewhere" / "a_seg.nii.gz")
    _volume(root / "img" / "b.nii.gz")
    _volume(root / "seg" / "b.nii.gz")
    dataset = {
        "a": {
            "images": [str(tmp_path / "elsewhere" / "a_ct.nii.gz")],
            "label": str(tmp_path / "elsewhere" / "a_seg.nii.gz"),
        },
        "b": {"images": ["img/b.nii.gz"], "label": "seg/b.nii.gz"},
    }
    write_dataset_json(root, {"background": 0, "organ": 1}, num_training=2, dataset=dataset)
    index = read_dataset(root)
    assert index.layout == "nnunet"
    theirs = get_filenames_of_train_images_and_targets(str(root))
    assert set(index.case_ids) == set(theirs)
    for record in index:
        assert [str(p) for p in record.images] == theirs[record.case_id]["images"]
        assert str(record.mask) == theirs[record.case_id]["label"]
    assert not [i for i in index.issues if i.severity == "error"]


def test_labels_not_declared_are_named_from_the_values_found(tmp_path: Path) -> None:
    from multitask_unet.data.readers import generic_label_names

    index = DatasetIndex(tmp_path, "study", ())
    assert not index.labels_declared
    assert index.with_found_labels([0, 3, 1]).label_names == {
        "background": 0, "label1": 1, "label3": 3,
    }  # fmt: skip
    declared = DatasetIndex(tmp_path, "study", (), label_names={"background": 0, "liver": 1})
    assert declared.with_found_labels([0, 1, 2]) is declared  # validation reports the 2
    assert generic_label_names([]) == {"background": 0}
