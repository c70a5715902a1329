"""Batched versions of the augmentation recipe's per-patch operations, in plain ``torch``.

Each function takes ``(N, C, D, H, W)`` float images (only the samples a transform applies to)
and the parameters drawn for them, and computes what the TorchIO recipe of
:mod:`~multitask_unet.data.sampling.augmentation` computes for one patch: the same formulas, on
whatever device the tensors are on. :class:`~multitask_unet.data.sampling.device_augmentation.DeviceAugmentation`
draws the parameters and calls them in the recipe's order.

Example:
    >>> import torch
    >>> x = torch.rand(2, 1, 6, 6, 6)
    >>> gaussian_blur(x, torch.tensor([[0.5, 0.7, 1.0], [1.0, 1.0, 1.0]])).shape
    torch.Size([2, 1, 6, 6, 6])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ELASTIC_CONTROL_POINTS",
    "ELASTIC_MAX_DISPLACEMENT",
    "brightness",
    "contrast",
    "elastic_deform",
    "elastic_field",
    "gamma_retain_stats",
    "gaussian_blur",
    "low_resolution",
]

#: TorchIO ``RandomElasticDeformation``'s defaults (the recipe's elastic step uses them).
ELASTIC_CONTROL_POINTS = 7
ELASTIC_MAX_DISPLACEMENT = 7.5
_BLUR_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default


def _per_channel(values: Tensor, x: Tensor) -> Tensor:
    """``(N, C)`` values shaped to broadcast over ``(N, C, D, H, W)``."""
    return values.to(device=x.device, dtype=x.dtype).reshape(*values.shape[:2], 1, 1, 1)


def _stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per ``(sample, channel)`` min, max, mean and (unbiased) std, shaped ``(N, C, 1, 1, 1)``."""
    flat = x.flatten(2)
    keep = (*x.shape[:2], 1, 1, 1)
    lo, hi = flat.amin(2).reshape(keep), flat.amax(2).reshape(keep)
    return lo, hi, flat.mean(2).reshape(keep), flat.std(2).reshape(keep)


def _symmetric_index(size: int, radius: int, device: torch.device) -> Tensor:
    """Indices of a ``radius``-padded axis with scipy's ``reflect`` mode (``d c b a | a b c d``)."""
    idx = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(idx >= size, 2 * size - 1 - idx, idx)


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """``scipy.ndimage.gaussian_filter`` per sample and channel with per-axis ``sigma``.

    As TorchIO's ``RandomBlur`` (voxel units): kernel radius ``int(4 * sigma + 0.5)``, weights
    normalised, borders mirrored with the edge voxel repeated.

    Args:
        x: ``(N, C, D, H, W)`` images.
        sigma: ``(N, 3)`` standard deviations in voxels, one per spatial axis.
    """
    n, c = x.shape[:2]
    sigma = sigma.detach().to("cpu", torch.float64)  # kernels are built on the CPU: no sync
    out = x
    for axis in range(3):
        radii = (_BLUR_TRUNCATE * sigma[:, axis] + 0.5).floor()
        radius = int(radii.max())
        if radius == 0:
            continue
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        weights = torch.exp(-0.5 * (offsets[None] / sigma[:, axis, None]) ** 2)
        weights = weights * (offsets.abs()[None] <= radii[:, None])  # each sample's own radius
        weights = (weights / weights.sum(1, keepdim=True)).to(x.device, x.dtype)
        dim = 2 + axis
        padded = out.index_select(dim, _symmetric_index(out.shape[dim], radius, x.device))
        view = [1, 1, 1]
        view[axis] = 2 * radius + 1
        kernel = weights.repeat_interleave(c, 0).reshape(n * c, 1, *view)
        flat = padded.reshape(1, n * c, *padded.shape[2:])
        out = F.conv3d(flat, kernel, groups=n * c).reshape(out.shape)
    return out


def brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Multiply each channel by its ``(N, C)`` factor (``RandomBrightness``)."""
    return x * _per_channel(factor, x)


def contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Scale each channel about its mean by its ``(N, C)`` factor, clipped to its old range
    (``RandomContrast``)."""
    lo, hi, mean, _ = _stats(x)
    out = (x - mean) * _per_channel(factor, x) + mean
    return torch.minimum(torch.maximum(out, lo), hi)


