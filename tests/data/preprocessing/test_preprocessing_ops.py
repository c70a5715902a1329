"""Resampling, cropping, normalisation and class locations, each against nnunetv2's own
function on the same input."""

from __future__ import annotations

import numpy as np
import pytest

from _references import reference, require
from multitask_unet.data.planning.plan import ChannelNormalization
from multitask_unet.data.preprocessing.case import (
    normalize_image,
    sample_class_locations,
)
from multitask_unet.data.preprocessing.cropping import crop, nonzero_bbox, uncrop
from multitask_unet.data.preprocessing.resampling import (
    compute_new_shape,
    resample_image,
    resample_seg,
)
from multitask_unet.errors import ShapeError

nnunet_resampling = reference("nnunetv2.preprocessing.resampling.default_resampling")


RESAMPLING_CASES = [
    # spacing, new spacing, (D, H, W)
    ((1.0, 1.0, 1.0), (1.3, 0.7, 1.1), (11, 14, 13)),  # isotropic, mixed up/down
    ((4.0, 0.8, 0.8), (2.0, 1.0, 1.0), (7, 17, 15)),  # anisotropic input: separate z
    ((1.0, 1.0, 1.0), (3.5, 1.0, 1.0), (13, 10, 9)),  # anisotropic target: separate z
    ((0.9, 3.0, 0.9), (0.9, 1.5, 0.9), (9, 5, 11)),  # coarse middle axis
]


def _blobs(shape: tuple[int, ...], rng: np.random.Generator, labels: int = 3) -> np.ndarray:
    seg = np.zeros(shape, np.int16)
    for label in range(1, labels + 1):
        lo = [int(rng.integers(0, max(1, s - 3))) for s in shape]
        hi = [min(s, a + int(rng.integers(2, max(3, s // 2 + 2)))) for a, s in zip(lo, shape)]
        seg[tuple(slice(a, b) for a, b in zip(lo, hi))] = label
    return seg


@pytest.mark.parametrize(("spacing", "new_spacing", "shape"), RESAMPLING_CASES)
def test_resample_image_equals_nnunet(spacing, new_spacing, shape) -> None:
    image = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    new_shape = compute_new_shape(shape, spacing, new_spacing)
    ours = resample_image(image, new_shape, spacing=spacing, new_spacing=new_spacing)
    theirs = nnunet_resampling.resample_data_or_seg_to_shape(
        image, new_shape, spacing, new_spacing, is_seg=False, order=3, order_z=0,
        force_separate_z=None,
    )  # fmt: skip
    assert ours.shape == (2, *new_shape) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(("spacing", "new_spacing", "shape"), RESAMPLING_CASES)
@pytest.mark.parametrize("kind", ["blobs", "noise"])
def test_resample_seg_equals_nnunet_and_never_bleeds(spacing, new_spacing, shape, kind) -> None:
    rng = np.random.default_rng(1)
    seg = _blobs(shape, rng) if kind == "blobs" else rng.choice([0, 2, 5], size=shape)
    seg = seg.astype(np.int16)
    new_shape = compute_new_shape(shape, spacing, new_spacing)
    ours = resample_seg(seg, new_shape, spacing=spacing, new_spacing=new_spacing)
    theirs = nnunet_resampling.resample_data_or_seg_to_shape(
        seg[None], new_shape, spacing, new_spacing, is_seg=True, order=1, order_z=0,
        force_separate_z=None,
    )[0]  # fmt: skip
    np.testing.assert_array_equal(ours, theirs)
    assert set(np.unique(ours)) <= set(np.unique(seg))  # no in-between label (e.g. 1 between 0, 2)


@pytest.mark.parametrize("bad", [np.zeros((4, 5)), np.zeros((1, 2, 3, 4, 5))])
def test_resampling_rejects_wrong_ndim(bad: np.ndarray) -> None:
    with pytest.raises(ShapeError, match="must be"):
        resample_seg(bad, (2, 2, 2), spacing=(1, 1, 1), new_spacing=(1, 1, 1))


def test_nonzero_bbox_equals_nnunet_crop_and_uncrop_inverts() -> None:
    cropping = require("nnunetv2.preprocessing.cropping.cropping")
    rng = np.random.default_rng(2)
    image = np.zeros((2, 9, 12, 11), np.float32)
    image[0, 2:7, 3:10, 1:6] = rng.normal(size=(5, 7, 5)) + 5
    image[1, 1:3, 4:6, 5:9] = 1.0
    image[0, 4, 5, 3] = 0.0  # a hole inside the body
    _, _, theirs = cropping.crop_to_nonzero(image.copy(), np.zeros((1, 9, 12, 11), np.int8))
    bbox = nonzero_bbox(image)
    assert [list(b) for b in bbox] == [list(map(int, b)) for b in theirs]
    np.testing.assert_array_equal(uncrop(crop(image, bbox), bbox, image.shape[1:]), image)


def test_normalize_image_ct_equals_nnunet() -> None:
    norm_module = require("nnunetv2.preprocessing.normalization.default_normalization_schemes")
    stats = {"mean": 40.0, "std": 55.0, "percentile_00_5": -80.0, "percentile_99_5": 210.0}
    image = np.random.default_rng(3).normal(50, 150, size=(1, 5, 6, 7)).astype(np.float32)
    ours = normalize_image(image, [ChannelNormalization("ct", -80.0, 210.0, 40.0, 55.0)])
    theirs = norm_module.CTNormalization(False, stats).run(image[0].copy())
    np.testing.assert_allclose(ours[0], theirs, rtol=1e-6)
    assert not np.shares_memory(ours, image)


@pytest.mark.parametrize(
    ("max_per_class", "count", "expected"), [(10, 50, 10), (10, 5, 5), (10, 2000, 20)]
)
def test_sample_class_locations_budget(max_per_class: int, count: int, expected: int) -> None:
    seg = np.zeros(4000, np.uint8)
    seg[np.random.default_rng(4).choice(4000, count, replace=False)] = 1
    seg = seg.reshape(10, 20, 20)
    locations = sample_class_locations(seg, [1, 2], max_per_class=max_per_class)
    assert len(locations[1]) == expected  # min(budget, count), but at least 1% of the voxels
    assert (seg[tuple(locations[1].T)] == 1).all()
    assert locations[2].shape == (0, 3)


# -- whole cases ------------------------------------------------------------------------------
