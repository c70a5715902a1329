"""nnU-Net's training augmentation as a TorchIO recipe.

:func:`build_augmentation` returns a ``tio.Compose`` that reproduces nnU-Net 2.x's
``nnUNetTrainer.get_training_transforms`` in order and strength. It runs on a *window* (the patch
enlarged by :func:`window_size`) and returns the patch: rotation and scaling resample only the
patch's voxels from the window (as nnU-Net's ``SpatialTransform`` does,
:class:`~multitask_unet.data.sampling.spatial.RandomAffineCrop`), the rest act on the patch. The
patch sampler takes the two parts separately (:func:`build_spatial_transform`,
:func:`build_patch_transforms`). Everything works in voxel units, like nnU-Net. TorchIO provides
noise, blur, mirroring and the optional elastic deformation; the intensity transforms TorchIO lacks
are defined here as small TorchIO ``RandomTransform`` subclasses.

Default probabilities (per patch; nnU-Net's values):

| transform | p | parameters |
|---|---|---|
| rotation | 0.20 | U(-30, 30) degrees per axis (dummy-2D case: U(-180, 180) in-plane) |
| scaling | 0.20 | one factor U(0.7, 1.4) for all (in-plane) axes |
| elastic (optional) | 0.00 | TorchIO ``RandomElasticDeformation`` |
| noise | 0.10 | std U(0, sqrt(0.1)) (nnU-Net: variance U(0, 0.1)) |
| blur | 0.10 | sigma U(0.5, 1) (nnU-Net: p 0.2 x p_per_channel 0.5) |
| brightness | 0.15 | multiply by U(0.75, 1.25) per channel |
| contrast | 0.15 | factor U(0.75, 1.25) around the mean, range preserved |
| low resolution | 0.25 | zoom U(0.5, 1), each channel with p 0.5 |
| inverted gamma | 0.10 | gamma U(0.7, 1.5) on the negated image, mean and std kept |
| gamma | 0.30 | gamma U(0.7, 1.5), mean and std kept |
| mirroring | 0.50 | per axis |

Factor ranges straddling 1 are drawn like nnU-Net's ``BGContrast``: half the time below 1.
All randomness comes from ``torch``'s global generator, as in TorchIO, so ``torch.manual_seed``
makes a run reproducible.

Example:
    >>> import torch, torchio as tio
    >>> cfg = AugmentationConfig()
    >>> transform = build_augmentation(cfg, patch_size=(8, 8, 8))
    >>> win = window_size((8, 8, 8), cfg)
    >>> subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, *win)),
    ...                       seg=tio.LabelMap(tensor=torch.zeros(1, *win, dtype=torch.uint8)))
    >>> transform(subject)["image"].shape
    (1, 8, 8, 8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from multitask_unet.config import Config
from multitask_unet.data.sampling.spatial import RandomAffineCrop, affine_matrix, uniform
from multitask_unet.errors import ConfigError

__all__ = [
    "AUGMENTATION_BACKENDS",
    "AugmentationConfig",
    "RandomBrightness",
    "RandomContrast",
    "RandomGammaRetainStats",
    "RandomLowResolution",
    "build_augmentation",
    "build_patch_transforms",
    "build_spatial_transform",
    "window_size",
]

#: Where the recipe runs: per patch in the loader's workers (TorchIO), or per batch on the
#: training device (:mod:`~multitask_unet.data.sampling.device_augmentation`).
AUGMENTATION_BACKENDS = ("workers", "device")
_ANISOTROPY_THRESHOLD = 3.0  # nnU-Net's ANISO_THRESHOLD for dummy-2D augmentation
_WINDOW_MIN_SCALE = 0.85  # nnU-Net sizes the window with this bound, not the scaling range


@dataclass(frozen=True)
class AugmentationConfig(Config):
    """Strength and probability of every augmentation (defaults: nnU-Net's, see module doc).

    ``backend`` says where the recipe runs: ``"workers"`` (default) applies it per patch with
    TorchIO in the loader's worker processes; ``"device"`` lets the workers only crop and
    applies the same recipe batched on the training device
    (:class:`~multitask_unet.data.sampling.device_augmentation.DeviceAugmentation`), for
    machines with few CPU cores per GPU.
    """

    rotation_degrees: tuple[float, float, float] = (30.0, 30.0, 30.0)
    p_rotation: float = 0.2
    scaling: tuple[float, float] = (0.7, 1.4)
    scaling_axes: tuple[int, ...] = (0, 1, 2)
    p_scaling: float = 0.2
    p_elastic: float = 0.0
    noise_std: tuple[float, float] = (0.0, math.sqrt(0.1))
    p_noise: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_blur: float = 0.1
    brightness: tuple[float, float] = (0.75, 1.25)
    p_brightness: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    low_resolution_axes: tuple[int, ...] = (0, 1, 2)
    p_low_resolution: float = 0.25
    gamma: tuple[float, float] = (0.7, 1.5)
    p_gamma: float = 0.3
    p_gamma_inverted: float = 0.1
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    p_mirror: float = 0.5
    backend: Literal["workers", "device"] = "workers"

    def __post_init__(self) -> None:
        if self.backend not in AUGMENTATION_BACKENDS:
            raise ConfigError(
                f"AugmentationConfig.backend {self.backend!r} is unknown; use one of "
                f"{', '.join(AUGMENTATION_BACKENDS)}"
            )
        for name, value in self.to_dict().items():
            if name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"AugmentationConfig.{name} must lie in [0, 1], got {value}")
        for name in ("scaling", "noise_std", "blur_sigma", "brightness", "contrast",
                     "low_resolution_zoom", "gamma"):  # fmt: skip
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ConfigError(
                    f"AugmentationConfig.{name} must be (low, high), 0 <= low <= high; got {(lo, hi)}"
                )
        for name in ("mirror_axes", "low_resolution_axes", "scaling_axes"):
            if any(a not in (0, 1, 2) for a in getattr(self, name)):
                raise ConfigError(
                    f"AugmentationConfig.{name} takes spatial axes 0, 1, 2; got {getattr(self, name)}"
                )

    @classmethod
    def nnunet(cls, patch_size: Sequence[int]) -> AugmentationConfig:
        """nnU-Net's settings for ``patch_size``: in-plane 180-degree rotation when the first axis
        is much shorter (``max(patch) / patch[0] > 3``, nnU-Net's dummy-2D case), else 30 degrees."""
        if max(patch_size) / patch_size[0] > _ANISOTROPY_THRESHOLD:
            return cls(
                rotation_degrees=(180.0, 0.0, 0.0), scaling_axes=(1, 2), low_resolution_axes=(1, 2)
            )
        return cls()

    @classmethod
    def off(cls) -> AugmentationConfig:
        """No augmentation at all (every probability 0)."""
        zero = {f: 0.0 for f in cls.__dataclass_fields__ if f.startswith("p_")}
        return cls(**zero)


def window_size(patch_size: Sequence[int], config: AugmentationConfig) -> tuple[int, int, int]:
    """Size to crop so that rotation and scaling of the patch stay inside real data.

    The same formula as nnU-Net's ``get_patch_size`` (the patch diagonal rotated by the largest
    angle about each axis, divided by 0.85); the patch itself without rotation or scaling.
    """
    coords = np.asarray(patch_size, dtype=np.float64)
    if config.p_rotation == 0 and config.p_scaling == 0:
        return tuple(int(v) for v in coords)  # type: ignore[return-value]
    final = coords.copy()
    if config.p_rotation > 0:
        for axis, degrees in enumerate(config.rotation_degrees):
            angles = [0.0, 0.0, 0.0]
            angles[axis] = min(abs(degrees), 90.0)
            rotation = affine_matrix(angles, (1.0, 1.0, 1.0))
            final = np.maximum(final, np.abs(coords @ rotation))  # row vector, as nnU-Net
    for axis in config.scaling_axes:
        final[axis] /= _WINDOW_MIN_SCALE
    return tuple(int(v) for v in final)  # type: ignore[return-value]


def _factor(lo: float, hi: float) -> float:
    """nnU-Net's ``BGContrast``: half of the time below 1 when the range straddles 1."""
    if hi <= 1.0 or lo >= 1.0:
        return uniform(lo, hi)
    if float(torch.rand(1)) < 0.5:
        return uniform(lo, 1.0)
    return uniform(1.0, hi)


class _ChannelwiseIntensity(RandomTransform, tio.IntensityTransform):
    """Base: applies ``channel`` to every channel of every intensity image."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            data = image.data.float().clone()
            for c in range(data.shape[0]):
                data[c] = self.channel(data[c])
            image.set_data(data)
        return subject

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class RandomBrightness(_ChannelwiseIntensity):
    """Multiply each channel by a factor from ``multiplier`` (nnU-Net's multiplicative brightness)."""

    def __init__(self, multiplier: tuple[float, float] = (0.75, 1.25), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multiplier = multiplier

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        return x * _factor(*self.multiplier)


class RandomContrast(_ChannelwiseIntensity):
    """Scale each channel about its mean by a factor from ``factor``; clip to the old range."""

    def __init__(self, factor: tuple[float, float] = (0.75, 1.25), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi, mean = x.min(), x.max(), x.mean()
        return ((x - mean) * _factor(*self.factor) + mean).clamp_(lo, hi)


class RandomLowResolution(_ChannelwiseIntensity):
    """Downsample (nearest) by a zoom from ``zoom`` and upsample back (trilinear), per channel.

    Args:
        zoom: Range of the zoom factor, one for all ``axes``.
        axes: Spatial axes that lose resolution.
        p_per_channel: Probability for each channel (nnU-Net: 0.5).
    """

    def __init__(
        self,
        zoom: tuple[float, float] = (0.5, 1.0),
        *,
        axes: Sequence[int] = (0, 1, 2),
        p_per_channel: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.zoom, self.axes, self.p_per_channel = zoom, tuple(axes), p_per_channel

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(1)) >= self.p_per_channel:
            return x
        z = uniform(*self.zoom)
        small = [max(1, round(s * z)) if i in self.axes else s for i, s in enumerate(x.shape)]
        low = F.interpolate(x[None, None], size=small, mode="nearest-exact")
        return F.interpolate(low, size=tuple(x.shape), mode="trilinear", align_corners=False)[0, 0]


class RandomGammaRetainStats(_ChannelwiseIntensity):
    """nnU-Net's gamma: rescale to [0, 1], raise to gamma, rescale back, restore mean and std.

    Args:
        gamma: Range of gamma (drawn like ``BGContrast``).
        invert: Apply to the negated image (nnU-Net's ``p_invert_image=1`` variant).
    """

    def __init__(
        self, gamma: tuple[float, float] = (0.7, 1.5), *, invert: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.gamma, self.invert = gamma, invert

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        if self.invert:
            x = -x
        mean, std = x.mean(), x.std()
        lo = x.min()
        span = (x.max() - lo).clamp_min(1e-7)
        x = ((x - lo) / span).pow(_factor(*self.gamma)) * span + lo
        x = (x - x.mean()) / (x.std() + 1e-8) * std + mean
        return -x if self.invert else x


def build_spatial_transform(
    config: AugmentationConfig | None = None, *, patch_size: Sequence[int]
) -> RandomAffineCrop:
    """Rotation and scaling: maps a window of :func:`window_size` to a patch of ``patch_size``.

    Pass it to the patch sampler as ``spatial_transform``, which then crops only the part of the
    window it reads.
    """
    cfg = config or AugmentationConfig()
    return RandomAffineCrop(
        patch_size,
        rotation_degrees=cfg.rotation_degrees,
        scaling=cfg.scaling,
        scaling_axes=cfg.scaling_axes,
        p_rotation=cfg.p_rotation,
        p_scaling=cfg.p_scaling,
        copy=False,
    )


def build_patch_transforms(config: AugmentationConfig | None = None) -> tio.Compose | None:
    """Everything after rotation and scaling, on the patch (elastic, intensity, mirroring).

    Returns:
        A ``tio.Compose`` that modifies the subject in place, or None when every probability is 0.
    """
    cfg = config or AugmentationConfig()
    nc = {"copy": False}
    transforms: list[tio.Transform] = []
    if cfg.p_elastic > 0:
        transforms.append(tio.RandomElasticDeformation(p=cfg.p_elastic, **nc))
    optional: list[tuple[float, Any]] = [
        (cfg.p_noise, lambda p: tio.RandomNoise(std=cfg.noise_std, p=p, **nc)),
        (cfg.p_blur, lambda p: tio.RandomBlur(std=cfg.blur_sigma, p=p, **nc)),
        (cfg.p_brightness, lambda p: RandomBrightness(cfg.brightness, p=p, **nc)),
        (cfg.p_contrast, lambda p: RandomContrast(cfg.contrast, p=p, **nc)),
        (
            cfg.p_low_resolution,
            lambda p: RandomLowResolution(
                cfg.low_resolution_zoom, axes=cfg.low_resolution_axes, p=p, **nc
            ),
        ),
        (cfg.p_gamma_inverted, lambda p: RandomGammaRetainStats(cfg.gamma, invert=True, p=p, **nc)),
        (cfg.p_gamma, lambda p: RandomGammaRetainStats(cfg.gamma, p=p, **nc)),
    ]
    transforms += [make(p) for p, make in optional if p > 0]
    if cfg.p_mirror > 0 and cfg.mirror_axes:
        transforms.append(tio.RandomFlip(axes=cfg.mirror_axes, flip_probability=cfg.p_mirror, **nc))
    return tio.Compose(transforms, **nc) if transforms else None


def build_augmentation(
    config: AugmentationConfig | None = None, *, patch_size: Sequence[int]
) -> tio.Compose:
    """The nnU-Net-like recipe as one TorchIO ``Compose`` mapping a window to a patch.

    :func:`build_spatial_transform` followed by :func:`build_patch_transforms`; the patch sampler
    takes the two parts separately.

    Args:
        config: Strengths and probabilities; defaults to :class:`AugmentationConfig`.
        patch_size: Output patch size ``(D, H, W)``; feed windows of :func:`window_size`.

    Returns:
        A ``tio.Compose`` that modifies the subject in place (no copies) and returns it.
    """
    rest = build_patch_transforms(config)
    spatial = build_spatial_transform(config, patch_size=patch_size)
    return tio.Compose([spatial, *(rest.transforms if rest is not None else [])], copy=False)
