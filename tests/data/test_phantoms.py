"""Synthetic phantoms: deterministic, CT-like, lesion big enough, subtype learnable but not trivial."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from multitask_unet.data.io import read_image
from multitask_unet.data.phantoms import (
    STUDY_SUBTYPE_COUNTS,
    make_phantom,
    write_phantom_dataset,
)
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.validation import validate_dataset
from multitask_unet.errors import DataError

SMALL = {"shape": (40, 40, 24), "spacing": (1.6, 1.6, 2.5)}


def test_same_seed_same_voxels_other_seed_other_voxels():
    a_img, a_mask = make_phantom(1, seed=3, **SMALL)
    b_img, b_mask = make_phantom(1, seed=3, **SMALL)
    c_img, _ = make_phantom(1, seed=4, **SMALL)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


@pytest.mark.parametrize("subtype", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_default_phantom_is_ct_like_with_a_big_enough_lesion(subtype: int, seed: int):
    image, mask = make_phantom(subtype, seed=seed)
    assert image.shape == mask.shape == (64, 64, 48)
    assert image.dtype == np.int16 and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1, 2}
    lesion, pancreas = mask == 2, mask == 1
    assert lesion.sum() >= 300, "lesions must be several hundred voxels"
    assert ndimage.label(lesion)[1] == 1, "one connected lesion"
    assert image.min() <= -900 and np.percentile(image, 99.9) >= 300  # air and bone
    assert 80 <= image[pancreas].mean() <= 160
    core = ndimage.binary_erosion(lesion, iterations=2)  # inside an enhancing rim, if any
    assert image[pancreas].mean() - image[core].mean() >= 20, "the lesion must stand out"
    touching = ndimage.binary_dilation(lesion) & pancreas
    assert touching.any(), "the lesion sits in the pancreas"


def _lesion_features(image: np.ndarray, mask: np.ndarray) -> list[float]:
    lesion = mask == 2
    core = ndimage.binary_erosion(lesion)
    rim = lesion & ~core
    values = image.astype(float)
    core_mean = values[core].mean() if core.any() else values[lesion].mean()
    return [values[lesion].mean(), values[lesion].std(), values[rim].mean() - core_mean]


def test_subtype_is_learnable_but_not_from_mean_intensity_alone():
    features, subtypes = [], []
    for i in range(30):
        image, mask = make_phantom(i % 3, seed=(11, i))  # the default size and spacing
        features.append(_lesion_features(image, mask))
        subtypes.append(i % 3)
    x, y = np.asarray(features), np.asarray(subtypes)
    x = (x - x.mean(0)) / x.std(0)

    def worst_ovr_auc(columns: list[int]) -> float:
        model = LogisticRegression(max_iter=1000)
        proba = cross_val_predict(model, x[:, columns], y, cv=3, method="predict_proba")
        return min(roc_auc_score(y == k, proba[:, k]) for k in range(3))

    assert worst_ovr_auc([0]) < 0.9, "mean intensity alone should not give the subtype away"
    assert worst_ovr_auc([0, 1, 2]) > 0.9, "texture and rim must make the subtype learnable"


def test_write_phantom_dataset_layout_geometry_and_balance(tmp_path: Path):
    index = write_phantom_dataset(
        tmp_path / "ph",
        n_train=25,
        n_validation=4,
        n_test=4,
        shape=(24, 24, 12),
        spacing=(2.0, 2.0, 3.0),
        seed=5,
    )
    train = Counter(r.label for r in index.split("train"))
    share = np.asarray(STUDY_SUBTYPE_COUNTS) / sum(STUDY_SUBTYPE_COUNTS) * 25
    assert all(abs(train[k] - share[k]) < 1 for k in range(3)), train
    assert train[1] == max(train.values()), "subtype 1 is the most frequent, as in the study"
    with (index.root / "cases.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["case"]: int(r["subtype"]) for r in rows} == {r.case_id: r.label for r in index}
    test_case = index.split("test")[0]
    assert test_case.images[0].parent.name == "test" and test_case.mask.is_file()
    img = nib.load(test_case.images[0])
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert img.header.get_zooms() == (2.0, 2.0, 3.0)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    np.testing.assert_array_equal(read_image(test_case.mask).affine, img.affine)
    assert validate_dataset(index).issues == ()
    assert read_dataset(index.root).counts() == index.counts()


def test_write_phantom_dataset_is_deterministic_and_refuses_a_full_folder(tmp_path: Path):
    kwargs = {"n_train": 3, "n_validation": 0, "n_test": 1, "shape": (16, 16, 8), "seed": 2}
    a = write_phantom_dataset(tmp_path / "a", **kwargs)
    b = write_phantom_dataset(tmp_path / "b", **kwargs)
    for ra, rb in zip(a, b, strict=True):
        assert (ra.case_id, ra.label, ra.split) == (rb.case_id, rb.label, rb.split)
        np.testing.assert_array_equal(
            read_image(ra.images[0]).array, read_image(rb.images[0]).array
        )
    with pytest.raises(DataError, match="not empty"):
        write_phantom_dataset(tmp_path / "a", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"subtype": 3}, "subtype"),
        ({"shape": (4, 4, 4)}, "shape"),
        ({"spacing": (1, 0, 1)}, "spacing"),
    ],
)
def test_bad_phantom_arguments_are_named(kwargs, match):
    args = {"subtype": 0, **kwargs}
    with pytest.raises(DataError, match=match):
        make_phantom(args.pop("subtype"), **args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (16, 16)}, r"shape must be three sizes .* got \(16, 16\)"),
        ({"spacing": (1.0, 1.0)}, r"spacing must be three positive .* got \(1\.0, 1\.0\)"),
    ],
)
def test_bad_dataset_geometry_is_named_before_writing(tmp_path: Path, kwargs, match):
    with pytest.raises(DataError, match=match):
        write_phantom_dataset(tmp_path / "a", n_train=1, n_validation=0, n_test=0, **kwargs)
    assert not (tmp_path / "a").exists()
