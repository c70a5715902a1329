"""Gaussian importance weights for blending overlapping windows (nnU-Net's ``compute_gaussian``).

Each window's logits are multiplied by a Gaussian centred on the window (``sigma = size / 8``
per axis, as nnU-Net), summed into the output and divided by the summed weights, so that
voxels near a window's border, where the network sees little context, count less.

nnU-Net builds the map by filtering a delta image with ``scipy.ndimage.gaussian_filter``
(mode ``constant``, truncated at 4 sigma), scales it to a maximum of 10 and replaces zeros by
the smallest non-zero value. The filtered delta *is* the sampled, truncated Gaussian kernel, so
this module computes it in closed form; only ratios matter for blending, so the maximum is 1.

Example:
    >>> w = gaussian_importance((4, 8))
    >>> tuple(w.shape), float(w.max()), float(w[2, 4])
    ((4, 8), 1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask_unet.errors import ShapeError

__all__ = ["gaussian_importance"]


def _axis_weights(size: int, sigma_scale: float) -> torch.Tensor:
    sigma = size * sigma_scale
    centre = size // 2  # nnU-Net puts the delta at i // 2
    x = torch.arange(size, dtype=torch.float64) - centre
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate=4.0
    return torch.where(x.abs() <= radius, w, torch.zeros_like(w))


def gaussian_importance(
    window_size: Sequence[int],
    *,
    sigma_scale: float = 1.0 / 8,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The blending weights of one window, maximum 1, never 0.

    Args:
        window_size: Window shape ``(D, H, W)`` (any number of axes).
        sigma_scale: Standard deviation as a fraction of the window size per axis.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        ``window_size``-shaped tensor: ``prod_a exp(-x_a^2 / (2 sigma_a^2))`` with ``x_a`` the
        offset from voxel ``size // 2``; values that would be 0 (beyond 4 sigma) take the
        smallest positive value, so no voxel has zero total weight.
    """
    sizes = tuple(int(s) for s in window_size)
    if not sizes or min(sizes) < 1:
        raise ShapeError(f"window_size must be positive sizes, got {tuple(window_size)}")
    if not 0 < sigma_scale < math.inf:
        raise ShapeError(f"sigma_scale must be positive, got {sigma_scale}")
    weights = torch.ones((), dtype=torch.float64)
    for axis, size in enumerate(sizes):
        shape = [1] * len(sizes)
        shape[axis] = size
        weights = weights * _axis_weights(size, sigma_scale).reshape(shape)
    weights = weights / weights.max()
    positive = weights > 0
    if not bool(positive.all()):
        weights = torch.where(positive, weights, weights[positive].min())
    return weights.to(device=device, dtype=dtype)
