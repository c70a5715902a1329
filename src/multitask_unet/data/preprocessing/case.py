"""Preprocessing of one case as nnU-Net does it, and the way back to native geometry.

:func:`preprocess_case` runs, in this order (nnU-Net's ``DefaultPreprocessor``):

1. read the channels and the mask and reorient them to the canonical ``(D, H, W)`` layout
   (:mod:`~multitask_unet.data.orientation`; the original affine and shape are kept);
2. crop to the bounding box of the non-zero voxels (:mod:`~multitask_unet.data.preprocessing.cropping`);
3. normalise intensities (:func:`normalize_image`; CT: clip to the foreground 0.5 / 99.5
   percentiles, then z-score with the foreground mean and std of the whole dataset);
4. resample images (order 3) and masks (per-label linear, no label bleeding) to the target
   spacing, the coarse axis separately for anisotropic data (:mod:`~multitask_unet.data.preprocessing.resampling`);
5. sample up to 10 000 voxel locations per foreground label (at least 1% of them), for the patch
   sampler's foreground oversampling.

:func:`restore_native` undoes steps 4, 2 and 1 for a prediction (a label map or class
probabilities), so that it lies on the grid of the original image file.

Example:
    >>> case = preprocess_case(record, plan.preprocessing)  # doctest: +SKIP
    >>> case.image.shape, case.seg.shape  # (C, D, H, W), (1, D, H, W)  # doctest: +SKIP
    >>> native = restore_native(case.seg[0], case.properties)  # (I, J, K)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask_unet.config import Config
from multitask_unet.data.canonical import read_canonical_case
from multitask_unet.data.orientation import from_canonical
from multitask_unet.data.preprocessing.cropping import crop, nonzero_bbox, uncrop
from multitask_unet.data.preprocessing.resampling import (
    compute_new_shape,
    resample_image,
    resample_seg,
)
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError, ShapeError

if TYPE_CHECKING:  # planning imports cropping and resampling from this package
    from multitask_unet.data.planning.plan import ChannelNormalization, Plan, PreprocessingConfig

__all__ = [
    "CaseProperties",
    "PreprocessedCase",
    "normalize_image",
    "preprocess_case",
    "restore_native",
    "sample_class_locations",
]

Matrix = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class CaseProperties(Config):
    """What is known about a preprocessed case; saved as ``properties.json`` in the cache.

    Shapes and spacings are canonical ``(D, H, W)`` unless named ``original_*`` (file order).

    Attributes:
        case_id: The case.
        label: Subtype of the case, or ``None``.
        cache_key: :meth:`PreprocessingConfig.cache_key` of the config that produced it.
        orientation: Canonical orientation code.
        original_shape: Spatial shape of the image file ``(I, J, K)``.
        original_affine: The image file's ``(4, 4)`` voxel-to-RAS+ matrix.
        spacing: Voxel size in mm before resampling.
        shape_before_crop: Canonical shape before cropping.
        crop_bbox: Half-open crop box ``((d0, d1), (h0, h1), (w0, w1))``.
        shape_after_crop: Shape after cropping, before resampling.
        target_spacing: Voxel size in mm of the preprocessed arrays.
        shape: Shape of the preprocessed arrays.
        affine: ``(4, 4)`` map from preprocessed ``(d, h, w)`` indices to RAS+ mm.
        class_locations: ``{label: [[d, h, w], ...]}`` sampled foreground voxels (JSON keys).
        image_files: Source image paths, one per channel.
        mask_file: Source mask path, or ``None``.
    """

    case_id: str
    label: int | None
    cache_key: str
    orientation: str
    original_shape: tuple[int, int, int]
    original_affine: Matrix
    spacing: tuple[float, float, float]
    shape_before_crop: tuple[int, int, int]
    crop_bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    shape_after_crop: tuple[int, int, int]
    target_spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    affine: Matrix
    class_locations: dict[str, Any]
    image_files: tuple[str, ...] = ()
    mask_file: str | None = None

    def class_locations_array(self) -> dict[int, np.ndarray]:
        """``{label: (N, 3) int64 (d, h, w)}`` of :attr:`class_locations`."""
        return {
            int(k): np.asarray(v, dtype=np.int64).reshape(-1, 3)
            for k, v in self.class_locations.items()
        }


@dataclass(frozen=True, eq=False)
class PreprocessedCase:
    """A preprocessed case in memory.

    Attributes:
        image: ``(C, D, H, W)`` float32.
        seg: ``(1, D, H, W)`` uint8 (int16 beyond 255 labels), or ``None`` without a mask.
        properties: The :class:`CaseProperties`.
    """

    image: np.ndarray
    seg: np.ndarray | None
    properties: CaseProperties


def normalize_image(image: np.ndarray, normalization: Sequence[ChannelNormalization]) -> np.ndarray:
    """Normalise each channel of a ``(C, D, H, W)`` image; returns a new float32 array."""
    if len(normalization) != image.shape[0]:
        raise ShapeError(
            f"image has {image.shape[0]} channel(s) but the plan normalises "
            f"{len(normalization)}; preprocess with a plan made for this dataset"
        )
    out = image.astype(np.float32, copy=True)
    for channel, norm in zip(out, normalization):
        if norm.scheme == "ct":
            np.clip(channel, norm.lower, norm.upper, out=channel)
            channel -= norm.mean
            channel /= max(norm.std, 1e-8)  # type: ignore[type-var]
        elif norm.scheme == "zscore":
            mean, std = float(channel.mean()), float(channel.std())
            channel -= mean
            channel /= max(std, 1e-8)
    return out


def sample_class_locations(
    seg: np.ndarray,
    labels: Sequence[int],
    *,
    max_per_class: int = 10_000,
    min_fraction: float = 0.01,
    seed: int = 1234,
) -> dict[int, np.ndarray]:
    """Sample voxel locations of each label, as nnU-Net's preprocessing does.

    Each label keeps ``min(count, max_per_class)`` locations but at least ``min_fraction`` of
    its voxels, drawn without replacement.

    Args:
        seg: ``(D, H, W)`` label map.
        labels: Labels to sample (usually the foreground ones).
        max_per_class: Location budget per label.
        min_fraction: Minimum share of a label's voxels to keep.
        seed: Seed of the draw.

    Returns:
        ``{label: (N, 3) int64 (d, h, w)}``; ``(0, 3)`` for absent labels.
    """
    rng = np.random.RandomState(seed)
    out = {}
    for label in labels:
        where = np.argwhere(seg == label)
        keep = max(min(max_per_class, len(where)), math.ceil(len(where) * min_fraction))
        if keep < len(where):
            where = where[np.sort(rng.choice(len(where), keep, replace=False))]
        out[int(label)] = where.astype(np.int64).reshape(-1, 3)
    return out


def _crop_affine(affine: np.ndarray, start: Sequence[int]) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = start
    return affine @ shift


def _resample_affine(affine: np.ndarray, old: Sequence[int], new: Sequence[int]) -> np.ndarray:
    scale = np.asarray(old, dtype=np.float64) / np.asarray(new, dtype=np.float64)
    voxel = np.eye(4)
    voxel[:3, :3] = np.diag(scale)
    voxel[:3, 3] = 0.5 * scale - 0.5  # voxel centres stay aligned (align_corners=False)
    return affine @ voxel


def _matrix(affine: np.ndarray) -> Matrix:
    return tuple(tuple(float(x) for x in row) for row in affine)  # type: ignore[return-value]


def preprocess_case(record: CaseRecord, config: PreprocessingConfig | Plan) -> PreprocessedCase:
    """Preprocess one case (see the module docstring for the steps).

    Args:
        record: The case; without a mask only the image is preprocessed.
        config: The plan or its :class:`PreprocessingConfig`.

    Returns:
        The :class:`PreprocessedCase`.

    Raises:
        DataError: A file cannot be read as the case's grid needs (see
            :func:`~multitask_unet.data.canonical.read_canonical_case`), or the mask holds a
            label beyond the plan's labels.
    """
    config = getattr(config, "preprocessing", config)  # a Plan carries its PreprocessingConfig
    case = read_canonical_case(record, orientation=config.orientation)
    if case.seg is not None and case.seg.size and int(case.seg.max()) > max(config.labels):
        raise DataError(  # the loss would take it for an output the head does not have
            f"{record.mask} (case {record.case_id}) holds label {int(case.seg.max())}, beyond the "
            f"plan's labels {tuple(config.labels)}; preprocess with a plan made for this dataset "
            "or remap the mask"
        )
    spacing = case.spacing
    full_shape = case.image.shape[1:]
    bbox = nonzero_bbox(case.image) if config.crop_to_nonzero else tuple((0, s) for s in full_shape)
    image = normalize_image(crop(case.image, bbox), config.normalization)
    cropped_shape = image.shape[1:]
    new_shape = compute_new_shape(cropped_shape, spacing, config.target_spacing)
    resampling = {
        "spacing": spacing,
        "new_spacing": config.target_spacing,
        "anisotropy_threshold": config.anisotropy_threshold,
    }
    image = resample_image(
        image, new_shape, order=config.image_order, order_z=config.image_order_z, **resampling
    )
    seg = None
    locations: dict[str, Any] = {}
    if case.seg is not None:
        seg = resample_seg(
            np.ascontiguousarray(crop(case.seg, bbox)),
            new_shape,
            order=config.seg_order,
            order_z=config.seg_order_z,
            **resampling,
        )
        foreground = [label for label in config.labels if label != 0]
        sampled = sample_class_locations(seg, foreground, max_per_class=config.max_class_locations)
        locations = {str(k): v.tolist() for k, v in sampled.items()}
        dtype = np.uint8 if seg.min() >= 0 and seg.max() <= 255 else np.int16
        seg = seg.astype(dtype)[None]
    affine = _resample_affine(
        _crop_affine(case.affine, [a for a, _ in bbox]), cropped_shape, new_shape
    )
    properties = CaseProperties(
        case_id=record.case_id,
        label=record.label,
        cache_key=config.cache_key(),
        orientation=config.orientation,
        original_shape=case.original_shape,
        original_affine=_matrix(case.original_affine),
        spacing=spacing,
        shape_before_crop=tuple(int(s) for s in full_shape),  # type: ignore[arg-type]
        crop_bbox=bbox,  # type: ignore[arg-type]
        shape_after_crop=tuple(int(s) for s in cropped_shape),  # type: ignore[arg-type]
        target_spacing=tuple(config.target_spacing),  # type: ignore[arg-type]
        shape=tuple(int(s) for s in new_shape),  # type: ignore[arg-type]
        affine=_matrix(affine),
        class_locations=locations,
        image_files=tuple(str(p) for p in record.images),
        mask_file=None if record.mask is None else str(record.mask),
    )
    return PreprocessedCase(image=image, seg=seg, properties=properties)


def restore_native(
    array: np.ndarray,
    properties: CaseProperties,
    *,
    order: int = 1,
    anisotropy_threshold: float = 3.0,
    outside: Sequence[float] | None = None,
) -> np.ndarray:
    """Bring a prediction on the preprocessed grid back to the original image file's grid.

    Undoes resampling (label maps per label as in preprocessing; float channels, logits or
    probabilities, with ``order``, nearest along the coarse axis of anisotropic data, as nnU-Net
    exports them), cropping (outside the crop box: label 0, float channels ``outside``) and
    reorientation.

    Args:
        array: Integer label map ``(D, H, W)`` or ``(1, D, H, W)``, or float channels
            ``(C, D, H, W)``, on the grid ``properties.shape``.
        properties: The case's :class:`CaseProperties`.
        order: Interpolation order for float channels / label indicators.
        anisotropy_threshold: As in preprocessing.
        outside: Value of each float channel outside the crop box (default: probabilities of
            background only, ``(1, 0, ..., 0)``; for logits e.g. ``(0, -inf, ..., -inf)``).

    Returns:
        ``(I, J, K)`` (or ``(1 | C, I, J, K)``, matching the input) array of the input's dtype,
        to be saved with ``properties.original_affine``.
    """
    array = np.asarray(array)
    is_labels = not np.issubdtype(array.dtype, np.floating)
    squeeze = array.ndim == 3
    stack = array[None] if squeeze else array
    if stack.ndim != 4 or tuple(stack.shape[1:]) != tuple(properties.shape):
        raise ShapeError(
            f"prediction of shape {array.shape} is not on the preprocessed grid "
            f"{tuple(properties.shape)} of case {properties.case_id!r}"
        )
    if is_labels and stack.shape[0] != 1:
        raise ShapeError(f"a label map must be (D, H, W) or (1, D, H, W), got {array.shape}")
    geometry = {
        "spacing": properties.target_spacing,
        "new_spacing": properties.spacing,
        "anisotropy_threshold": anisotropy_threshold,
    }
    target = properties.shape_after_crop
    if is_labels:
        resampled = resample_seg(stack[0], target, order=order, **geometry)[None]
        full = uncrop(resampled, properties.crop_bbox, properties.shape_before_crop)
    else:
        resampled = resample_image(stack, target, order=order, order_z=0, **geometry)
        full = uncrop(resampled, properties.crop_bbox, properties.shape_before_crop)
        fill = (1.0, *[0.0] * (len(full) - 1)) if outside is None else tuple(outside)
        if len(fill) != len(full):
            raise ShapeError(f"outside gives {len(fill)} value(s) for {len(full)} channel(s)")
        beyond = np.ones(properties.shape_before_crop, dtype=bool)
        beyond[tuple(slice(a, b) for a, b in properties.crop_bbox)] = False
        for channel, value in zip(full, fill):
            channel[beyond] = value
    native = from_canonical(
        full,
        np.asarray(properties.original_affine),
        properties.original_shape,
        orientation=properties.orientation,
    )
    return native[0] if squeeze else native
