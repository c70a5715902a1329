"""Preprocessing of whole cases: preprocess_case, restore_native, orientation and the cache.

Everything claimed "as nnU-Net" is checked against nnunetv2's own functions on the same input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from _references import reference, require

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the benchmarks package

from benchmarks.common import nnunet_ct_plans

from multitask_unet.data.orientation import from_canonical, to_canonical
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.planning.plan import ChannelNormalization, PreprocessingConfig, create_plan
from multitask_unet.data.preprocessing.cache import (
    list_cached_cases,
    load_cached_case,
    load_cached_plan,
    preprocess_dataset,
)
from multitask_unet.data.preprocessing.case import (
    preprocess_case,
    restore_native,
)
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError, ShapeError

nnunet_resampling = reference("nnunetv2.preprocessing.resampling.default_resampling")

LPS = np.diag([-1.0, -1.0, 1.0])


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def _affine(spacing, *, layout: str) -> np.ndarray:
    """File affine: 'LPS' (ITK-style), 'RAS', or 'SPL' (axes permuted: i superior, k left)."""
    affine = np.eye(4)
    if layout == "LPS":
        affine[:3, :3] = LPS @ np.diag(spacing)
    elif layout == "RAS":
        affine[:3, :3] = np.diag(spacing)
    else:
        affine[:3, :3] = np.array([[0, 0, 1], [0, -1, 0], [1, 0, 0]]) @ np.diag(spacing)
    affine[:3, 3] = (12.5, -30.0, 7.0)
    return affine


def _make_case(
    folder: Path,
    case_id: str,
    *,
    shape=(23, 19, 9),
    spacing=(0.8, 0.8, 3.2),
    layout: str = "LPS",
    label: int | None = 1,
    with_mask: bool = True,
    seed: int = 0,
) -> CaseRecord:
    """A tiny CT-like case in file order (I, J, K): body in HU with zero air around it."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.int16)
    body = tuple(slice(1, s - 1) for s in shape)
    image[body] = rng.normal(40, 60, size=[s - 2 for s in shape]).astype(np.int16)
    mask = np.zeros(shape, np.uint8)
    c = [s // 2 for s in shape]
    mask[c[0] - 5 : c[0] + 5, c[1] - 4 : c[1] + 4, c[2] - 2 : c[2] + 3] = 1
    mask[c[0] - 2 : c[0] + 2, c[1] - 1 : c[1] + 2, c[2] - 1 : c[2] + 1] = 2
    image[mask > 0] += 60
    affine = _affine(spacing, layout=layout)
    img = _write(folder / f"{case_id}_0000.nii.gz", image, affine)
    msk = _write(folder / f"{case_id}.nii.gz", mask, affine) if with_mask else None
    return CaseRecord(case_id, (img,), msk, label)


def _config(target=(1.0, 1.0, 2.0), **changes) -> PreprocessingConfig:
    norm = (ChannelNormalization("ct", -60.0, 200.0, 60.0, 50.0),)
    defaults = {"target_spacing": target, "normalization": norm, "labels": (0, 1, 2)}
    return PreprocessingConfig(**{**defaults, **changes})


def test_preprocess_case_equals_nnunet_default_preprocessor(tmp_path: Path) -> None:
    require("nnunetv2.preprocessing.preprocessors.default_preprocessor")
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    record = _make_case(tmp_path, "case", spacing=(0.8, 0.8, 3.2))
    config = _config(target=(2.0, 1.0, 1.0))  # (D, H, W); nnU-Net's (z, y, x) for LPS files
    architecture = {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}
    plans = PlansManager(
        nnunet_ct_plans(
            "Dataset999_Test",
            architecture=architecture,
            patch=(8, 16, 16),
            batch=2,
            spacing=config.target_spacing,
            median_shape=(8, 16, 16),
            norm=config.normalization[0],
        )
    )
    dataset_json = {"labels": {"background": 0, "a": 1, "b": 2}, "channel_names": {"0": "CT"}}
    data, seg, props = DefaultPreprocessor(verbose=False).run_case(
        [str(record.images[0])], str(record.mask), plans,
        plans.get_configuration("3d_fullres"), dataset_json,
    )  # fmt: skip

    ours = preprocess_case(record, config)
    np.testing.assert_allclose(ours.image, data, atol=1e-4)
    np.testing.assert_array_equal(ours.seg, np.maximum(seg, 0))  # nnU-Net marks outside as -1
    assert [list(b) for b in ours.properties.crop_bbox] == props["bbox_used_for_cropping"]
    assert ours.seg.dtype == np.uint8 and ours.image.dtype == np.float32


@pytest.mark.parametrize("layout", ["LPS", "RAS", "SPL"])
def test_restore_native_round_trips_to_the_original_grid(tmp_path: Path, layout: str) -> None:
    record = _make_case(tmp_path, "case", shape=(23, 19, 9), spacing=(0.7, 0.9, 3.1), layout=layout)
    case = preprocess_case(record, _config(target=(1.5, 1.1, 1.1)))
    original = nib.load(record.mask)
    truth = np.asarray(original.dataobj)

    labels = restore_native(case.seg, case.properties)
    assert labels.shape == (1, *truth.shape) and labels.dtype == case.seg.dtype
    np.testing.assert_allclose(np.asarray(case.properties.original_affine), original.affine)
    assert (labels[0] == truth).mean() > 0.97
    for label in (1, 2):
        overlap = 2 * ((labels[0] == label) & (truth == label)).sum()
        assert overlap / ((labels[0] == label).sum() + (truth == label).sum()) > 0.8

    one_hot = np.stack([(case.seg[0] == k) for k in range(3)]).astype(np.float32)
    probs = restore_native(one_hot, case.properties)
    assert probs.shape == (3, *truth.shape) and probs.dtype == np.float32
    assert (probs.argmax(0) == truth).mean() > 0.97


def test_preprocessed_affine_maps_voxels_to_the_same_world_points(tmp_path: Path) -> None:
    record = _make_case(tmp_path, "case", layout="SPL", spacing=(0.7, 0.9, 3.1))
    case = preprocess_case(record, _config(target=(1.0, 0.8, 0.8)))
    original = nib.load(record.mask)

    def world_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
        return (affine @ np.append(np.argwhere(mask).mean(0), 1.0))[:3]

    ours = world_centroid(case.seg[0] == 2, np.asarray(case.properties.affine))
    truth = world_centroid(np.asarray(original.dataobj) == 2, original.affine)
    assert np.abs(ours - truth).max() < 1.0  # mm, well below one original slice (3.1 mm)


def test_orientation_round_trip_and_sitk_agreement(tmp_path: Path) -> None:
    sitk = require("SimpleITK")
    record = _make_case(tmp_path, "case", layout="SPL")
    img = nib.load(record.images[0])
    array = np.asarray(img.dataobj)
    canonical, _ = to_canonical(array, img.affine)
    reference = sitk.DICOMOrient(sitk.ReadImage(str(record.images[0])), "LPS")
    np.testing.assert_array_equal(canonical, sitk.GetArrayFromImage(reference))
    np.testing.assert_array_equal(from_canonical(canonical, img.affine, array.shape), array)
    with pytest.raises(ShapeError, match="original shape"):
        from_canonical(canonical[:, :, 1:], img.affine, array.shape)


def test_channels_are_preprocessed_independently(tmp_path: Path) -> None:
    record = _make_case(tmp_path, "case", layout="RAS")
    second = tmp_path / "case_0001.nii.gz"
    source = nib.load(record.images[0])
    _write(second, (np.asarray(source.dataobj) * 2).astype(np.int16), source.affine)
    norm = (ChannelNormalization("ct", -60.0, 200.0, 60.0, 50.0), ChannelNormalization("zscore"))
    config = _config(normalization=norm)
    both = preprocess_case(CaseRecord("case", (record.images[0], second), record.mask), config)
    alone = preprocess_case(CaseRecord("case", (second,), record.mask), config.replace(
        normalization=[norm[1].to_dict()]))  # fmt: skip
    assert both.image.shape[0] == 2
    np.testing.assert_allclose(both.image[1], alone.image[0], atol=1e-5)
    assert abs(float(both.image[1].mean())) < 0.2  # z-scored before resampling


def test_preprocess_case_without_mask_and_with_bad_grid(tmp_path: Path) -> None:
    record = _make_case(tmp_path, "case", with_mask=False, label=None)
    case = preprocess_case(record, _config())
    assert case.seg is None and case.properties.class_locations == {}
    other = _make_case(tmp_path, "other", shape=(21, 19, 9))
    mixed = CaseRecord("mixed", record.images, other.mask)
    with pytest.raises(DataError, match="not on the grid"):
        preprocess_case(mixed, _config())


def test_a_mask_label_beyond_the_plans_labels_is_refused_naming_the_mask(tmp_path: Path) -> None:
    """A plan of another dataset (labels 0, 1) would hand label 2 to a 2-output head."""
    record = _make_case(tmp_path, "case")
    with pytest.raises(DataError, match=r"case\.nii\.gz \(case case\) holds label 2, beyond the "
                                        r"plan's labels \(0, 1\)"):  # fmt: skip
        preprocess_case(record, _config(labels=(0, 1)))


def test_restore_native_rejects_a_foreign_grid(tmp_path: Path) -> None:
    case = preprocess_case(_make_case(tmp_path, "case"), _config())
    with pytest.raises(ShapeError, match="preprocessed grid"):
        restore_native(np.zeros((3, 3, 3), np.uint8), case.properties)


# -- cache ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> list[CaseRecord]:
    folder = tmp_path_factory.mktemp("tiny")
    return [
        _make_case(folder, "a", shape=(23, 19, 9), spacing=(0.8, 0.8, 3.2), seed=1, label=0),
        _make_case(folder, "b", shape=(21, 25, 7), spacing=(0.9, 0.9, 2.8), seed=2, label=1),
        _make_case(folder, "c", shape=(17, 17, 11), spacing=(0.7, 0.7, 3.0), seed=3, label=2),
    ]


def _plan(records: list[CaseRecord], **kwargs):
    fingerprint = compute_fingerprint(records, workers=1, progress=False, intensity_samples=3000)
    return create_plan(fingerprint, size_divisor=(4, 8, 8), **kwargs)


def test_cache_round_trip_skip_and_invalidation(tmp_path: Path, tiny_dataset) -> None:
    plan = _plan(tiny_dataset)
    unlabelled = CaseRecord("t", tiny_dataset[0].images, None, None, "test")
    cases = [*tiny_dataset, unlabelled]
    first = preprocess_dataset(cases, plan, tmp_path, workers=1, progress=False)
    assert sorted(first.processed) == ["a", "b", "c", "t"] and first.skipped == ()
    assert list_cached_cases(tmp_path) == ["a", "b", "c", "t"]
    assert load_cached_plan(tmp_path) == plan

    cached = load_cached_case(tmp_path, "b", cache_key=plan.cache_key())
    direct = preprocess_case(tiny_dataset[1], plan)
    assert isinstance(cached.image, np.memmap) and not cached.image.flags.writeable
    np.testing.assert_array_equal(cached.image, direct.image)
    np.testing.assert_array_equal(cached.seg, direct.seg)
    assert cached.properties == direct.properties
    assert set(cached.properties.class_locations_array()) == {1, 2}
    assert load_cached_case(tmp_path, "t").seg is None

    os.remove(tmp_path / "c" / "properties.json")  # an interrupted case
    again = preprocess_dataset(cases, plan, tmp_path, workers=1, progress=False)
    assert again.processed == ("c",) and sorted(again.skipped) == ["a", "b", "t"]

    other = create_plan(plan.fingerprint, size_divisor=(4, 8, 8), target_spacing=(2.5, 1, 1))
    assert other.cache_key() != plan.cache_key()
    with pytest.raises(DataError, match="another plan"):
        load_cached_case(tmp_path, "a", cache_key=other.cache_key())
    redo = preprocess_dataset(cases[:2], other, tmp_path, workers=1, progress=False)
    assert sorted(redo.processed) == ["a", "b"]
    assert list_cached_cases(tmp_path) == ["a", "b"]  # c and t are stale for the new plan


def test_cache_with_two_workers_matches_serial(tmp_path: Path, tiny_dataset) -> None:
    plan = _plan(tiny_dataset)
    preprocess_dataset(tiny_dataset, plan, tmp_path / "serial", workers=1, progress=False)
    preprocess_dataset(tiny_dataset, plan, tmp_path / "pool", workers=2, progress=False)
    for record in tiny_dataset:
        serial = load_cached_case(tmp_path / "serial", record.case_id)
        pooled = load_cached_case(tmp_path / "pool", record.case_id)
        np.testing.assert_array_equal(serial.image, pooled.image)
        assert serial.properties == pooled.properties


def test_load_cached_case_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not in the cache"):
        load_cached_case(tmp_path, "nope")
    with pytest.raises(DataError, match="not a preprocessing cache"):
        list_cached_cases(tmp_path)


# -- real data --------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_cases_preprocess_and_restore(quiz_subset: Path, tmp_path: Path) -> None:
    train = read_dataset(quiz_subset).split("train")
    records = [train["quiz_0_324"], train["quiz_1_010"]]  # native 3 mm; float mask 1.0000153
    plan = _plan(records)
    preprocess_dataset(records, plan, tmp_path, workers=1, progress=False)
    for record in records:
        cached = load_cached_case(tmp_path, record.case_id)
        assert cached.image.dtype == np.float32 and cached.seg.dtype == np.uint8
        assert cached.image.shape[1:] == cached.seg.shape[1:] == cached.properties.shape
        restored = restore_native(np.asarray(cached.seg[0]), cached.properties)
        original = nib.load(record.mask)
        truth = np.rint(np.asarray(original.dataobj)).astype(np.uint8)
        assert restored.shape == truth.shape
        np.testing.assert_allclose(np.asarray(cached.properties.original_affine), original.affine)
        assert (restored == truth).mean() > 0.99


def test_preprocess_command_is_rerun_safe(phantom_dataset, tmp_path: Path, capsys) -> None:
    from multitask_unet.cli import preprocess as preprocess_cli

    plan = _plan(list(phantom_dataset.split("train").records))
    plan.save(tmp_path / "plan.json")
    argv = ["preprocess", str(phantom_dataset.root), "--plan", str(tmp_path / "plan.json"),
            "-o", str(tmp_path / "cache"), "--workers", "1", "--no-progress"]  # fmt: skip
    parser = argparse.ArgumentParser()
    preprocess_cli.add_parser(parser.add_subparsers(dest="command"))
    assert preprocess_cli.run(parser.parse_args(argv)) == 0
    assert list_cached_cases(tmp_path / "cache") == sorted(phantom_dataset.case_ids)
    assert preprocess_cli.run(parser.parse_args([*argv, "--split", "test"])) == 0
    assert f"preprocessed 0 case(s), {len(phantom_dataset.split('test'))} already" in (
        capsys.readouterr().out
    )
