"""The device backend's operations and parameter draws against the TorchIO (workers) recipe.

Each batched operation is compared with the per-patch TorchIO transform given the same
parameters; the parameter draws are compared with the recipe's configuration (probabilities and
ranges) and, where TorchIO records them, with the TorchIO recipe's own draws, within tolerances
derived from the number of draws (5 standard errors).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchio as tio
from scipy import ndimage, stats

import multitask_unet.data.sampling.augmentation as cpu_augmentation
from multitask_unet.data.sampling.augmentation import (
    AugmentationConfig,
    RandomContrast,
    RandomGammaRetainStats,
    RandomLowResolution,
    build_patch_transforms,
    build_spatial_transform,
    window_size,
)
from multitask_unet.data.sampling.batch import Batch
from multitask_unet.data.sampling.device_augmentation import (
    DeviceAugmentation,
    affine_matrices,
    draw_augmentation,
)
from multitask_unet.data.sampling.device_intensity import (
    contrast,
    elastic_deform,
    elastic_field,
    gamma_retain_stats,
    gaussian_blur,
    low_resolution,
)
from multitask_unet.data.sampling.spatial import affine_matrix
from multitask_unet.errors import ShapeError

N_DRAWS = 20_000
SIGMAS = 5.0


def _close_fraction(observed: float, p: float, n: int) -> bool:
    """Within 5 binomial standard errors of ``p`` (exactly ``p`` when it is 0 or 1)."""
    return abs(observed - p) <= SIGMAS * math.sqrt(p * (1 - p) / n) + 1e-12


def _same_fraction(a: float, b: float, n_a: int, n_b: int) -> bool:
    """Two observed fractions agree within 5 standard errors of their difference."""
    p = (a * n_a + b * n_b) / (n_a + n_b)
    return abs(a - b) <= SIGMAS * math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b)) + 1e-12


def _window_batch(cfg: AugmentationConfig, patch: tuple[int, int, int], b: int = 4) -> Batch:
    win = window_size(patch, cfg)
    g = torch.Generator().manual_seed(1)
    image = torch.randn(b, 2, *win, generator=g)
    seg = torch.randint(0, 3, (b, 1, *win), generator=g).to(torch.uint8)
    return Batch(image=image, seg=seg, label=torch.zeros(b, dtype=torch.long),
                 has_seg=torch.ones(b, dtype=torch.bool), case_id=tuple("abcd"[:b]))  # fmt: skip


# -- the operations, given the same parameters --------------------------------------------------
@pytest.mark.parametrize("patch", [(8, 10, 12), (7, 9, 6)])
def test_rotation_and_scaling_resample_as_the_workers_do(patch: tuple[int, int, int]) -> None:
    cfg = AugmentationConfig(p_rotation=1.0, p_scaling=1.0)
    aug = DeviceAugmentation(cfg, patch_size=patch)
    batch = _window_batch(cfg, patch)
    draws = aug.draw(len(batch), 2)
    image, seg = aug._spatial(batch.image, batch.seg, draws)
    spatial = build_spatial_transform(cfg, patch_size=patch)
    for i in range(len(batch)):
        matrix = torch.from_numpy(
            affine_matrix(draws.angles[i].tolist(), draws.scales[i].tolist())
        ).float()
        subject = tio.Subject(image=tio.ScalarImage(tensor=batch.image[i].clone()),
                              seg=tio.LabelMap(tensor=batch.seg[i].clone()))  # fmt: skip
        center = [s / 2 for s in subject.spatial_shape]
        ref = spatial.resample(subject, matrix, center=center)
        torch.testing.assert_close(image[i], ref["image"].data, atol=1e-4, rtol=1e-4)
        agree = (seg[i] == ref["seg"].data).float().mean()
        assert agree > 0.99  # nearest-neighbour ties may round differently
    assert set(seg.unique().tolist()) <= {0, 1, 2}


def test_samples_without_rotation_or_scaling_are_the_centre_crop() -> None:
    patch = (8, 10, 12)
    cfg = AugmentationConfig(p_rotation=0.5, p_scaling=0.0)
    batch = _window_batch(cfg, patch)
    aug = DeviceAugmentation(cfg, patch_size=patch)
    draws = aug.draw(len(batch), 2)
    image, seg = aug._spatial(batch.image, batch.seg, draws)
    still = (~draws.rotate).nonzero().flatten().tolist()
    assert still  # the seed gives some
    crop = build_spatial_transform(cfg, patch_size=patch)
    for i in still:
        subject = tio.Subject(image=tio.ScalarImage(tensor=batch.image[i].clone()))
        ref = crop.resample(subject, None, center=[s / 2 for s in subject.spatial_shape])
        assert torch.equal(image[i], ref["image"].data)
        box = [
            slice(w // 2 - p // 2, w // 2 - p // 2 + p) for w, p in zip(batch.seg.shape[2:], patch)
        ]
        assert torch.equal(seg[i], batch.seg[i][(slice(None), *box)])


def test_affine_matrices_are_the_workers_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    angles = (torch.rand(5, 3, generator=g) - 0.5) * 360
    scales = 0.5 + torch.rand(5, 3, generator=g)
    ours = affine_matrices(angles, scales)
    for i in range(5):
        ref = affine_matrix(angles[i].tolist(), scales[i].tolist())
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-12)


def test_blur_is_scipys_gaussian_filter() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 7, 9, 5, generator=g)
    sigma = torch.tensor([[0.5, 0.7, 1.0], [1.0, 0.55, 0.8], [0.9, 0.9, 0.6]])
    out = gaussian_blur(x, sigma)
    for i, c in np.ndindex(3, 2):
        ref = ndimage.gaussian_filter(x[i, c].numpy(), sigma[i].tolist())
        np.testing.assert_allclose(out[i, c].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_contrast_and_gamma_are_the_workers_formulas(
    factor: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_augmentation, "_factor", lambda lo, hi: factor)
    x = torch.randn(2, 3, 5, 6, 7, generator=torch.Generator().manual_seed(3))
    values = torch.full((2, 3), factor)
    for ours, theirs in [
        (contrast(x, values), RandomContrast()),
        (gamma_retain_stats(x, values), RandomGammaRetainStats()),
        (gamma_retain_stats(x, values, invert=True), RandomGammaRetainStats(invert=True)),
    ]:
        for i, c in np.ndindex(2, 3):
            torch.testing.assert_close(ours[i, c], theirs.channel(x[i, c]), atol=1e-5, rtol=1e-5)


def test_low_resolution_is_the_workers_resizing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_augmentation, "uniform", lambda lo, hi: 0.6)
    x = torch.randn(1, 2, 9, 10, 11, generator=torch.Generator().manual_seed(4))
    apply = torch.tensor([[True, False]])
    out = low_resolution(x, torch.full((1, 2), 0.6), apply, axes=(1, 2))
    ref = RandomLowResolution(axes=(1, 2), p_per_channel=1.0).channel(x[0, 0])
    torch.testing.assert_close(out[0, 0], ref)
    assert torch.equal(out[0, 1], x[0, 1])


def test_elastic_field_is_simpleitks_bspline() -> None:
    sitk = pytest.importorskip("SimpleITK")
    shape = (11, 8, 13)
    cp = torch.rand(1, 7, 7, 7, 3, generator=torch.Generator().manual_seed(5)) * 4 - 2
    field = elastic_field(cp, shape)[0]
    image = sitk.Image(list(shape), sitk.sitkFloat32)
    transform = sitk.BSplineTransformInitializer(image, [4, 4, 4])
    transform.SetParameters(cp[0].double().numpy().flatten(order="F").tolist())
    for point in [(0, 0, 0), (10, 7, 12), (5, 3, 9), (2, 6, 1)]:
        moved = np.array(transform.TransformPoint([float(v) for v in point])) - np.array(point)
        np.testing.assert_allclose(field[point].numpy(), moved, atol=1e-9)


def test_elastic_deformation_keeps_the_labels() -> None:
    g = torch.Generator().manual_seed(6)
    image = torch.randn(2, 1, 12, 12, 12, generator=g)
    seg = torch.randint(1, 4, (2, 1, 12, 12, 12), generator=g).to(torch.uint8)
    cp = (torch.rand(2, 7, 7, 7, 3, generator=g) - 0.5) * 15
    out, labels = elastic_deform(image, seg, elastic_field(cp, (12, 12, 12)))
    assert out.shape == image.shape and not torch.equal(out, image)
    assert set(labels.unique().tolist()) <= {1, 2, 3}
    zero, same = elastic_deform(image, seg, torch.zeros(2, 12, 12, 12, 3))
    torch.testing.assert_close(zero, image)
    assert torch.equal(same, seg)


# -- the whole recipe ----------------------------------------------------------------------------
def test_augmenting_a_batch_gives_patches_with_the_original_labels() -> None:
    patch = (8, 8, 8)
    cfg = AugmentationConfig(p_rotation=0.9, p_scaling=0.9, p_elastic=0.5, p_noise=0.5,
                             p_blur=0.5, p_low_resolution=0.5)  # fmt: skip
    batch = _window_batch(cfg, patch)
    before = batch.image.clone()
    aug = DeviceAugmentation(cfg, patch_size=patch, seed=3)
    out = aug(batch)
    assert out.image.shape == (4, 2, *patch) and out.seg.dtype == torch.uint8
    assert set(out.seg.unique().tolist()) <= {0, 1, 2}
    assert torch.equal(batch.image, before)  # the input is not modified
    aug.set_epoch(0)
    assert torch.equal(aug(batch).image, out.image)  # (seed, epoch) -> the same batch
    aug.set_epoch(1)
    assert not torch.equal(aug(batch).image, out.image)
    state = aug.state_dict()
    again = aug(batch).image
    aug.load_state_dict(state)
    assert torch.equal(aug(batch).image, again)
    with pytest.raises(ShapeError, match="smaller than the patch"):
        DeviceAugmentation(cfg, patch_size=(16, 16, 16))(batch)


def test_ranks_draw_different_augmentations() -> None:
    a, b = (DeviceAugmentation(patch_size=(8, 8, 8), rank=r).draw(64, 1) for r in (0, 1))
    assert not torch.equal(a.mirror, b.mirror)


# -- the parameter draws ------------------------------------------------------------------------
CONFIGS = {
    "nnunet": AugmentationConfig(),
    "dummy_2d": AugmentationConfig.nnunet((16, 128, 128)),
    "custom": AugmentationConfig(p_rotation=0.55, rotation_degrees=(10.0, 0.0, 45.0),
                                 p_scaling=0.35, scaling=(0.9, 1.2), scaling_axes=(0, 2),
                                 p_elastic=0.3, p_noise=0.45, noise_std=(0.1, 0.2), p_blur=0.6,
                                 blur_sigma=(0.3, 1.4), p_brightness=0.7, brightness=(0.5, 0.9),
                                 p_contrast=0.05, contrast=(1.1, 1.6), p_low_resolution=0.8,
                                 low_resolution_zoom=(0.3, 0.7), p_gamma=0.65,
                                 p_gamma_inverted=0.25, gamma=(0.5, 2.0), mirror_axes=(1,),
                                 p_mirror=0.3),
}  # fmt: skip


def draw_mismatches(cfg: AugmentationConfig, n: int = N_DRAWS, seed: int = 0) -> list[str]:
    """What of the device's draws disagrees with ``cfg`` (empty when all agree)."""
    d = draw_augmentation(cfg, n, 2, generator=torch.Generator().manual_seed(seed))
    bad: list[str] = []

    def fraction(name: str, flags: torch.Tensor, p: float) -> None:
        if not _close_fraction(float(flags.double().mean()), p, flags.numel()):
            bad.append(f"{name}: {float(flags.double().mean()):.4f} vs p {p}")

    def within(name: str, values: torch.Tensor, lo: float, hi: float) -> None:
        if len(values) and not (values.min() >= lo and values.max() <= hi):
            bad.append(f"{name}: outside [{lo}, {hi}]")
        gap = (hi - lo) * 20 / max(len(values), 1)  # the draws fill the range (P(miss) ~ e^-20)
        if len(values) and not (values.min() <= lo + gap and values.max() >= hi - gap):
            bad.append(f"{name}: [{float(values.min()):.4f}, {float(values.max()):.4f}] does "
                       f"not fill [{lo}, {hi}]")  # fmt: skip
        mean, se = (lo + hi) / 2, (hi - lo) / math.sqrt(12 * max(len(values), 1))
        if len(values) and hi > lo and abs(float(values.mean()) - mean) > SIGMAS * se:
            bad.append(f"{name}: mean {float(values.mean()):.4f} vs {mean:.4f}")

    def bg(name: str, values: torch.Tensor, lo: float, hi: float) -> None:
        if lo < 1 < hi:
            below = values < 1
            fraction(f"{name} below 1", below, 0.5)
            within(f"{name} below 1", values[below], lo, 1.0)
            within(f"{name} above 1", values[~below], 1.0, hi)
        else:
            within(name, values, lo, hi)

    for key in ("rotation", "scaling", "elastic", "noise", "blur", "brightness", "contrast",
                "low_resolution", "gamma", "gamma_inverted"):  # fmt: skip
        flag = {"rotation": d.rotate, "scaling": d.scale}.get(key, getattr(d, key, None))
        fraction(key, flag, getattr(cfg, f"p_{key}"))
    for axis in range(3):
        degrees = cfg.rotation_degrees[axis]
        within(f"angle {axis}", d.angles[d.rotate, axis], -degrees, degrees)
        p = cfg.p_mirror if axis in cfg.mirror_axes else 0.0
        fraction(f"mirror {axis}", d.mirror[:, axis], p)
        scaled = d.scales[d.scale, axis]
        if axis in cfg.scaling_axes:
            within(f"scale {axis}", scaled, *cfg.scaling)
        elif len(scaled) and not bool((scaled == 1).all()):
            bad.append(f"scale {axis}: an axis outside scaling_axes was scaled")
        within(f"blur sigma {axis}", d.blur_sigma[:, axis], *cfg.blur_sigma)
    if not bool((d.angles[~d.rotate] == 0).all()) or not bool((d.scales[~d.scale] == 1).all()):
        bad.append("untransformed samples carry angles or scales")
    within("noise std", d.noise_std, *cfg.noise_std)
    bg("brightness", d.brightness_factor.flatten(), *cfg.brightness)
    bg("contrast", d.contrast_factor.flatten(), *cfg.contrast)
    bg("gamma", d.gamma_value.flatten(), *cfg.gamma)
    bg("inverted gamma", d.gamma_inverted_value.flatten(), *cfg.gamma)
    fraction("low resolution per channel", d.low_resolution_channels, 0.5)
    within("zoom", d.low_resolution_zoom.flatten(), *cfg.low_resolution_zoom)
    if cfg.p_elastic > 0:
        assert d.control_points is not None
        within("control points", d.control_points[:, 2:-2, 2:-2].flatten(), -7.5, 7.5)
        if bool(d.control_points[:, :2].any()) or bool(d.control_points[:, :, -2:].any()):
            bad.append("elastic: locked borders moved")
    return bad


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_draws_follow_the_configuration(name: str) -> None:
    assert draw_mismatches(CONFIGS[name]) == []


