"""The augmentation recipe applied to whole batches on the training device (``torch`` only).

With ``AugmentationConfig.backend: "device"`` the loader's workers only crop: a
:class:`WindowSampler` cuts the *window* around each patch (the patch enlarged for rotation and
scaling by :func:`~multitask_unet.data.sampling.augmentation.window_size`, or the patch itself
when the recipe neither rotates nor scales) and :class:`DeviceAugmentation` turns a batch of
windows, already on the device, into a batch of augmented patches. It follows the TorchIO recipe
of :mod:`~multitask_unet.data.sampling.augmentation` step by step, with the same probabilities,
ranges and formulas:

1. rotation and scaling (``affine_grid`` / ``grid_sample`` from the window: trilinear for
   images, nearest for labels, zeros outside the window); other samples are centre-cropped;
2. elastic deformation (when ``p_elastic > 0``; TorchIO's B-spline field, see
   :func:`~multitask_unet.data.sampling.device_intensity.elastic_field`);
3. noise, blur, brightness, contrast, low resolution, inverted gamma, gamma
   (:mod:`~multitask_unet.data.sampling.device_intensity`);
4. mirroring per axis.

Each sample's parameters are drawn by :func:`draw_augmentation` from one CPU
``torch.Generator`` that :meth:`DeviceAugmentation.set_epoch` seeds from ``(seed, epoch, rank)``,
as the loader seeds its draws, so a run is reproducible and resumes exactly without storing
generator state (:meth:`~DeviceAugmentation.state_dict` exists for loops that stop mid-epoch).
Noise is drawn on the device from a per-batch seed of that generator.

Where it differs from the workers' recipe (the distributions are the same; the values drawn
are not): the random streams differ; noise values depend on the device's generator; the elastic
displacement is along the array axes where TorchIO's follows its LPS frame (the sign of the
first two components flips; the control points are symmetric about 0); ``grid_sample`` rounds
nearest-neighbour ties to even where SimpleITK rounds them up; workers send the whole window to
the device where the TorchIO path crops only the box the rotation reads.

Example:
    >>> import torch
    >>> from multitask_unet.data.sampling.batch import Batch
    >>> aug = DeviceAugmentation(AugmentationConfig(), patch_size=(8, 8, 8), seed=0)
    >>> win = aug.window_size
    >>> batch = Batch.collate([{"image": torch.rand(1, *win), "label": 0, "case_id": "a",
    ...                         "seg": torch.zeros(1, *win, dtype=torch.uint8)}] * 3)
    >>> aug(batch).image.shape
    torch.Size([3, 1, 8, 8, 8])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio
from torch import Tensor

from multitask_unet.data.sampling.augmentation import AugmentationConfig, window_size
from multitask_unet.data.sampling.batch import Batch
from multitask_unet.data.sampling.device_intensity import (
    ELASTIC_CONTROL_POINTS,
    ELASTIC_MAX_DISPLACEMENT,
    brightness,
    contrast,
    elastic_deform,
    elastic_field,
    gamma_retain_stats,
    gaussian_blur,
    low_resolution,
)
from multitask_unet.data.sampling.patches import CENTER_CLASS_KEY, ForegroundPatchSampler
from multitask_unet.errors import ConfigError, ShapeError

__all__ = [
    "AugmentationDraws",
    "DeviceAugmentation",
    "WindowSampler",
    "affine_matrices",
    "device_augmentation_for",
    "draw_augmentation",
]

_STREAM = 0x617567  # tells the augmentation's seeds apart from the loader's
_F64 = torch.float64


@dataclass(frozen=True)
class AugmentationDraws:
    """Every random parameter of one batch, one row per sample (CPU tensors).

    A flag says whether a transform applies to a sample; its parameters are drawn for every
    sample (so the generator advances the same way whatever is applied) and used where it does.
    Angles are in degrees, scales per axis ``(D, H, W)``, sigmas in voxels; ``(B, C)`` values are
    per channel. ``control_points`` is None unless the recipe deforms elastically.
    """

    rotate: Tensor
    angles: Tensor
    scale: Tensor
    scales: Tensor
    elastic: Tensor
    control_points: Tensor | None
    noise: Tensor
    noise_std: Tensor
    blur: Tensor
    blur_sigma: Tensor
    brightness: Tensor
    brightness_factor: Tensor
    contrast: Tensor
    contrast_factor: Tensor
    low_resolution: Tensor
    low_resolution_channels: Tensor
    low_resolution_zoom: Tensor
    gamma_inverted: Tensor
    gamma_inverted_value: Tensor
    gamma: Tensor
    gamma_value: Tensor
    mirror: Tensor
    noise_seed: int


def draw_augmentation(
    config: AugmentationConfig,
    batch_size: int,
    channels: int,
    *,
    generator: torch.Generator | None = None,
) -> AugmentationDraws:
    """Draw the parameters of ``batch_size`` samples as the TorchIO recipe draws one patch's.

    Rotation ``U(-d, d)`` per axis and scaling ``U(low, high)`` (one factor for
    ``scaling_axes``) as :class:`~multitask_unet.data.sampling.spatial.RandomAffineCrop`;
    factors straddling 1 (brightness, contrast, gamma) below 1 half of the time, as nnU-Net's
    ``BGContrast``; every transform with its ``p_*``, low resolution per channel with 0.5,
    mirroring per axis with ``p_mirror``.
    """
    cfg, b, c, g = config, batch_size, channels, generator

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=_F64)

    def flags(p: float, *shape: int) -> Tensor:
        return rand(*(shape or (b,))) < p

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * rand(*shape)

    def factors(lo: float, hi: float) -> Tensor:  # BGContrast
        u = rand(b, c)
        if hi <= 1.0 or lo >= 1.0:
            return lo + (hi - lo) * u
        return torch.where(rand(b, c) < 0.5, lo + (1.0 - lo) * u, 1.0 + (hi - 1.0) * u)

    rotate = flags(cfg.p_rotation)
    angles = uniform(-1.0, 1.0, b, 3) * torch.tensor(cfg.rotation_degrees, dtype=_F64)
    scale = flags(cfg.p_scaling)
    factor = torch.where(scale, uniform(*cfg.scaling, b), 1.0)
    on_axes = torch.tensor([a in cfg.scaling_axes for a in range(3)])
    control_points = None
    if cfg.p_elastic > 0:
        k = ELASTIC_CONTROL_POINTS
        control_points = (rand(b, k, k, k, 3) - 0.5) * (2 * ELASTIC_MAX_DISPLACEMENT)
        for i in range(2):  # TorchIO locks two borders of the first two axes only
            control_points[:, [i, -1 - i]] = 0
            control_points[:, :, [i, -1 - i]] = 0
    return AugmentationDraws(
        rotate=rotate,
        angles=torch.where(rotate[:, None], angles, 0.0),
        scale=scale,
        scales=torch.where(on_axes[None], factor[:, None], 1.0),
        elastic=flags(cfg.p_elastic),
        control_points=control_points,
        noise=flags(cfg.p_noise),
        noise_std=uniform(*cfg.noise_std, b),
        blur=flags(cfg.p_blur),
        blur_sigma=uniform(*cfg.blur_sigma, b, 3),
        brightness=flags(cfg.p_brightness),
        brightness_factor=factors(*cfg.brightness),
        contrast=flags(cfg.p_contrast),
        contrast_factor=factors(*cfg.contrast),
        low_resolution=flags(cfg.p_low_resolution),
        low_resolution_channels=flags(0.5, b, c),
        low_resolution_zoom=uniform(*cfg.low_resolution_zoom, b, c),
        gamma_inverted=flags(cfg.p_gamma_inverted),
        gamma_inverted_value=factors(*cfg.gamma),
        gamma=flags(cfg.p_gamma),
        gamma_value=factors(*cfg.gamma),
        mirror=flags(cfg.p_mirror, b, 3) & torch.tensor([a in cfg.mirror_axes for a in range(3)]),
        noise_seed=int(torch.randint(0, 2**62, (1,), generator=g)),
    )


def affine_matrices(angles_degrees: Tensor, scales: Tensor) -> Tensor:
    """``Rz @ Ry @ Rx @ diag(scales)`` per sample (as
    :func:`~multitask_unet.data.sampling.spatial.affine_matrix`): ``(B, 3)`` -> ``(B, 3, 3)``."""
    a = torch.deg2rad(angles_degrees.to(_F64))
    cos, sin = a.cos(), a.sin()
    one, zero = torch.ones_like(a[:, 0]), torch.zeros_like(a[:, 0])

    def mat(*rows: Tensor) -> Tensor:
        return torch.stack(rows, -1).reshape(-1, 3, 3)

    c0, c1, c2, s0, s1, s2 = cos[:, 0], cos[:, 1], cos[:, 2], sin[:, 0], sin[:, 1], sin[:, 2]
    rx = mat(one, zero, zero, zero, c0, -s0, zero, s0, c0)
    ry = mat(c1, zero, s1, zero, one, zero, -s1, zero, c1)
    rz = mat(c2, -s2, zero, s2, c2, zero, zero, zero, one)
    return rz @ ry @ rx @ torch.diag_embed(scales.to(_F64))


def _rows(mask: Tensor, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """The samples a transform applies to: CPU indices (for the draws) and device indices."""
    rows = mask.nonzero().flatten()
    return (rows, rows.to(device)) if len(rows) else None


class DeviceAugmentation:
    """The augmentation recipe on batches of windows, on the batch's device.

    Args:
        config: Strengths and probabilities (default: :class:`AugmentationConfig`'s).
        patch_size: Output patch ``(D, H, W)``.
        seed: Base seed (the run's seed).
        rank: Rank of this process; ranks draw different augmentations.

    Call :meth:`set_epoch` before each epoch, then ``augment(batch)`` on every batch of windows
    (:attr:`window_size`, as the :class:`WindowSampler` crops them). Any input at least the
    patch works: rotation and scaling resample about its centre (zeros where they read outside
    it), other samples are centre-cropped.

    Attributes:
        window_size: ``(D, H, W)`` of the windows to crop around each patch, larger than
            ``patch_size`` where rotation or scaling needs the margin.
    """

    def __init__(
        self,
        config: AugmentationConfig | None = None,
        *,
        patch_size: Sequence[int],
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.config = config or AugmentationConfig()
        self.patch_size = tuple(int(v) for v in patch_size)
        self.window_size = window_size(self.patch_size, self.config)
        self.seed, self.rank = int(seed), int(rank)
        self.generator = torch.Generator()
        self._noise_generators: dict[torch.device, torch.Generator] = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Seed the draws of ``epoch`` from ``(seed, epoch, rank)``."""
        self.epoch = int(epoch)
        ss = np.random.SeedSequence([self.seed, self.epoch, self.rank, _STREAM])
        self.generator.manual_seed(int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the generator's state (to stop and continue within an epoch)."""
        return {"epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"].cpu())

    def draw(self, batch_size: int, channels: int) -> AugmentationDraws:
        """The next batch's parameters (:func:`draw_augmentation` with this generator)."""
        return draw_augmentation(self.config, batch_size, channels, generator=self.generator)

    def __call__(self, batch: Batch) -> Batch:
        """The batch of windows as a batch of augmented patches (same device, new tensors)."""
        draws = self.draw(len(batch), int(batch.image.shape[1]))
        image, seg = self.apply(batch.image, batch.seg, draws)
        return dataclasses.replace(batch, image=image, seg=seg)

    def apply(self, image: Tensor, seg: Tensor, draws: AugmentationDraws) -> tuple[Tensor, Tensor]:
        """Augment ``(B, C, *window)`` images and ``(B, 1, *window)`` labels with ``draws``.

        Returns:
            ``(B, C, *patch_size)`` float images and labels of ``seg``'s dtype whose values all
            occur in ``seg``.
        """
        if any(s < p for s, p in zip(image.shape[2:], self.patch_size, strict=True)):
            raise ShapeError(
                f"DeviceAugmentation got windows {tuple(image.shape[2:])}, smaller than the patch "
                f"{self.patch_size}; crop windows of {self.window_size} (WindowSampler)"
            )
        cfg, dev = self.config, image.device
        image, seg = self._spatial(image.float(), seg, draws)
        if (rows := _rows(draws.elastic, dev)) is not None:
            assert draws.control_points is not None
            field = elastic_field(draws.control_points[rows[0]].to(dev), self.patch_size)
            image[rows[1]], seg[rows[1]] = elastic_deform(image[rows[1]], seg[rows[1]], field)
        if (rows := _rows(draws.noise, dev)) is not None:
            x = image[rows[1]]
            std = draws.noise_std[rows[0]].to(dev, x.dtype).reshape(-1, 1, 1, 1, 1)
            image[rows[1]] = x + self._noise(x.shape, dev, draws.noise_seed) * std
        steps: list[tuple[Tensor, Callable[[Tensor, Tensor], Tensor]]] = [
            (draws.blur, lambda x, r: gaussian_blur(x, draws.blur_sigma[r])),
            (draws.brightness, lambda x, r: brightness(x, draws.brightness_factor[r])),
            (draws.contrast, lambda x, r: contrast(x, draws.contrast_factor[r])),
            (draws.low_resolution, lambda x, r: low_resolution(
                x, draws.low_resolution_zoom[r], draws.low_resolution_channels[r],
                axes=cfg.low_resolution_axes)),
            (draws.gamma_inverted,
             lambda x, r: gamma_retain_stats(x, draws.gamma_inverted_value[r], invert=True)),
            (draws.gamma, lambda x, r: gamma_retain_stats(x, draws.gamma_value[r])),
        ]  # fmt: skip
        for mask, step in steps:
            if (rows := _rows(mask, dev)) is not None:
                image[rows[1]] = step(image[rows[1]], rows[0])
        for axis in range(3):
            if (rows := _rows(draws.mirror[:, axis], dev)) is not None:
                image[rows[1]] = image[rows[1]].flip(2 + axis)
                seg[rows[1]] = seg[rows[1]].flip(2 + axis)
        return image, seg

    def _spatial(
        self, image: Tensor, seg: Tensor, draws: AugmentationDraws
    ) -> tuple[Tensor, Tensor]:
        """Rotation and scaling about the window's centre; a plain centre crop elsewhere."""
        window, patch = tuple(image.shape[2:]), self.patch_size
        box = (..., *(slice(w // 2 - p // 2, w // 2 - p // 2 + p) for w, p in zip(window, patch)))
        out_image, out_seg = image[box].clone(), seg[box].clone()
        rows = _rows(draws.rotate | draws.scale, image.device)
        if rows is None:
            return out_image, out_seg
        # grid_sample's normalised coordinates: in = diag(2 / window) M diag(patch / 2) out
        m = affine_matrices(draws.angles[rows[0]], draws.scales[rows[0]])
        m = m * torch.tensor(patch, dtype=_F64)[None, None] / 2
        m = m / (torch.tensor(window, dtype=_F64)[None, :, None] / 2)
        theta = F.pad(m.flip(1, 2), (0, 1)).to(image.device, image.dtype)  # (x, y, z) order
        grid = F.affine_grid(theta, [len(rows[0]), 1, *patch], align_corners=False)
        out_image[rows[1]] = F.grid_sample(image[rows[1]], grid, mode="bilinear",
                                           padding_mode="zeros", align_corners=False)  # fmt: skip
        labels = F.grid_sample(seg[rows[1]].float(), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)  # fmt: skip
        out_seg[rows[1]] = labels.round().to(seg.dtype)
        return out_image, out_seg

    def _noise(self, shape: torch.Size, device: torch.device, seed: int) -> Tensor:
        generator = self._noise_generators.get(device)
        if generator is None:
            generator = self._noise_generators[device] = torch.Generator(device=device)
        generator.manual_seed(seed)
        return torch.randn(shape, generator=generator, device=device)


def device_augmentation_for(config: Any, *, rank: int = 0) -> DeviceAugmentation | None:
    """The :class:`DeviceAugmentation` of a :class:`~multitask_unet.data.sampling.loader.LoaderConfig`
    (None unless its augmentation's ``backend`` is ``"device"``)."""
    aug = config.augmentation_config()
    if aug.backend != "device":
        return None
    return DeviceAugmentation(aug, patch_size=config.patch_size, seed=config.seed, rank=rank)


class WindowSampler(ForegroundPatchSampler):
    """The patch sampler of the device backend: crops the window, augments nothing.

    Places windows exactly as :class:`ForegroundPatchSampler` (same foreground oversampling,
    same border margins for ``patch_size``) and returns the window of ``window_size``, left for
    :class:`DeviceAugmentation` to rotate, scale, augment and crop to the patch.
    """

    def __init__(self, patch_size: Sequence[int], **kwargs: Any) -> None:
        super().__init__(patch_size, **kwargs)
        if self.spatial_transform is not None or self.transform is not None:
            raise ConfigError(
                "WindowSampler only crops; leave out spatial_transform and transform and augment "
                "the batches with DeviceAugmentation"
            )

    def sample(
        self,
        subject: tio.Subject,
        *,
        rng: np.random.Generator | None = None,
        class_locations: Mapping[int, np.ndarray] | None = None,
    ) -> tio.Subject:
        """The window around one patch of ``subject`` (a new subject of ``window_size``)."""
        lower, center_class = self.place_window(subject, rng, class_locations)
        window = self._crop_subject(subject, lower, self.window_size)
        window[CENTER_CLASS_KEY] = center_class
        upper = lower + np.asarray(self.window_size)
        window[tio.LOCATION] = torch.as_tensor([*lower.tolist(), *upper.tolist()])
        return window
