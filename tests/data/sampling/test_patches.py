"""Foreground-oversampling patch sampler: shares, nnU-Net's box rule, TorchIO integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from _references import require
from multitask_unet.data.sampling.augmentation import (
    AugmentationConfig,
    build_patch_transforms,
    build_spatial_transform,
    window_size,
)
from multitask_unet.data.sampling.crop import crop_and_pad
from multitask_unet.data.sampling.loader import LoaderConfig
from multitask_unet.data.sampling.patches import (
    ForegroundPatchSampler,
    find_class_locations,
    parse_class_locations,
    patch_to_sample,
)
from multitask_unet.data.sampling.spatial import RandomAffineCrop
from multitask_unet.errors import ConfigError, DataError


def _subject(shape, blobs, *, label=1, case_id="c0", seed=0) -> tio.Subject:
    """A random image with label boxes ``{class: (lower, upper)}``."""
    seg = torch.zeros(1, *shape, dtype=torch.uint8)
    for cls, (lo, hi) in blobs.items():
        seg[0, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = cls
    image = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
    return tio.Subject(
        image=tio.ScalarImage(tensor=image),
        seg=tio.LabelMap(tensor=seg),
        label=label,
        case_id=case_id,
    )


def _binomial_ok(k: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(k / n - p) <= sigmas * np.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-9


@pytest.mark.parametrize("p_fg", [0.0, 1 / 3, 1.0])
def test_foreground_share_of_patches_matches_the_setting(p_fg) -> None:
    shape, patch, blob = (40, 40, 40), 8, ((30, 10, 20), (32, 12, 22))
    subject = _subject(shape, {2: blob})
    sampler = ForegroundPatchSampler((patch,) * 3, foreground_probability=p_fg)
    torch.manual_seed(0)
    n = 600
    hits = sum(bool(p["seg"].data.any()) for p in sampler(subject, num_patches=n))
    # a uniform patch (lower corner 0..32 per axis) touches the blob with probability h
    per_axis = [sum(lo <= b1 - 1 and lo + patch > b0 for lo in range(41 - patch)) / (41 - patch)
                for b0, b1 in zip(*blob)]  # fmt: skip
    h = float(np.prod(per_axis))
    assert _binomial_ok(hits, n, p_fg + (1 - p_fg) * h)


def test_forced_patches_pick_a_random_present_class() -> None:
    subject = _subject(
        (30, 30, 30), {1: ((2, 2, 2), (28, 28, 28)), 2: ((14, 14, 14), (16, 16, 16))}
    )
    sampler = ForegroundPatchSampler((6, 6, 6), foreground_probability=1.0)
    torch.manual_seed(1)
    centres = [int(p["seg"].data[0, 3, 3, 3]) for p in sampler(subject, num_patches=400)]
    assert set(centres) == {1, 2}  # never background, both classes although 2 is tiny
    assert _binomial_ok(centres.count(2), 400, 0.5)


def test_precomputed_class_locations_are_used() -> None:
    subject = _subject((20, 20, 20), {})
    subject["class_locations"] = {"1": [[0, 5, 6, 7]]}  # nnU-Net's layout, JSON keys
    sampler = ForegroundPatchSampler((4, 4, 4), foreground_probability=1.0)
    patch = next(iter(sampler(subject, num_patches=1)))
    assert patch[tio.LOCATION].tolist() == [3, 4, 5, 7, 8, 9]
    assert "class_locations" not in patch


@pytest.mark.parametrize(("label", "expect_lesion"), [(1, True), (None, False)])
def test_lesion_probability_centres_classification_patches(label, expect_lesion) -> None:
    subject = _subject(
        (30, 30, 30), {1: ((0, 0, 0), (30, 30, 12)), 2: ((20, 20, 20), (22, 22, 22))}, label=label
    )
    sampler = ForegroundPatchSampler(
        (6, 6, 6), foreground_probability=0.0, lesion_label=2, lesion_probability=1.0
    )
    torch.manual_seed(2)
    patches = list(sampler(subject, num_patches=40))
    on_lesion = [int(p["seg"].data[0, 3, 3, 3]) == 2 for p in patches]
    assert all(on_lesion) if expect_lesion else not any(on_lesion)
    assert all(p["center_class"] == (2 if expect_lesion else -1) for p in patches)


def _nnunet_loader(window, patch):
    mod = require("nnunetv2.training.dataloading.data_loader")
    dl = object.__new__(mod.nnUNetDataLoader)
    dl.patch_size, dl.need_to_pad = list(window), np.subtract(window, patch).astype(int)
    dl.has_ignore, dl.annotated_classes_key = False, (-1, 0, 1)
    return dl


@pytest.mark.parametrize("shape", [(6, 30, 33), (25, 40, 41)])
def test_window_boxes_follow_nnunet_get_bbox(shape) -> None:
    window, patch = (10, 12, 14), (8, 9, 12)
    dl = _nnunet_loader(window, patch)
    ours = ForegroundPatchSampler(patch, window_size=window, foreground_probability=1.0)
    for voxel in ([0, 0, 0], [3, 17, 30], [shape[0] - 1, shape[1] - 1, shape[2] - 1]):
        theirs, _ = dl.get_bbox(np.array(shape), True, {1: np.array([[0, *voxel]])})
        mine, cls = ours.choose_window(shape, {1: np.array([voxel])}, np.random.default_rng(0))
        assert mine.tolist() == list(theirs) and cls == 1
    np.random.seed(0)
    theirs = np.array([dl.get_bbox(np.array(shape), False, None)[0] for _ in range(1500)])
    rng, uniform = np.random.default_rng(0), ForegroundPatchSampler(patch, window_size=window)
    mine = np.array(
        [uniform.choose_window(shape, {}, rng)[0] for _ in range(1500)]
    )  # no classes: always uniform
    assert (mine.min(0) == theirs.min(0)).all() and (mine.max(0) == theirs.max(0)).all()


def test_windows_larger_than_the_volume_are_padded() -> None:
    subject = _subject((5, 7, 6), {1: ((1, 1, 1), (3, 3, 3))})
    sampler = ForegroundPatchSampler((8, 8, 8), foreground_probability=0.5)
    torch.manual_seed(0)
    for p in sampler(subject, num_patches=5):
        assert p["image"].shape == (1, 8, 8, 8) and p["seg"].data.dtype == torch.uint8


def test_patches_carry_label_case_id_and_augmentation() -> None:
    cfg = AugmentationConfig(p_rotation=1.0)
    patch = (6, 8, 8)
    sampler = ForegroundPatchSampler(
        patch,
        window_size=window_size(patch, cfg),
        spatial_transform=build_spatial_transform(cfg, patch_size=patch),
        transform=build_patch_transforms(cfg),
    )
    subject = _subject((12, 20, 20), {1: ((4, 4, 4), (8, 10, 10))}, label=2, case_id="x7")
    torch.manual_seed(0)
    p = next(iter(sampler(subject, num_patches=1)))
    sample = patch_to_sample(p)
    assert sample["image"].shape == (1, *patch) and sample["seg"].shape == (1, *patch)
    assert (sample["label"], sample["case_id"]) == (2, "x7")
    assert tuple((p[tio.LOCATION][3:] - p[tio.LOCATION][:3]).tolist()) == patch


def test_spatial_transform_is_passed_explicitly() -> None:
    """The sampler uses the ``spatial_transform`` it is given, whatever ``transform`` holds."""
    patch, window = (6, 8, 8), (10, 12, 12)
    subject = _subject((16, 20, 20), {1: ((4, 4, 4), (8, 10, 10))})
    identity = build_spatial_transform(AugmentationConfig.off(), patch_size=patch)
    out = []
    for spatial in (None, identity):
        sampler = ForegroundPatchSampler(patch, window_size=window, spatial_transform=spatial)
        out.append(sampler.sample(subject, rng=np.random.default_rng(3)))
    assert torch.equal(out[0]["image"].data, out[1]["image"].data)  # no rotation: a plain crop
    wired = LoaderConfig(patch_size=patch).patch_sampler()
    assert isinstance(wired.spatial_transform, RandomAffineCrop)
    assert not any(isinstance(t, RandomAffineCrop) for t in wired.transform.transforms)


def test_sampler_feeds_a_torchio_queue() -> None:
    subjects = [
        _subject((16, 16, 16), {1: ((4, 4, 4), (8, 8, 8))}, label=i, case_id=f"c{i}")
        for i in range(2)
    ]
    queue = tio.Queue(
        tio.SubjectsDataset(subjects),
        max_length=8,
        samples_per_volume=4,
        sampler=ForegroundPatchSampler((8, 8, 8)),
        num_workers=0,
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    patches = [queue[i] for i in range(len(queue))]
    assert len(patches) == 8
    assert sorted({(p["case_id"], p["label"]) for p in patches}) == [("c0", 0), ("c1", 1)]


@pytest.mark.parametrize("lower", [(-2, 3, 1), (0, 0, 0), (4, -3, 6), (9, 9, 9)])
def test_crop_and_pad_matches_numpy_pad_reference(lower, tmp_path) -> None:
    arr = np.arange(2 * 7 * 8 * 9, dtype=np.float32).reshape(2, 7, 8, 9)
    np.save(tmp_path / "a.npy", arr)
    size, pad = (5, 6, 4), 12
    ref = np.pad(arr, [(0, 0)] + [(pad, pad)] * 3)
    sl = tuple(slice(lo + pad, lo + pad + n) for lo, n in zip(lower, size))
    expected = ref[(slice(None), *sl)]
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert np.array_equal(crop_and_pad(mm, lower, size).numpy(), expected)
    assert np.array_equal(crop_and_pad(torch.from_numpy(arr), lower, size).numpy(), expected)


def test_find_class_locations_matches_argwhere_and_caps() -> None:
    seg = np.zeros((1, 10, 10, 10), dtype=np.uint8)
    seg[0, 1:3, 1:3, 1:3] = 1
    seg[0, 5:10, 5:10, 5:7] = 3
    locs = find_class_locations(seg)
    assert sorted(locs) == [1, 3]
    assert np.array_equal(locs[1], np.argwhere(seg[0] == 1))
    capped = find_class_locations(seg, max_per_class=10, min_fraction=0.5)
    assert len(capped[3]) == 25 and (seg[0][tuple(capped[3].T)] == 3).all()


def test_parse_class_locations_normalises_and_rejects() -> None:
    out = parse_class_locations({"2": [[0, 1, 2, 3]], 1: []})
    assert out[2].tolist() == [[1, 2, 3]] and out[1].shape == (0, 3)
    with pytest.raises(DataError, match="lesion"):
        parse_class_locations({"lesion": [[1, 2, 3]]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"foreground_probability": 1.5},
        {"window_size": (4, 8, 8)},
        {"lesion_probability": 0.5},
    ],
)
def test_sampler_rejects_bad_options(kwargs) -> None:
    with pytest.raises(ConfigError):
        ForegroundPatchSampler((6, 6, 6), **kwargs)