def test_the_draw_check_can_fail() -> None:
    """A recipe 0.03 off in one probability, or with a narrower range, is caught."""
    cfg = CONFIGS["custom"]
    shifted = AugmentationConfig(**{**cfg.to_dict(), "p_blur": cfg.p_blur + 0.03})
    narrow = AugmentationConfig(**{**cfg.to_dict(), "gamma": (0.6, 2.0)})
    d = draw_augmentation(shifted, N_DRAWS, 2, generator=torch.Generator().manual_seed(0))
    assert not _close_fraction(float(d.blur.double().mean()), cfg.p_blur, N_DRAWS)
    d = draw_augmentation(narrow, N_DRAWS, 2, generator=torch.Generator().manual_seed(0))
    below = d.gamma_value[d.gamma_value < 1]
    mean, se = (0.5 + 1.0) / 2, 0.5 / math.sqrt(12 * len(below))
    assert abs(float(below.mean()) - mean) > SIGMAS * se


@pytest.mark.parametrize("name", ["nnunet", "dummy_2d", "custom"])
def test_rotation_and_scaling_draws_match_the_workers(name: str) -> None:
    """The TorchIO path's matrices, decomposed into angles and scale, against ours (a range
    of 27 instead of 30 degrees, or of (0.7, 1.3) instead of (0.7, 1.4), fails)."""
    cfg, n = CONFIGS[name], 10_000
    spatial = build_spatial_transform(cfg, patch_size=(8, 8, 8))
    torch.manual_seed(0)
    matrices = [spatial.matrix() for _ in range(n)]
    moved = [m.double().numpy() for m in matrices if m is not None]
    d = draw_augmentation(cfg, n, 1, generator=torch.Generator().manual_seed(1))
    p_either = 1 - (1 - cfg.p_rotation) * (1 - cfg.p_scaling)
    assert _same_fraction(len(moved) / n, float((d.rotate | d.scale).double().mean()), n, n)
    assert _close_fraction(len(moved) / n, p_either, n)
    ours = affine_matrices(d.angles, d.scales)[d.rotate | d.scale].numpy()
    parts = _decomposed(moved, list(ours), cfg.scaling_axes)
    scaled, rotated = parts[0], parts[1]  # the scaled and the rotated samples of each
    if cfg.p_scaling > 0:
        assert _same_fraction(len(scaled[1]) / n, len(scaled[2]) / n, n, n)
    if cfg.p_rotation > 0:
        assert _same_fraction(len(rotated[1]) / n, len(rotated[2]) / n, n, n)
    for label, theirs_v, ours_v in parts:
        ks = stats.ks_2samp(theirs_v, ours_v)
        assert ks.pvalue > 1e-5, f"{name}: {label} differs (KS p = {ks.pvalue:.2g})"
        # the same range: both fill it to within 20 / n of its width (P(miss) ~ e^-20)
        gap = (theirs_v.max() - theirs_v.min()) * 20 / min(len(theirs_v), len(ours_v))
        assert abs(theirs_v.max() - ours_v.max()) <= gap, f"{name}: {label} maxima differ"
        assert abs(theirs_v.min() - ours_v.min()) <= gap, f"{name}: {label} minima differ"


