"""Patch sampling with nnU-Net's foreground oversampling, as a TorchIO sampler.

A share ``foreground_probability`` (nnU-Net: 1/3) of the patches is centred on a random voxel of
a random foreground class present in the case (lesion included); the others are placed
uniformly, allowed to reach past the border by half the augmentation margin as in nnU-Net.
Optionally, patches of cases with a known class are centred on the lesion with probability
``lesion_probability`` so that classification patches see it.

The sampler places a *window* (the patch enlarged for rotation and scaling), crops from the
source tensors, which may be memory-mapped, only the part of it that its ``spatial_transform``
reads (padding where it leaves the volume), resamples the patch from there, applies the other
augmentation to the patch and centre-crops the result to ``patch_size``. No step touches the
whole volume except computing class locations when a case does not bring them.

Example:
    >>> import torch, torchio as tio
    >>> seg = torch.zeros(1, 20, 20, 20, dtype=torch.uint8)
    >>> seg[0, 15, 15, 15] = 2
    >>> subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 20, 20, 20)),
    ...                       seg=tio.LabelMap(tensor=seg), label=1, case_id="a")
    >>> sampler = ForegroundPatchSampler((8, 8, 8), foreground_probability=1.0)
    >>> patch = next(iter(sampler(subject, num_patches=1)))
    >>> patch["image"].shape, int(patch["seg"].data[0, 4, 4, 4]), patch["label"]
    ((1, 8, 8, 8), 2, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torchio as tio
from torchio.data.sampler import RandomSampler

from multitask_unet.data.sampling.crop import center_crop_or_pad, crop_and_pad
from multitask_unet.errors import ConfigError, DataError

__all__ = [
    "CLASS_LOCATIONS_KEY",
    "ForegroundPatchSampler",
    "SpatialTransform",
    "find_class_locations",
    "parse_class_locations",
    "patch_to_sample",
]

CLASS_LOCATIONS_KEY = "class_locations"
"""Subject key of precomputed ``{class: (N, 3) voxel indices}`` (as in the preprocessing cache)."""

CENTER_CLASS_KEY = "center_class"
"""Patch key: the class the patch was centred on, or -1 for a uniformly placed patch."""


class SpatialTransform(Protocol):
    """What the sampler needs of a spatial transform (e.g.
    :class:`~multitask_unet.data.sampling.spatial.RandomAffineCrop`): draw a matrix, name the
    part of the window it reads, and resample the patch from that part."""

    def matrix(self) -> torch.Tensor | None: ...

    def region(
        self, window_shape: Sequence[int], matrix: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def resample(
        self, subject: tio.Subject, matrix: torch.Tensor | None, *, center: Sequence[float]
    ) -> tio.Subject: ...


def find_class_locations(
    seg: np.ndarray | torch.Tensor,
    *,
    classes: Sequence[int] | None = None,
    max_per_class: int = 10_000,
    min_fraction: float = 0.01,
    seed: int = 1234,
) -> dict[int, np.ndarray]:
    """Sample voxel locations of every foreground class, as nnU-Net's preprocessing does.

    Args:
        seg: ``(1, D, H, W)`` or ``(D, H, W)`` integer label map.
        classes: Classes to look for; defaults to every non-zero value present.
        max_per_class: Keep at most this many locations per class ...
        min_fraction: ... but at least this fraction of the class's voxels.
        seed: Seed of the subsampling.

    Returns:
        ``{class: (N, 3) int64 voxel indices}``; absent classes map to an empty ``(0, 3)`` array.
    """
    arr = np.asarray(seg)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3:
        raise DataError(
            f"find_class_locations needs a (1, D, H, W) label map, got shape {arr.shape}"
        )
    if classes is None:
        values = arr.astype(np.int64, copy=False).ravel()
        counts = np.bincount(values[values > 0]) if values.size else np.zeros(0, dtype=np.int64)
        classes = [int(c) for c in np.flatnonzero(counts)]
    rng = np.random.default_rng(seed)
    out: dict[int, np.ndarray] = {}
    for c in classes:
        where = np.argwhere(arr == c)
        keep = min(len(where), max(max_per_class, math.ceil(len(where) * min_fraction)))
        if keep < len(where):
            where = where[rng.choice(len(where), keep, replace=False)]
        out[int(c)] = where.astype(np.int64).reshape(-1, 3)
    return out


def parse_class_locations(raw: Mapping[Any, Any]) -> dict[int, np.ndarray]:
    """Normalise stored class locations (JSON keys are strings; nnU-Net adds a channel column).

    Args:
        raw: ``{class: [[d, h, w], ...]}`` or ``{class: [[0, d, h, w], ...]}``.

    Returns:
        ``{class: (N, 3) int64}``.
    """
    out: dict[int, np.ndarray] = {}
    for key, value in raw.items():
        try:
            cls = int(key)
        except (TypeError, ValueError):
            raise DataError(
                f"class_locations key {key!r} is not an integer class; regenerate the cache"
            ) from None
        arr = np.asarray(value, dtype=np.int64)
        if arr.size == 0:
            arr = arr.reshape(0, 3)
        if arr.ndim != 2 or arr.shape[1] not in (3, 4):
            raise DataError(
                f"class_locations[{key!r}] must be (N, 3) indices, got shape {arr.shape}"
            )
        out[cls] = arr[:, -3:]
    return out


def patch_to_sample(
    subject: tio.Subject, *, image_key: str = "image", seg_key: str = "seg"
) -> dict[str, Any]:
    """Plain tensors of a patch, for :meth:`multitask_unet.data.Batch.collate`."""
    seg = subject[seg_key].data if seg_key in subject else None
    return {
        "image": subject[image_key].data,
        "seg": seg,
        "label": subject.get("label"),
        "case_id": subject.get("case_id", ""),
    }


class ForegroundPatchSampler(RandomSampler):
    """nnU-Net's foreground-oversampling patch sampler on TorchIO's sampler API.

    Works as any TorchIO sampler (``sampler(subject, num_patches)``, ``tio.Queue``). Non-image
    entries of the subject (``label``, ``case_id``) travel into every patch.

    Args:
        patch_size: Final patch size ``(D, H, W)``.
        foreground_probability: Probability that a patch is centred on a random voxel of a
            random foreground class present in the case (nnU-Net's ``oversample_foreground_percent``
            = 0.33, drawn per patch like its ``probabilistic_oversampling``).
        window_size: Size of the window the patch is taken from (at least ``patch_size``); use
            :func:`multitask_unet.data.sampling.augmentation.window_size` for rotation and scaling.
        spatial_transform: Rotation and scaling
            (:class:`~multitask_unet.data.sampling.spatial.RandomAffineCrop`): only the part of the
            window it reads is cropped, and it resamples the patch from there. None: the window
            itself is cropped.
        transform: Applied after ``spatial_transform`` (e.g. intensity augmentation, see
            :func:`~multitask_unet.data.sampling.augmentation.build_augmentation`); its output is
            centre-cropped to ``patch_size``.
        seg_key: Label map used to find foreground.
        foreground_classes: Classes eligible for oversampling; defaults to all present.
        lesion_label: Class of the lesion, for ``lesion_probability``.
        lesion_probability: Probability that a patch of a case with a known class (``label`` >= 0)
            and a present lesion is centred on the lesion, before the foreground draw.
        max_locations_per_class: Cap of the class locations computed when a case has none.
    """

    def __init__(
        self,
        patch_size: Sequence[int],
        *,
        foreground_probability: float = 1 / 3,
        window_size: Sequence[int] | None = None,
        spatial_transform: SpatialTransform | None = None,
        transform: Callable[[tio.Subject], tio.Subject] | None = None,
        seg_key: str = "seg",
        foreground_classes: Sequence[int] | None = None,
        lesion_label: int | None = None,
        lesion_probability: float = 0.0,
        max_locations_per_class: int = 10_000,
    ) -> None:
        patch = tuple(int(v) for v in patch_size)
        window = patch if window_size is None else tuple(int(v) for v in window_size)
        if len(patch) != 3 or len(window) != 3 or min(patch) < 1:
            raise ConfigError(
                f"patch_size and window_size need 3 positive sizes, got {patch}, {window}"
            )
        if any(w < p for w, p in zip(window, patch, strict=True)):
            raise ConfigError(
                f"window_size {window} must be at least patch_size {patch} on every axis"
            )
        for name, p in (("foreground_probability", foreground_probability),
                        ("lesion_probability", lesion_probability)):  # fmt: skip
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {p}")
        if lesion_probability > 0 and lesion_label is None:
            raise ConfigError(
                "lesion_probability > 0 needs lesion_label (the lesion's class, e.g. 2)"
            )
        super().__init__(window)
        self.final_patch_size = patch
        self.window_size = window
        self.foreground_probability = float(foreground_probability)
        self.spatial_transform = spatial_transform
        self.transform = transform
        self.seg_key = seg_key
        self.foreground_classes = None if foreground_classes is None else set(foreground_classes)
        self.lesion_label = lesion_label
        self.lesion_probability = float(lesion_probability)
        self.max_locations_per_class = max_locations_per_class

    # -- TorchIO sampler API -------------------------------------------------------------------
    def __call__(
        self, subject: tio.Subject, num_patches: int | None = None
    ) -> Generator[tio.Subject, None, None]:
        """Yield patches of ``subject`` (forever when ``num_patches`` is None); no size check:
        windows larger than the volume are padded, as in nnU-Net."""
        return self._generate_patches(subject, num_patches)

    def _generate_patches(
        self, subject: tio.Subject, num_patches: int | None = None
    ) -> Generator[tio.Subject, None, None]:
        locations = self.class_locations(subject)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        count = 0
        while num_patches is None or count < num_patches:
            yield self.sample(subject, rng=rng, class_locations=locations)
            count += 1

    def get_probability_map(self, subject: tio.Subject) -> torch.Tensor:
        """Not used: centres come from class locations, not from a dense map."""
        raise NotImplementedError("ForegroundPatchSampler samples from class locations")

    # -- our API -------------------------------------------------------------------------------
    def class_locations(self, subject: tio.Subject) -> dict[int, np.ndarray]:
        """Precomputed ``subject["class_locations"]`` when present, else computed from the seg."""
        if CLASS_LOCATIONS_KEY in subject:
            return parse_class_locations(subject[CLASS_LOCATIONS_KEY])
        if self.seg_key not in subject:
            return {}
        return find_class_locations(
            subject[self.seg_key].data, max_per_class=self.max_locations_per_class
        )

    def choose_window(
        self,
        shape: Sequence[int],
        class_locations: Mapping[int, np.ndarray],
        rng: np.random.Generator,
        *,
        label: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Lower corner of the next window and the class it is centred on (-1: uniform).

        Follows nnU-Net's ``get_bbox``: uniform corners range from ``-need_to_pad // 2`` to
        ``shape - window + need_to_pad // 2 (+ remainder)``; foreground windows centre on the voxel,
        clamped only at the lower bound.
        """
        shape_arr = np.asarray(shape, dtype=np.int64)
        window = np.asarray(self.window_size, dtype=np.int64)
        need = window - np.asarray(self.final_patch_size, dtype=np.int64)
        need = np.maximum(need, window - shape_arr)
        lbs = (-need) // 2  # as nnU-Net writes it: floor(-need / 2)
        ubs = shape_arr + need // 2 + need % 2 - window
        center_class = -1
        lesion = class_locations.get(self.lesion_label) if self.lesion_label is not None else None
        if (
            lesion is not None
            and len(lesion)
            and label is not None
            and int(label) >= 0
            and rng.random() < self.lesion_probability
        ):
            center_class = int(self.lesion_label)  # type: ignore[arg-type]
        elif rng.random() < self.foreground_probability:
            eligible = [
                c
                for c, v in class_locations.items()
                if len(v) and (self.foreground_classes is None or c in self.foreground_classes)
            ]
            if eligible:
                center_class = int(eligible[rng.integers(len(eligible))])
        if center_class < 0:
            return np.array([rng.integers(lo, hi + 1) for lo, hi in zip(lbs, ubs)]), -1
        voxels = class_locations[center_class]
        voxel = voxels[rng.integers(len(voxels))]
        return np.maximum(lbs, voxel - window // 2), center_class

    def sample(
        self,
        subject: tio.Subject,
        *,
        rng: np.random.Generator | None = None,
        class_locations: Mapping[int, np.ndarray] | None = None,
    ) -> tio.Subject:
        """One augmented patch of ``subject`` (a new subject of ``patch_size``)."""
        lower, center_class = self.place_window(subject, rng, class_locations)
        spatial = self.spatial_transform
        if spatial is not None:  # read only the part of the window the patch needs
            matrix = spatial.matrix()
            box_lower, box_size = spatial.region(self.window_size, matrix)
            patch = self._crop_subject(subject, lower + box_lower, box_size)
            center = np.asarray(self.window_size) / 2 - box_lower
            patch = spatial.resample(patch, matrix, center=center.tolist())
        else:
            patch = self._crop_subject(subject, lower, self.window_size)
        patch[CENTER_CLASS_KEY] = center_class
        if self.transform is not None:
            patch = self.transform(patch)
        for image in patch.get_images(intensity_only=False):
            if tuple(image.shape[1:]) != self.final_patch_size:
                image.set_data(center_crop_or_pad(image.data, self.final_patch_size))
        window = np.asarray(self.window_size)
        patch_lower = lower + window // 2 - np.asarray(self.final_patch_size) // 2
        patch[tio.LOCATION] = torch.as_tensor(
            [*patch_lower.tolist(), *(patch_lower + self.final_patch_size).tolist()]
        )
        return patch

    def place_window(
        self,
        subject: tio.Subject,
        rng: np.random.Generator | None,
        class_locations: Mapping[int, np.ndarray] | None,
    ) -> tuple[np.ndarray, int]:
        """:meth:`choose_window` for ``subject`` (its class locations unless given; a fresh
        generator seeded from torch's when ``rng`` is None)."""
        if rng is None:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        if class_locations is None:
            class_locations = self.class_locations(subject)
        shape = tuple(int(s) for s in subject.spatial_shape)
        return self.choose_window(shape, class_locations, rng, label=subject.get("label"))

    def _crop_subject(
        self, subject: tio.Subject, lower: np.ndarray, size: Sequence[int]
    ) -> tio.Subject:
        """Crop (and pad) every image; voxel-unit affines, as augmentation works in voxels."""
        entries: dict[str, Any] = {}
        for key, value in subject.items():
            if isinstance(value, tio.Image):
                affine = np.eye(4)
                affine[:3, 3] = lower
                data = crop_and_pad(value.data, lower.tolist(), [int(v) for v in size])
                entries[key] = type(value)(tensor=data, affine=affine)
            elif key not in (CLASS_LOCATIONS_KEY, tio.LOCATION):
                entries[key] = value
        return tio.Subject(entries)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(patch_size={self.final_patch_size}, "
            f"window_size={self.window_size}, "
            f"foreground_probability={self.foreground_probability:.3f}, "
            f"lesion_label={self.lesion_label}, lesion_probability={self.lesion_probability})"
        )
