"""Rotation and scaling of a patch, resampled from a larger window (nnU-Net's ``SpatialTransform``).

:class:`RandomAffineCrop` draws a rotation-scaling matrix, names the part of the window the patch
needs (:meth:`~RandomAffineCrop.region`) and resamples only the patch's voxels from it. The patch
sampler (:class:`~multitask_unet.data.sampling.patches.ForegroundPatchSampler`) takes it as its
``spatial_transform`` and crops only that part of a (memory-mapped) case;
:func:`~multitask_unet.data.sampling.augmentation.build_augmentation` puts it first in the
augmentation pipeline. Everything works in voxel units; all randomness comes from ``torch``'s
global generator.

Example:
    >>> import torch, torchio as tio
    >>> window = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 12, 12, 12)))
    >>> RandomAffineCrop((8, 8, 8), p_rotation=1.0)(window)["image"].shape
    (1, 8, 8, 8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from multitask_unet.data.sampling.crop import crop_and_pad

__all__ = ["RandomAffineCrop", "affine_matrix"]


def affine_matrix(angles_degrees: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """``Rz @ Ry @ Rx @ diag(scales)`` (nnU-Net's ``create_affine_matrix_3d``), ``(3, 3)``."""
    a = [math.radians(v) for v in angles_degrees]
    c, n = [math.cos(v) for v in a], [math.sin(v) for v in a]
    rx = np.array([[1, 0, 0], [0, c[0], -n[0]], [0, n[0], c[0]]])
    ry = np.array([[c[1], 0, n[1]], [0, 1, 0], [-n[1], 0, c[1]]])
    rz = np.array([[c[2], -n[2], 0], [n[2], c[2], 0], [0, 0, 1]])
    return rz @ ry @ rx @ np.diag([float(v) for v in scales])


def uniform(lo: float, hi: float) -> float:
    """A draw from U(lo, hi) with ``torch``'s global generator (as TorchIO draws)."""
    return lo + (hi - lo) * float(torch.rand(1))


class RandomAffineCrop(RandomTransform, tio.SpatialTransform):
    """Rotate and scale a window about its centre and resample only the central patch.

    Without rotation or scaling the patch is a plain centre crop (no interpolation). Intensity
    images are resampled trilinearly, label maps with nearest neighbours; outside the window is 0.
    Conventions follow nnU-Net's ``SpatialTransform`` (rotation ``Rz @ Ry @ Rx``, scale > 1 zooms
    out, centre at ``shape / 2`` in voxel-edge coordinates).

    Args:
        patch_size: Output size ``(D, H, W)``.
        rotation_degrees: Maximum absolute angle about each axis.
        scaling: Range of the one scale factor.
        scaling_axes: Axes that are scaled (nnU-Net's dummy-2D case: ``(1, 2)``).
        p_rotation: Probability of rotating.
        p_scaling: Probability of scaling.
    """

    def __init__(
        self,
        patch_size: Sequence[int],
        *,
        rotation_degrees: Sequence[float] = (30.0, 30.0, 30.0),
        scaling: tuple[float, float] = (0.7, 1.4),
        scaling_axes: Sequence[int] = (0, 1, 2),
        p_rotation: float = 0.2,
        p_scaling: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.rotation_degrees = tuple(float(v) for v in rotation_degrees)
        self.scaling, self.scaling_axes = scaling, tuple(scaling_axes)
        self.p_rotation, self.p_scaling = p_rotation, p_scaling

    def matrix(self) -> torch.Tensor | None:
        """Draw the ``(3, 3)`` rotation-scaling matrix, or None for a plain crop."""
        rotate = float(torch.rand(1)) < self.p_rotation
        scale = float(torch.rand(1)) < self.p_scaling
        if not (rotate or scale):
            return None
        angles = [uniform(-d, d) if rotate else 0.0 for d in self.rotation_degrees]
        s = uniform(*self.scaling) if scale else 1.0
        return self.build_matrix(angles, [s if i in self.scaling_axes else 1.0 for i in range(3)])

    @staticmethod
    def build_matrix(angles_degrees: Sequence[float], scales: Sequence[float]) -> torch.Tensor:
        """``Rz @ Ry @ Rx @ diag(scales)`` as nnU-Net's ``create_affine_matrix_3d``, ``(3, 3)``."""
        return torch.from_numpy(affine_matrix(angles_degrees, scales)).float()

    def region(
        self, window_shape: Sequence[int], matrix: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, size)`` of the part of a window that :meth:`resample` reads.

        Cropping only this box (instead of the whole window) gives the same patch.
        """
        shape = np.asarray(window_shape, dtype=np.int64)
        patch = np.asarray(self.patch_size, dtype=np.int64)
        if matrix is None:
            lower = shape // 2 - patch // 2
            return lower, patch
        extent = np.abs(matrix.double().numpy()) @ ((patch - 1) / 2)
        lower = np.floor(shape / 2 - extent - 0.5).astype(np.int64) - 1
        upper = np.floor(shape / 2 + extent - 0.5).astype(np.int64) + 3
        lower, upper = np.maximum(lower, 0), np.minimum(upper, shape)
        return lower, np.maximum(upper - lower, 1)

    def resample(
        self, subject: tio.Subject, matrix: torch.Tensor | None, *, center: Sequence[float]
    ) -> tio.Subject:
        """Resample the patch around ``center`` (voxel-edge coordinates) of ``subject``, in place."""
        if matrix is None:
            lower = [math.floor(c) - p // 2 for c, p in zip(center, self.patch_size, strict=True)]
            for image in subject.get_images(intensity_only=False):
                image.set_data(crop_and_pad(image.data, lower, self.patch_size))
            return subject
        # grid_sample's normalised coordinates: in = A @ out + b, built separably per axis
        shape = np.asarray(subject.spatial_shape, dtype=np.float64)
        a = matrix.double().numpy() / (shape[:, None] / 2)
        b = 2 * (np.asarray(center, dtype=np.float64) - shape / 2) / shape
        grid = torch.from_numpy(b[::-1].astype(np.float32).copy()).expand(*self.patch_size, 3)
        for axis, size in enumerate(self.patch_size):
            offsets = torch.linspace((1 - size) / 2, (size - 1) / 2, size, dtype=torch.float64)
            column = torch.from_numpy(a[::-1, axis].copy())  # this axis's effect on (x, y, z)
            view = [1, 1, 1, 3]
            view[axis] = size
            grid = grid + (offsets[:, None] * column).float().reshape(view)
        grid = grid[None]
        for image in subject.get_images(intensity_only=False):
            data = image.data
            mode = "nearest" if image.type == tio.LABEL else "bilinear"
            out = F.grid_sample(data[None].float(), grid, mode=mode, align_corners=False)[0]
            image.set_data(out.to(data.dtype) if image.type == tio.LABEL else out)
        return subject

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        center = [s / 2 for s in subject.spatial_shape]
        return self.resample(subject, self.matrix(), center=center)