def _decomposed(
    theirs: list[np.ndarray], ours: list[np.ndarray], scaling_axes: tuple[int, ...]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Scale (from the determinant) and the three angles of ``Rz Ry Rx`` of both lists."""

    def parts(ms: list[np.ndarray]) -> np.ndarray:
        out = []
        for m in ms:
            s = abs(np.linalg.det(m)) ** (1 / len(scaling_axes)) if scaling_axes else 1.0
            r = m / np.array([s if a in scaling_axes else 1.0 for a in range(3)])[None]
            out.append([s, math.degrees(math.atan2(r[2, 1], r[2, 2])),
                        math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0])))),
                        math.degrees(math.atan2(r[1, 0], r[0, 0]))])  # fmt: skip
        return np.asarray(out).round(4)  # the workers' matrices are float32

    a, b = parts(theirs), parts(ours)
    out = [("scale", a[a[:, 0] != 1, 0], b[b[:, 0] != 1, 0])]  # the scaled samples
    rotated_a, rotated_b = (a[:, 1:] != 0).any(1), (b[:, 1:] != 0).any(1)
    for i, name in enumerate(["rx", "ry", "rz"], start=1):
        out.append((name, a[rotated_a, i], b[rotated_b, i]))  # the rotated samples
    return out


def test_noise_blur_and_mirror_draws_match_torchio() -> None:
    """TorchIO records its noise std, blur sigmas and flipped axes; compare with our draws."""
    cfg, n = CONFIGS["custom"], 3000
    transforms = build_patch_transforms(
        AugmentationConfig(
            **{
                **cfg.to_dict(),
                "p_elastic": 0.0,
                "p_brightness": 0.0,
                "p_contrast": 0.0,
                "p_low_resolution": 0.0,
                "p_gamma": 0.0,
                "p_gamma_inverted": 0.0,
            }
        )
    )
    assert transforms is not None
    torch.manual_seed(0)
    noise, blur, flips = [], [], np.zeros(3)
    for _ in range(n):
        subject = tio.Subject(image=tio.ScalarImage(tensor=torch.zeros(1, 3, 3, 3)))
        for t in transforms(subject).applied_transforms:
            name, args = t
            if name == "Noise":
                noise.append(args["std"]["image"])
            elif name == "Blur":
                blur.append(args["std"]["image"])
            elif name == "Flip":
                flips[list(args["axes"])] += 1
    d = draw_augmentation(cfg, n, 1, generator=torch.Generator().manual_seed(2))
    assert _same_fraction(len(noise) / n, float(d.noise.double().mean()), n, n)
    assert _same_fraction(len(blur) / n, float(d.blur.double().mean()), n, n)
    for axis in range(3):
        assert _same_fraction(flips[axis] / n, float(d.mirror[:, axis].double().mean()), n, n)
    assert stats.ks_2samp(noise, d.noise_std[d.noise].numpy()).pvalue > 1e-5
    blur_arr = np.asarray(blur)
    for axis in range(3):
        ours = d.blur_sigma[d.blur, axis].numpy()
        assert stats.ks_2samp(blur_arr[:, axis], ours).pvalue > 1e-5
