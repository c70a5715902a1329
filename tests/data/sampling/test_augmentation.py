"""The nnU-Net-like TorchIO augmentation recipe, checked against nnU-Net's own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchio as tio

from _references import require
from multitask_unet.data.sampling.augmentation import (
    AugmentationConfig,
    RandomBrightness,
    RandomContrast,
    RandomGammaRetainStats,
    RandomLowResolution,
    build_augmentation,
    build_patch_transforms,
    build_spatial_transform,
    window_size,
)
from multitask_unet.data.sampling.spatial import RandomAffineCrop
from multitask_unet.errors import ConfigError


def _subject(shape: tuple[int, int, int], *, channels: int = 1, seed: int = 0) -> tio.Subject:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(channels, *shape, generator=g)
    seg = torch.randint(0, 3, (1, *shape), generator=g, dtype=torch.int64).to(torch.uint8)
    return tio.Subject(image=tio.ScalarImage(tensor=image), seg=tio.LabelMap(tensor=seg), label=1)


@pytest.mark.parametrize(
    ("patch_size", "degrees"),
    [
        ((16, 24, 20), (30.0, 30.0, 30.0)),
        ((64, 128, 192), (30.0, 30.0, 30.0)),
        ((9, 31, 17), (15.0, 0.0, 45.0)),
    ],
)
def test_window_size_matches_nnunet_get_patch_size(patch_size, degrees) -> None:
    nnunet = require("nnunetv2.training.data_augmentation.compute_initial_patch_size")
    rad = [(-math.radians(d), math.radians(d)) for d in degrees]
    expected = nnunet.get_patch_size(patch_size, *rad, (0.85, 1.25))
    assert window_size(patch_size, AugmentationConfig(rotation_degrees=degrees)) == tuple(expected)


def test_nnunet_config_follows_the_dummy_2d_rule_and_window() -> None:
    require("nnunetv2")
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

    patch = (32, 96, 128)  # 128 / 32 > 3: nnU-Net rotates in-plane only, 180 degrees
    cfg = AugmentationConfig.nnunet(patch)
    assert cfg.rotation_degrees == (180.0, 0.0, 0.0) and cfg.scaling_axes == (1, 2)
    expected = get_patch_size(patch, *[(-math.pi, math.pi)] * 3, (0.85, 1.25))
    expected[0] = patch[0]
    assert window_size(patch, cfg) == tuple(expected)
    assert AugmentationConfig.nnunet((64, 128, 128)) == AugmentationConfig()


def test_off_config_gives_patch_as_window_and_identity_crop() -> None:
    cfg = AugmentationConfig.off()
    assert window_size((8, 10, 12), cfg) == (8, 10, 12)
    subject = _subject((8, 10, 12))
    before = subject["image"].data.clone()
    out = build_augmentation(cfg, patch_size=(8, 10, 12))(subject)
    assert torch.equal(out["image"].data, before)


@pytest.mark.parametrize(
    "bad",
    [{"p_noise": 1.5}, {"gamma": (1.5, 0.7)}, {"mirror_axes": (0, 3)}, {"p_rotation": -0.1}],
)
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ConfigError):
        AugmentationConfig(**bad)


def test_config_round_trips_through_dict() -> None:
    cfg = AugmentationConfig(p_elastic=0.1, mirror_axes=(1, 2))
    assert AugmentationConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("patch_size", [(8, 8, 8), (7, 10, 9)])
def test_recipe_returns_patch_with_valid_labels(patch_size) -> None:
    cfg = AugmentationConfig(p_rotation=1.0, p_scaling=1.0, p_elastic=0.0)
    transform = build_augmentation(cfg, patch_size=patch_size)
    subject = _subject(window_size(patch_size, cfg))
    torch.manual_seed(0)
    out = transform(subject)
    assert out["image"].shape == (1, *patch_size) and out["image"].data.dtype == torch.float32
    assert out["seg"].data.dtype == torch.uint8
    assert set(out["seg"].data.unique().tolist()) <= {0, 1, 2}
    assert out["label"] == 1


def test_recipe_is_deterministic_under_a_seed() -> None:
    cfg = AugmentationConfig(**{f: 1.0 for f in ("p_rotation", "p_noise", "p_gamma", "p_contrast")})
    transform = build_augmentation(cfg, patch_size=(8, 8, 8))
    win = window_size((8, 8, 8), cfg)
    outs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        outs.append(transform(_subject(win))["image"].data)
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_recipe_is_the_spatial_transform_then_the_patch_transforms() -> None:
    cfg = AugmentationConfig(p_elastic=0.5)
    recipe = build_augmentation(cfg, patch_size=(8, 8, 8)).transforms
    rest = build_patch_transforms(cfg).transforms
    assert isinstance(recipe[0], RandomAffineCrop)
    assert [type(t) for t in recipe[1:]] == [type(t) for t in rest]
    spatial = build_spatial_transform(cfg, patch_size=(8, 8, 8))
    assert (spatial.patch_size, spatial.p_rotation) == ((8, 8, 8), cfg.p_rotation)
    assert build_patch_transforms(AugmentationConfig.off()) is None


def test_affine_identity_equals_centre_crop() -> None:
    subject = _subject((12, 14, 16))
    crop = subject["image"].data[:, 2:10, 3:11, 4:12].clone()
    t = RandomAffineCrop((8, 8, 8), rotation_degrees=(0, 0, 0), scaling=(1, 1), p_rotation=1)
    torch.manual_seed(0)
    out = t(subject)
    assert torch.allclose(out["image"].data, crop, atol=1e-5)


def test_affine_region_crop_gives_the_same_patch_as_the_whole_window() -> None:
    t = RandomAffineCrop((6, 8, 10))
    matrix = RandomAffineCrop.build_matrix((20.0, -25.0, 10.0), (1.2, 1.2, 1.2))
    window = _subject((15, 19, 21))
    full = t.resample(_subject((15, 19, 21)), matrix, center=[7.5, 9.5, 10.5])
    lower, size = t.region((15, 19, 21), matrix)
    assert np.prod(size) < 15 * 19 * 21  # reads less than the window
    sl = tuple(slice(int(a), int(a + n)) for a, n in zip(lower, size))
    part = tio.Subject(
        image=tio.ScalarImage(tensor=window["image"].data[(slice(None), *sl)].clone()),
        seg=tio.LabelMap(tensor=window["seg"].data[(slice(None), *sl)].clone()),
    )
    center = (np.array([15, 19, 21]) / 2 - lower).tolist()
    out = t.resample(part, matrix, center=center)
    assert torch.allclose(out["image"].data, full["image"].data, atol=1e-5)
    assert torch.equal(out["seg"].data, full["seg"].data)


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 1.3), (25.0, 1.0), (-40.0, 0.8)])
def test_affine_matches_nnunet_spatial_transform(angle, scale) -> None:
    spatial = require("batchgeneratorsv2.transforms.spatial.spatial")
    patch, win = (6, 8, 10), (11, 13, 17)
    subject = _subject(win)
    image, seg = subject["image"].data.clone(), subject["seg"].data.clone()
    theirs = spatial.SpatialTransform(
        patch, 0, False, p_rotation=1, rotation=math.radians(angle), p_scaling=1,
        scaling=scale, p_synchronize_scaling_across_axes=1, mode_seg="nearest",
    )(image=image.clone(), segmentation=seg.to(torch.int16))  # fmt: skip
    matrix = RandomAffineCrop.build_matrix((angle,) * 3, (scale,) * 3)
    ours = RandomAffineCrop(patch).resample(subject, matrix, center=[w / 2 for w in win])
    assert torch.allclose(ours["image"].data, theirs["image"], atol=1e-5)
    assert torch.equal(ours["seg"].data.to(torch.int16), theirs["segmentation"])


def _bgv2(name: str):
    return require(f"batchgeneratorsv2.transforms.intensity.{name}")


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("gamma", [0.8, 1.4])
def test_gamma_matches_nnunet(gamma, invert) -> None:
    mod = _bgv2("gamma")
    image = torch.randn(2, 5, 6, 7)
    theirs = mod.GammaTransform(gamma, float(invert), False, 1.0, 1.0)(image=image.clone())["image"]
    subject = tio.Subject(image=tio.ScalarImage(tensor=image.clone()))
    ours = RandomGammaRetainStats((gamma, gamma), invert=invert)(subject)["image"].data
    assert torch.allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_contrast_and_brightness_match_nnunet(factor) -> None:
    contrast, brightness = _bgv2("contrast"), _bgv2("brightness")
    image = torch.randn(2, 5, 6, 7)
    subject = tio.Subject(image=tio.ScalarImage(tensor=image.clone()))
    theirs = contrast.ContrastTransform(factor, True, False, 1.0)(image=image.clone())["image"]
    ours = RandomContrast((factor, factor))(subject)["image"].data
    assert torch.allclose(ours, theirs, atol=1e-5)
    mbt = brightness.MultiplicativeBrightnessTransform(factor, False, 1.0)
    theirs = mbt(image=image.clone())["image"]
    ours = RandomBrightness((factor, factor))(subject)["image"].data
    assert torch.allclose(ours, image * factor, atol=1e-6)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_low_resolution_changes_detail_but_keeps_shape_and_labels() -> None:
    subject = _subject((8, 12, 16))
    before_image, before_seg = subject["image"].data.clone(), subject["seg"].data.clone()
    out = RandomLowResolution((0.5, 0.5), p_per_channel=1.0)(subject)
    assert out["image"].shape == (1, 8, 12, 16)
    assert not torch.allclose(out["image"].data, before_image)
    assert out["image"].data.std() < before_image.std()  # averaging removes detail
    assert torch.equal(out["seg"].data, before_seg)  # intensity only


def test_intensity_transforms_leave_label_maps_alone() -> None:
    subject = _subject((6, 6, 6))
    seg = subject["seg"].data.clone()
    for t in (RandomBrightness(), RandomContrast(), RandomGammaRetainStats(invert=True)):
        subject = t(subject)
    assert torch.equal(subject["seg"].data, seg)
