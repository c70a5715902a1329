"""The plan: target spacing, normalisation and patch size derived from a fingerprint (nnU-Net).

A :class:`Plan` is a frozen config saved as JSON (documented in ``docs/concepts/plan.md``). It
holds the :class:`PreprocessingConfig` (everything that decides the preprocessed arrays, hashed
into :meth:`PreprocessingConfig.cache_key`), the training patch and batch size, and the
fingerprint it was made from.

Rules, following nnU-Net's ``ExperimentPlanner`` (``default_experiment_planner.py``):

* **Target spacing** (:func:`plan_target_spacing`): the per-axis median spacing; when the coarsest
  axis is more than ``anisotropy_threshold`` (3) times coarser than the others *and* has more than
  3 times fewer voxels, that axis takes the 10th percentile of its spacings instead (but never
  finer than the other axes), so that thick-slice cases are not interpolated into too few slices.
* **Patch size** (:func:`plan_patch_size`, see there), from the median shape after resampling and
  the GPU's memory, divisible by the network's ``size_divisor``.
* **Batch size**: what fits that memory at that patch (at least 2), but no more than 5% of the
  dataset's voxels per batch.

Example:
    >>> plan = create_plan(fingerprint, size_divisor=(16, 16, 32))  # doctest: +SKIP
    >>> plan.target_spacing, plan.patch_size  # the quiz subset's training split  # doctest: +SKIP
    ((2.0, 0.7326, 0.7328), (64, 112, 192))
    >>> plan.save("plan.json")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet.config import Config
from multitask_unet.data.orientation import check_orientation
from multitask_unet.data.planning.budget_section import PlanBudget
from multitask_unet.data.planning.fingerprint import DatasetFingerprint
from multitask_unet.data.planning.patch_size import (
    feature_map_capacity,
    plan_patch_size,
    size_divisor_tuple,
)
from multitask_unet.data.preprocessing.resampling import compute_new_shape
from multitask_unet.errors import ConfigError

__all__ = [
    "ChannelNormalization",
    "Plan",
    "PreprocessingConfig",
    "create_plan",
    "plan_target_spacing",
]

PREPROCESSING_VERSION = 1
"""Bumped whenever a code change alters preprocessed arrays, so that old caches are redone."""


@dataclass(frozen=True)
class ChannelNormalization(Config):
    """Intensity normalisation of one channel.

    ``"ct"`` (nnU-Net's ``CTNormalization``): clip to ``[lower, upper]`` (the dataset's foreground
    0.5 / 99.5 percentiles), then subtract ``mean`` and divide by ``std`` (foreground statistics).
    ``"zscore"``: per-case mean and std. ``"none"``: unchanged.
    """

    scheme: Literal["ct", "zscore", "none"] = "ct"
    lower: float | None = None
    upper: float | None = None
    mean: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        if self.scheme == "ct":
            missing = [k for k in ("lower", "upper", "mean", "std") if getattr(self, k) is None]
            if missing:
                raise ConfigError(f"'ct' normalisation needs {', '.join(missing)}")
            if self.lower > self.upper:  # type: ignore[operator]
                raise ConfigError(f"lower {self.lower} must not exceed upper {self.upper}")


@dataclass(frozen=True)
class PreprocessingConfig(Config):
    """Everything that decides the preprocessed arrays; hashed into :meth:`cache_key`.

    Attributes:
        target_spacing: Voxel size in mm of the preprocessed ``(D, H, W)`` arrays.
        normalization: One :class:`ChannelNormalization` per image channel.
        labels: Segmentation labels, background included (class locations are kept for the
            others); no default: the dataset's labels (:func:`create_plan` takes them from the
            dataset), since a label left out is never sampled as foreground.
        orientation: Canonical orientation (see :mod:`multitask_unet.data.orientation`).
        crop_to_nonzero: Crop to the bounding box of non-zero voxels first.
        image_order: Spline order for images (in-plane for anisotropic data).
        image_order_z: Order along the coarse axis of anisotropic data, images.
        seg_order: Interpolation order of each label's indicator.
        seg_order_z: Order along the coarse axis of anisotropic data, label maps.
        anisotropy_threshold: Spacing ratio above which resampling treats one axis separately.
        max_class_locations: Foreground voxel locations kept per class (and at least 1%).
        version: Version of the preprocessing code (:data:`PREPROCESSING_VERSION`).
    """

    target_spacing: tuple[float, float, float]
    normalization: tuple[ChannelNormalization, ...]
    labels: tuple[int, ...]
    orientation: str = "LPS"
    crop_to_nonzero: bool = True
    image_order: int = 3
    image_order_z: int = 0
    seg_order: int = 1
    seg_order_z: int = 0
    anisotropy_threshold: float = 3.0
    max_class_locations: int = 10_000
    version: int = PREPROCESSING_VERSION

    def __post_init__(self) -> None:
        check_orientation(self.orientation)
        if min(self.target_spacing) <= 0:
            raise ConfigError(f"target_spacing must be positive, got {self.target_spacing}")
        if not self.normalization:
            raise ConfigError("normalization needs one entry per image channel")
        for name in ("image_order", "image_order_z", "seg_order", "seg_order_z"):
            if not 0 <= getattr(self, name) <= 5:
                raise ConfigError(f"{name} must be a spline order 0..5, got {getattr(self, name)}")

    def cache_key(self) -> str:
        """A stable 16-hex-digit hash of this config; preprocessed cases are stored under it."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan(Config):
    """An experiment plan; create it with :func:`create_plan`, save it with :meth:`save`.

    Attributes:
        preprocessing: The :class:`PreprocessingConfig`.
        patch_size: Training patch ``(D, H, W)`` in voxels, divisible by ``size_divisor``.
        batch_size: Patches per batch.
        size_divisor: Per-axis factor that input sizes must be divisible by (the network's).
        median_shape: Median case shape after cropping and resampling to the target spacing.
        gpu_memory_gb: GPU memory the patch and batch size were planned for.
        anisotropic_axis: Axis whose target spacing used the 10th-percentile rule, else ``None``.
        fingerprint: The :class:`DatasetFingerprint` the plan was made from.
        budget: What a wall-clock budget chose and why (:class:`PlanBudget`), for plans made by
            :func:`multitask_unet.training.budget.plan_for_budget`; None (and absent from the
            JSON) for nnU-Net-rule plans.
    """

    preprocessing: PreprocessingConfig
    patch_size: tuple[int, int, int]
    batch_size: int
    size_divisor: tuple[int, int, int]
    median_shape: tuple[int, int, int]
    gpu_memory_gb: float
    anisotropic_axis: int | None
    fingerprint: DatasetFingerprint
    budget: PlanBudget | None = None

    def __post_init__(self) -> None:
        for p, d in zip(self.patch_size, self.size_divisor):
            if p <= 0 or p % d:
                raise ConfigError(
                    f"patch_size {self.patch_size} must be positive and divisible by "
                    f"size_divisor {self.size_divisor}"
                )

    @property
    def target_spacing(self) -> tuple[float, float, float]:
        """Shortcut for ``plan.preprocessing.target_spacing``."""
        return self.preprocessing.target_spacing

    def cache_key(self) -> str:
        """The preprocessing cache key (:meth:`PreprocessingConfig.cache_key`)."""
        return self.preprocessing.cache_key()

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Config.to_dict`; without a budget the ``budget`` key is left out."""
        out = super().to_dict()
        if self.budget is None:
            out.pop("budget")
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the plan as JSON (or YAML by extension), atomically."""
        text = self.to_yaml() if str(path).endswith((".yaml", ".yml")) else self.to_json()
        write_text_atomic(path, text + ("" if text.endswith("\n") else "\n"))


def plan_target_spacing(
    spacings: np.ndarray,
    shapes: np.ndarray,
    *,
    anisotropy_threshold: float = 3.0,
) -> tuple[tuple[float, float, float], int | None]:
    """nnU-Net's target spacing: median, with the 10th percentile on a coarse, short axis.

    Args:
        spacings: ``(N, 3)`` case spacings in mm.
        shapes: ``(N, 3)`` case shapes (after cropping).
        anisotropy_threshold: Ratio that makes an axis anisotropic (nnU-Net: 3).

    Returns:
        ``(target_spacing, anisotropic_axis)``; the axis is ``None`` when the median was kept.
    """
    spacings = np.asarray(spacings, dtype=np.float64)
    target = np.percentile(spacings, 50, axis=0)
    median_size = np.percentile(np.asarray(shapes, dtype=np.float64), 50, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(3) if a != worst]
    coarse = target[worst] > anisotropy_threshold * max(target[others])
    short = median_size[worst] * anisotropy_threshold < min(median_size[others])
    if not (coarse and short):
        return tuple(float(x) for x in target), None  # type: ignore[return-value]
    value = float(np.percentile(spacings[:, worst], 10))
    if value < max(target[others]):  # never finer than the in-plane axes
        value = max(float(max(target[others])), value) + 1e-5
    target[worst] = value
    return tuple(float(x) for x in target), worst  # type: ignore[return-value]


def _normalization(
    fingerprint: DatasetFingerprint, scheme: str | Sequence[str]
) -> tuple[ChannelNormalization, ...]:
    schemes = [scheme] * fingerprint.num_channels if isinstance(scheme, str) else list(scheme)
    if len(schemes) != fingerprint.num_channels:
        raise ConfigError(
            f"normalization lists {len(schemes)} scheme(s) for {fingerprint.num_channels} channel(s)"
        )
    out = []
    for name, stats in zip(schemes, fingerprint.intensity):
        if name == "ct":
            out.append(
                ChannelNormalization(
                    "ct", stats.percentile_00_5, stats.percentile_99_5, stats.mean, stats.std
                )
            )
        else:
            out.append(ChannelNormalization.from_dict({"scheme": name}))
    return tuple(out)


def create_plan(
    fingerprint: DatasetFingerprint,
    *,
    size_divisor: int | Sequence[int] = 32,
    gpu_memory_gb: float = 8.0,
    normalization: str | Sequence[str] = "ct",
    target_spacing: Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Plan:
    """Plan preprocessing and patch size for a fingerprinted dataset.

    Args:
        fingerprint: From :func:`~multitask_unet.data.planning.fingerprint.compute_fingerprint`.
        size_divisor: The network's ``size_divisor`` (int or per-axis ``(D, H, W)``).
        gpu_memory_gb: GPU memory to plan the patch and batch for (nnU-Net: 8).
        normalization: ``"ct"``, ``"zscore"`` or ``"none"``, for all channels or one each.
        target_spacing: Override the planned target spacing (mm, ``(D, H, W)``).
        labels: Segmentation label values (e.g. the dataset's declared labels); default: the
            labels seen by the fingerprint. Background 0 is always included.
        num_classes: Segmentation outputs, for the memory estimate; default: ``len(labels)``.

    Returns:
        The :class:`Plan`.
    """
    divisor = size_divisor_tuple(size_divisor)
    if target_spacing is None:
        spacing, aniso_axis = plan_target_spacing(
            fingerprint.spacings, fingerprint.shapes_after_crop
        )
    else:
        spacing, aniso_axis = tuple(float(s) for s in target_spacing), None  # type: ignore[assignment]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ConfigError(f"target_spacing must be three positive mm values, got {spacing}")
    new_shapes = [
        compute_new_shape(c.shape_after_crop, c.spacing, spacing) for c in fingerprint.cases
    ]
    median_shape = tuple(round(float(x)) for x in np.median(np.array(new_shapes), axis=0))
    labels = tuple(sorted({0, *(fingerprint.labels if labels is None else map(int, labels))}))
    classes = num_classes if num_classes is not None else len(labels)
    patch, estimate = plan_patch_size(
        median_shape,
        spacing,
        size_divisor=divisor,
        gpu_memory_gb=gpu_memory_gb,
        num_classes=classes,
    )
    capacity = feature_map_capacity(gpu_memory_gb)
    dataset_voxels = float(np.prod(median_shape, dtype=np.float64)) * len(fingerprint.cases)
    batch = round(capacity / estimate * 2)
    batch_cap = round(dataset_voxels * 0.05 / float(np.prod(patch, dtype=np.float64)))
    preprocessing = PreprocessingConfig(
        target_spacing=spacing,
        normalization=_normalization(fingerprint, normalization),
        labels=labels,
        orientation=fingerprint.orientation,
    )
    return Plan(
        preprocessing=preprocessing,
        patch_size=patch,
        batch_size=max(min(batch, batch_cap), 2),
        size_divisor=divisor,
        median_shape=median_shape,  # type: ignore[arg-type]
        gpu_memory_gb=float(gpu_memory_gb),
        anisotropic_axis=aniso_axis,
        fingerprint=fingerprint,
    )