def gamma_retain_stats(x: Tensor, gamma: Tensor, *, invert: bool = False) -> Tensor:
    """nnU-Net's gamma per channel with mean and std kept (``RandomGammaRetainStats``).

    Args:
        x: ``(N, C, D, H, W)`` images.
        gamma: ``(N, C)`` exponents.
        invert: Apply to the negated image.
    """
    if invert:
        x = -x
    lo, hi, mean, std = _stats(x)
    span = (hi - lo).clamp_min(1e-7)
    y = ((x - lo) / span).pow(_per_channel(gamma, x)) * span + lo
    _, _, y_mean, y_std = _stats(y)
    y = (y - y_mean) / (y_std + 1e-8) * std + mean
    return -y if invert else y


def low_resolution(x: Tensor, zoom: Tensor, apply: Tensor, *, axes: Sequence[int]) -> Tensor:
    """Downsample (nearest) and upsample back (trilinear) the channels where ``apply`` is True
    (``RandomLowResolution``); the sizes differ per channel, so channels are resized one by one.

    Args:
        x: ``(N, C, D, H, W)`` images.
        zoom: ``(N, C)`` zoom factors.
        apply: ``(N, C)`` bool, which channels lose resolution.
        axes: Spatial axes that lose resolution.
    """
    out = x.clone()
    shape = tuple(x.shape[2:])
    for i, ch in apply.nonzero().tolist():
        z = float(zoom[i, ch])
        small = [max(1, round(s * z)) if a in axes else s for a, s in enumerate(shape)]
        low = F.interpolate(x[i : i + 1, ch : ch + 1], size=small, mode="nearest-exact")
        out[i, ch] = F.interpolate(low, size=shape, mode="trilinear", align_corners=False)[0, 0]
    return out


def _bspline_weights(size: int, count: int, device: torch.device) -> Tensor:
    """``(size, count)`` cubic B-spline weights of ``count`` control points over an axis, on
    the grid ``SimpleITK.BSplineTransformInitializer`` lays over an image of spacing 1."""
    extent = size + 0.25  # SimpleITK's transform domain: [-0.625, size - 0.375]
    spacing = extent / (count - 3)
    u = (torch.arange(size, device=device, dtype=torch.float64) + 0.625) / spacing + 1
    t = (u[:, None] - torch.arange(count, device=device, dtype=torch.float64)[None]).abs()
    return torch.where(t < 1, 2 / 3 - t**2 + t**3 / 2, ((2 - t).clamp_min(0) ** 3) / 6)


def elastic_field(control_points: Tensor, shape: Sequence[int]) -> Tensor:
    """Displacement (voxels) of TorchIO's ``ElasticDeformation`` at every voxel.

    The cubic B-spline that ``SimpleITK.BSplineTransformInitializer`` builds over the patch
    with ``control_points.shape[1:4]`` control points, evaluated separably.

    Args:
        control_points: ``(N, K0, K1, K2, 3)`` coefficients, component ``k`` along axis ``k``.
        shape: Patch ``(D, H, W)``.

    Returns:
        ``(N, D, H, W, 3)`` float64 displacements along ``(D, H, W)``.
    """
    cp = control_points.to(torch.float64)
    w = [_bspline_weights(s, k, cp.device) for s, k in zip(shape, cp.shape[1:4], strict=True)]
    return torch.einsum("ai,bj,ck,nijkd->nabcd", w[0], w[1], w[2], cp)


def elastic_deform(image: Tensor, seg: Tensor, field: Tensor) -> tuple[Tensor, Tensor]:
    """Resample ``image`` (linear) and ``seg`` (nearest) at ``voxel + field``, as SimpleITK's
    resampler does: clamped at the borders, each channel's minimum beyond half a voxel outside.

    Args:
        image: ``(N, C, D, H, W)`` float.
        seg: ``(N, 1, D, H, W)`` integer.
        field: ``(N, D, H, W, 3)`` displacements from :func:`elastic_field`.
    """
    shape = image.shape[2:]
    sizes = torch.tensor(shape, device=image.device, dtype=torch.float64)
    axes = [torch.arange(s, device=image.device, dtype=torch.float64) for s in shape]
    where = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1) + field.to(image.device)
    outside = ((where < -0.5) | (where > sizes - 0.5)).any(-1)[:, None]
    grid = ((2 * where + 1) / sizes - 1).flip(-1).to(image.dtype)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = torch.where(outside, image.flatten(2).amin(2)[..., None, None, None], out)
    labels = F.grid_sample(seg.float(), grid, mode="nearest", padding_mode="border",
                           align_corners=False)  # fmt: skip
    labels = torch.where(outside, seg.flatten(2).amin(2)[..., None, None, None].float(), labels)
    return out, labels.round().to(seg.dtype)
