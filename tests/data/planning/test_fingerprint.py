"""Dataset fingerprint: geometry, label/subtype counts and nnU-Net's intensity statistics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from _references import require
from multitask_unet.data.planning.fingerprint import (
    DatasetFingerprint,
    IntensityStats,
    compute_fingerprint,
)
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError, DataError

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

# (I, J, K) shape, (sx, sy, sz) spacing, subtype: odd sizes, anisotropic, one near-isotropic case
CASES = [((23, 19, 9), (0.8, 0.8, 3.2), 0), ((21, 25, 7), (0.9, 0.9, 2.8), 1),
         ((17, 17, 11), (0.7, 0.7, 3.0), 1), ((15, 13, 12), (1.0, 1.0, 1.2), 2)]  # fmt: skip


def _write_case(folder: Path, case_id: str, shape, spacing, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.int16)  # zero "air" border, cropped away
    inner = tuple(slice(1, s - 1) for s in shape)
    image[inner] = rng.normal(30, 80, size=[s - 2 for s in shape]).astype(np.int16)
    mask = np.zeros(shape, np.uint8)
    c = [s // 2 for s in shape]
    mask[c[0] - 4 : c[0] + 4, c[1] - 3 : c[1] + 3, c[2] - 2 : c[2] + 2] = 1
    if seed % 2 == 0:  # only some cases have a lesion
        mask[c[0] - 1 : c[0] + 1, c[1] - 1 : c[1] + 1, c[2]] = 2
    image[mask > 0] += 80
    affine = LPS @ np.diag([*spacing, 1.0])
    img, msk = folder / f"{case_id}_0000.nii.gz", folder / f"{case_id}.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), img)
    nib.save(nib.Nifti1Image(mask, affine), msk)
    return img, msk


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[CaseRecord]:
    folder = tmp_path_factory.mktemp("fingerprint")
    records = []
    for i, (shape, spacing, subtype) in enumerate(CASES):
        img, msk = _write_case(folder, f"case_{i:03d}", shape, spacing, seed=i)
        records.append(CaseRecord(f"case_{i:03d}", (img,), msk, subtype))
    return records


def test_geometry_and_counts_match_the_files(dataset: list[CaseRecord]) -> None:
    fp = compute_fingerprint(dataset, workers=1, progress=False, intensity_samples=4000)
    voxels: dict[str, int] = {}
    present: dict[str, int] = {}
    for record, entry in zip(dataset, fp.cases):
        mask = nib.load(record.mask)
        spacing = np.linalg.norm(mask.affine[:3, :3], axis=0)
        assert entry.spacing == pytest.approx(tuple(spacing[::-1]))  # canonical (D, H, W)
        assert entry.shape == tuple(mask.shape[::-1])
        assert entry.shape_after_crop == tuple(s - 2 for s in mask.shape[::-1])
        values, counts = np.unique(np.asarray(mask.dataobj)[1:-1, 1:-1, 1:-1], return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist()):
            voxels[str(v)] = voxels.get(str(v), 0) + n
            present[str(v)] = present.get(str(v), 0) + 1
    assert fp.label_voxel_counts == voxels
    assert fp.label_case_counts == present
    expected_subtypes: dict[str, int] = {}
    for record in dataset:
        expected_subtypes[str(record.label)] = expected_subtypes.get(str(record.label), 0) + 1
    assert fp.subtype_counts == expected_subtypes
    assert fp.median_spacing == pytest.approx(tuple(np.median(fp.spacings, axis=0)))
    assert fp.labels == (0, 1, 2) and fp.num_channels == 1


def test_intensity_statistics_equal_nnunet_fingerprint_extractor(
    dataset: list[CaseRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run nnU-Net's DatasetFingerprintExtractor on the same files, as an nnU-Net raw dataset."""
    extractor_module = require(
        "nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor"
    )
    raw, preprocessed = tmp_path / "raw", tmp_path / "preprocessed"
    name = "Dataset999_Tiny"
    (raw / name / "imagesTr").mkdir(parents=True)
    (raw / name / "labelsTr").mkdir()
    for record in dataset:
        os.symlink(record.images[0], raw / name / "imagesTr" / record.images[0].name)
        os.symlink(record.mask, raw / name / "labelsTr" / record.mask.name)
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2},
                    "numTraining": len(dataset), "file_ending": ".nii.gz"}  # fmt: skip
    (raw / name / "dataset.json").write_text(json.dumps(dataset_json))
    monkeypatch.setattr(extractor_module, "nnUNet_raw", str(raw))
    monkeypatch.setattr(extractor_module, "nnUNet_preprocessed", str(preprocessed))
    extractor = extractor_module.DatasetFingerprintExtractor(name, num_processes=1)
    extractor.num_foreground_voxels_for_intensitystats = 4000
    extractor.show_progress_bar = False
    theirs = extractor.run()

    ours = compute_fingerprint(dataset, workers=1, progress=False, intensity_samples=4000)
    stats = ours.intensity[0]
    reference = theirs["foreground_intensity_properties_per_channel"][0]
    for key in ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5"):
        assert getattr(stats, key) == pytest.approx(reference[key], rel=1e-6), key
    np.testing.assert_allclose(ours.spacings, theirs["spacings"])
    np.testing.assert_array_equal(ours.shapes_after_crop, theirs["shapes_after_crop"])
    assert ours.median_relative_size_after_crop == pytest.approx(
        theirs["median_relative_size_after_cropping"]
    )


def test_fingerprint_json_round_trip(dataset: list[CaseRecord]) -> None:
    fp = compute_fingerprint(dataset[:2], workers=1, progress=False, intensity_samples=500)
    again = DatasetFingerprint.from_json(fp.to_json())
    assert again == fp
    assert isinstance(again.cases[0].spacing, tuple)


def test_intensity_stats_from_samples() -> None:
    values = np.random.default_rng(0).normal(10, 2, size=5000)
    stats = IntensityStats.from_samples(values)
    assert stats.percentile_00_5 == pytest.approx(np.percentile(values, 0.5))
    assert stats.std == pytest.approx(values.std())
    with pytest.raises(DataError, match="no foreground"):
        IntensityStats.from_samples(np.array([]))


def test_fingerprint_errors(dataset: list[CaseRecord]) -> None:
    with pytest.raises(DataError, match="no cases"):
        compute_fingerprint([], progress=False)
    unlabelled = CaseRecord("x", dataset[0].images, None)
    with pytest.raises(DataError, match="no mask"):
        compute_fingerprint([dataset[0], unlabelled], workers=1, progress=False)
    with pytest.raises(ConfigError, match="orientation"):
        compute_fingerprint(dataset, orientation="LPQ", progress=False)


@pytest.mark.real_data
def test_real_training_split_fingerprint(quiz_subset: Path) -> None:
    sitk = require("SimpleITK")
    records = read_dataset(quiz_subset).split("train").records
    fp = compute_fingerprint(records, workers=2, progress=False, intensity_samples=200_000)
    reference = [sitk.ReadImage(str(r.images[0])).GetSpacing()[::-1] for r in records]
    assert fp.median_spacing == pytest.approx(tuple(np.median(reference, axis=0)))
    assert sum(fp.subtype_counts.values()) == len(records)
    assert fp.label_case_counts["1"] == len(records)
    # the subset's intensities are approximate HU, most clipped to [-56, 180]
    assert -60 < fp.intensity[0].percentile_00_5 < fp.intensity[0].mean < 181
