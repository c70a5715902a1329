"""Patch size within a GPU's memory (a clear version of nnU-Net's planner rule).

nnU-Net sizes the training patch by estimating the memory of a U-Net's feature maps and shrinking
the patch until the estimate fits the GPU. The rule here:

1. Start from a patch with the aspect ratio of the target spacing (isotropic in mm), of the
   volume of 256³ voxels, clipped to the median shape of the resampled cases.
2. Round every axis up to a multiple of the network's ``size_divisor``, keeping at least two
   voxels at the deepest stage (:func:`round_to_divisor`): instance normalisation cannot train on
   a single voxel.
3. While the estimated feature-map size of a PlainConvUNet at that patch
   (:func:`estimate_feature_map_elements`) exceeds the capacity (:func:`feature_map_capacity`),
   take ``size_divisor`` voxels off the axis that is largest *relative to the median shape*.

The estimate counts, like dynamic-network-architectures' ``compute_conv_feature_map_size``, the
output elements of every convolution of a PlainConvUNet (2 convs per stage, features
``min(32 * 2**s, 320)``, strides derived from the spacing and the divisor the way nnU-Net pools
anisotropic data: an axis is pooled once its spacing is within a factor 2 of the finest). The
capacity is nnU-Net's calibration: 560 M elements for a batch of 2 in 8 GB.

Example:
    >>> plan_patch_size((60, 300, 300), (2.0, 0.75, 0.75), size_divisor=(8, 32, 32))
    ((40, 224, 224), 539611520)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from multitask_unet.errors import ConfigError

__all__ = [
    "MIN_BOTTLENECK_VOXELS",
    "bottleneck_voxels",
    "estimate_feature_map_elements",
    "feature_map_capacity",
    "plan_patch_size",
    "round_to_divisor",
    "shrink_to_fit",
    "size_divisor_tuple",
    "stage_strides",
]

_REFERENCE_ELEMENTS = 560_000_000  # nnU-Net: UNet_reference_val_3d ...
_REFERENCE_GB = 8.0  # ... at UNet_reference_val_corresp_GB, batch size 2

MIN_BOTTLENECK_VOXELS = 2
"""Voxels a training patch must keep at the network's deepest stage (``patch / size_divisor``):
instance normalisation of a single voxel is undefined, and PyTorch refuses it in training."""


def size_divisor_tuple(size_divisor: int | Sequence[int]) -> tuple[int, int, int]:
    """``(D, H, W)`` divisors from an int or a 3-sequence; each must be a power of two."""
    values = (size_divisor,) * 3 if isinstance(size_divisor, int) else tuple(size_divisor)
    if len(values) != 3 or any(
        not isinstance(v, (int, np.integer)) or v < 1 or v & (v - 1) for v in values
    ):
        raise ConfigError(
            f"size_divisor must be a power of two or three of them (D, H, W), got {size_divisor!r};"
            " pass the network's model.size_divisor"
        )
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def feature_map_capacity(gpu_memory_gb: float) -> float:
    """Feature-map elements (one sample) that fit ``gpu_memory_gb`` at batch size 2."""
    if gpu_memory_gb <= 0:
        raise ConfigError(f"gpu_memory_gb must be positive, got {gpu_memory_gb}")
    return _REFERENCE_ELEMENTS * gpu_memory_gb / _REFERENCE_GB


def stage_strides(
    spacing: Sequence[float], size_divisor: int | Sequence[int]
) -> tuple[tuple[int, int, int], ...]:
    """Per-stage strides of a U-Net whose total stride is ``size_divisor`` (first stage: 1).

    Each stage halves every axis that still has pooling left and whose current spacing is within
    a factor 2 of the finest such axis, so coarse axes are pooled later (as nnU-Net does).

    Example:
        >>> stage_strides((3.0, 1.0, 1.0), (4, 16, 16))
        ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    """
    remaining = [int(np.log2(d)) for d in size_divisor_tuple(size_divisor)]
    current = [float(s) for s in spacing]
    strides: list[tuple[int, int, int]] = [(1, 1, 1)]
    while any(remaining):
        valid = [a for a in range(3) if remaining[a] > 0]
        finest = min(current[a] for a in valid)
        pooled = [a for a in valid if current[a] / finest < 2]
        for a in pooled:
            remaining[a] -= 1
            current[a] *= 2
        strides.append(tuple(2 if a in pooled else 1 for a in range(3)))  # type: ignore[arg-type]
    return tuple(strides)


def estimate_feature_map_elements(
    patch_size: Sequence[int],
    strides: Sequence[Sequence[int]],
    *,
    num_classes: int,
    base_features: int = 32,
    max_features: int = 320,
    convs_per_stage: int = 2,
    deep_supervision: bool = False,
) -> int:
    """Output elements of all convolutions of a PlainConvUNet for one ``patch_size`` sample.

    Counts what ``PlainConvUNet.compute_conv_feature_map_size`` counts: encoder convs, decoder
    convs, transposed convs and segmentation outputs.
    """
    features = [min(base_features * 2**s, max_features) for s in range(len(strides))]
    size = np.asarray(patch_size, dtype=np.int64)
    sizes = []
    total = 0
    for stage, stride in enumerate(strides):
        size = size // np.asarray(stride, dtype=np.int64)
        sizes.append(int(np.prod(size)))
        total += convs_per_stage * features[stage] * sizes[-1]
    for stage in range(len(strides) - 2, -1, -1):  # decoder, coarse to fine
        total += (convs_per_stage + 1) * features[stage] * sizes[stage]
        if deep_supervision or stage == 0:
            total += num_classes * sizes[stage]
    return int(total)


def bottleneck_voxels(patch: Sequence[int], divisor: Sequence[int]) -> int:
    """Voxels of the deepest stage's feature map for ``patch`` (``prod(patch // divisor)``)."""
    return int(np.prod(np.asarray(patch, dtype=np.int64) // np.asarray(divisor, dtype=np.int64)))


def round_to_divisor(
    start: np.ndarray, median_shape: np.ndarray, divisor: np.ndarray
) -> np.ndarray:
    """``start`` rounded up to multiples of ``divisor``, with :data:`MIN_BOTTLENECK_VOXELS`.

    When the rounded patch is one divisor on every axis, the axis on which the median case is
    largest relative to the patch grows by one divisor (ties: the last axis).
    """
    patch = np.maximum(np.ceil(np.asarray(start) / divisor - 1e-9), 1).astype(np.int64) * divisor
    if bottleneck_voxels(patch, divisor) < MIN_BOTTLENECK_VOXELS:
        ratio = patch / np.maximum(median_shape, 1.0)
        axis = int(np.flatnonzero(ratio == ratio.min())[-1])
        patch[axis] += divisor[axis]
    return patch


def shrink_to_fit(
    patch: np.ndarray,
    median_shape: np.ndarray,
    divisor: np.ndarray,
    fits: Callable[[np.ndarray], bool],
) -> np.ndarray:
    """nnU-Net's patch shrinking: take one divisor off the axis largest relative to the median
    shape (ties: the last axis, as nnU-Net) until ``fits(patch)``, never below one divisor per
    axis nor :data:`MIN_BOTTLENECK_VOXELS` at the deepest stage.

    Both planners use it: :func:`plan_patch_size` (GPU memory) and the budget planner's voxel
    caps (:func:`multitask_unet.training.budget.patch_for_voxels`).
    """
    patch = np.array(patch, dtype=np.int64)
    while not fits(patch):
        smaller = [patch - divisor * (np.arange(3) == a) for a in range(3)]
        shrinkable = np.array(
            [patch[a] > divisor[a]
             and bottleneck_voxels(smaller[a], divisor) >= MIN_BOTTLENECK_VOXELS
             for a in range(3)]
        )  # fmt: skip
        if not shrinkable.any():
            break
        ratio = np.where(shrinkable, patch / median_shape, -np.inf)
        axis = int(np.flatnonzero(ratio == ratio.max())[-1])
        patch[axis] -= divisor[axis]
    return patch


def plan_patch_size(
    median_shape: Sequence[int],
    spacing: Sequence[float],
    *,
    size_divisor: int | Sequence[int] = 32,
    gpu_memory_gb: float = 8.0,
    num_classes: int = 3,
) -> tuple[tuple[int, int, int], int]:
    """The largest patch (by the rule in the module docstring) whose estimate fits the capacity.

    Args:
        median_shape: Median ``(D, H, W)`` of the cases at the target spacing.
        spacing: Target spacing in mm.
        size_divisor: The network's total stride per axis.
        gpu_memory_gb: GPU memory to plan for.
        num_classes: Segmentation outputs.

    Returns:
        ``(patch_size, estimated_elements)``. If even the smallest patch (one ``size_divisor``
        per axis) exceeds the capacity, that patch is returned with its estimate.
    """
    divisor = np.asarray(size_divisor_tuple(size_divisor))
    median = np.asarray(median_shape, dtype=np.float64)
    inverse = 1.0 / np.asarray(spacing, dtype=np.float64)
    initial = np.round(inverse * (256**3 / np.prod(inverse)) ** (1 / 3))
    patch = round_to_divisor(np.minimum(initial, median), median, divisor)
    strides = stage_strides(spacing, tuple(divisor))
    capacity = feature_map_capacity(gpu_memory_gb)

    def estimate(p: np.ndarray) -> int:
        return estimate_feature_map_elements(p, strides, num_classes=num_classes)

    patch = shrink_to_fit(patch, median, divisor, lambda p: estimate(p) <= capacity)
    return tuple(int(p) for p in patch), estimate(patch)  # type: ignore[return-value]


#: The former name of :func:`feature_map_capacity` ("budget" now means a time budget only).
feature_map_budget = feature_map_capacity
