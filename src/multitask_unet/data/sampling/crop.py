"""Cropping a box out of ``(C, D, H, W)`` arrays, padding where it leaves them.

Shared by the patch sampler (:mod:`~multitask_unet.data.sampling.patches`) and the spatial
augmentation (:mod:`~multitask_unet.data.sampling.spatial`). Only the box is read, so the source
can be a memory map.

Example:
    >>> import numpy as np
    >>> crop_and_pad(np.ones((1, 4, 4, 4)), lower=(-1, 0, 2), size=(2, 2, 3))[0, :, 0]
    tensor([[0., 0., 0.],
            [1., 1., 0.]], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["center_crop_or_pad", "crop_and_pad"]


def crop_and_pad(
    array: np.ndarray | torch.Tensor,
    lower: Sequence[int],
    size: Sequence[int],
    *,
    pad_value: float = 0,
) -> torch.Tensor:
    """Crop ``(C, D, H, W)`` to the box ``[lower, lower + size)``, padding outside the array.

    Only the box is read, so ``array`` can be a memory map. ``lower`` may be negative.

    Returns:
        A new ``(C, *size)`` tensor of the array's dtype.
    """
    src = array.numpy() if isinstance(array, torch.Tensor) else array
    shape = src.shape[1:]
    out = np.full((src.shape[0], *size), pad_value, dtype=src.dtype)
    src_sl, dst_sl = [slice(None)], [slice(None)]
    for lo, n, dim in zip(lower, size, shape, strict=True):
        a, b = max(lo, 0), min(lo + n, dim)
        if b <= a:
            return torch.from_numpy(out)
        src_sl.append(slice(a, b))
        dst_sl.append(slice(a - lo, b - lo))
    out[tuple(dst_sl)] = src[tuple(src_sl)]
    return torch.from_numpy(out)


def center_crop_or_pad(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre-crop (or zero-pad) ``(C, D, H, W)`` to ``(C, *size)``; a no-op at the right size."""
    if tuple(tensor.shape[1:]) == tuple(size):
        return tensor
    lower = [(s - n) // 2 for s, n in zip(tensor.shape[1:], size, strict=True)]
    return crop_and_pad(tensor.contiguous(), lower, size)
