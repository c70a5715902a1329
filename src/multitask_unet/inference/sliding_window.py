"""Sliding-window prediction of segmentation logits and classification logits.

:func:`sliding_window_predict` follows nnU-Net's ``predict_sliding_window_return_logits``:

1. pad the volume with zeros (centred, as nnU-Net) to at least the window on every axis;
2. place windows as nnU-Net does (:func:`~multitask_unet.inference.windows.plan_windows`);
3. run the network on batches of windows, optionally with mirroring test-time augmentation
   (every combination of flips of ``mirror_axes``, predictions flipped back and averaged);
4. blend the segmentation logits with Gaussian importance weights (``sigma = window / 8``) or
   uniformly, and crop the padding away.

Classification heads are pooled window by window: each window passes a 0/1 mask of the voxels
it **owns** (a partition of the volume, see :mod:`~multitask_unet.inference.windows`) as
``weights`` to ``head.pool``; the states of all windows are merged with ``head.merge`` and
projected once with ``head.project``. With mirroring this is done per flip combination and
the resulting logits are averaged (as the segmentation logits are). With
``cls_weighting="foreground"`` the ownership mask is multiplied by the window's predicted
foreground probability ``1 - p(background)``: mean and attention pooling then weight voxels by
how likely they are foreground (max pooling only counts voxels with a positive weight, which
softmax probabilities always are, so it is unchanged).

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 2})})
    >>> out = sliding_window_predict(model, torch.randn(1, 1, 20, 40, 30), window_size=(16, 32, 32))
    >>> tuple(out["seg"].shape), tuple(out["cls"].shape)
    ((1, 3, 20, 40, 30), (1, 2))
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.heads.state import PoolState
from multitask_unet.inference.gaussian import gaussian_importance
from multitask_unet.inference.windows import Window, plan_windows
from multitask_unet.models import MultiTaskUNet

__all__ = ["mirror_combinations", "sliding_window_predict"]

Blend = Literal["gaussian", "constant"]
ClsWeighting = Literal["ownership", "foreground"]


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Flip combinations of mirroring TTA: ``()`` first, then nnU-Net's order.

    Example:
        >>> mirror_combinations((0, 1))
        [(), (0,), (1,), (0, 1)]
    """
    axes = tuple(int(a) for a in axes)
    return [()] + [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def _check_window(
    window_size: int | Sequence[int] | None, spatial: tuple[int, ...], divisor: tuple[int, ...]
) -> tuple[int, ...]:
    dims = len(spatial)
    if window_size is None:  # the whole volume, padded to the divisor
        return tuple(math.ceil(s / d) * d for s, d in zip(spatial, divisor))
    window = (int(window_size),) * dims if isinstance(window_size, int) else tuple(window_size)
    if len(window) != dims or min(window) < 1:
        raise ShapeError(f"window_size must be {dims} positive sizes, got {window_size!r}")
    if any(k % d for k, d in zip(window, divisor)):
        nearest = tuple(max(d, round(k / d) * d) for k, d in zip(window, divisor))
        raise ShapeError(
            f"window_size {window} is not divisible by the model's size_divisor {divisor}; "
            f"use e.g. {nearest} (the plan's patch_size always fits)"
        )
    return tuple(int(k) for k in window)


def _pad_centred(volume: torch.Tensor, target: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
    """Zero-pad the spatial axes to at least ``target``, centred (nnU-Net's ``pad_nd_image``)."""
    spatial = volume.shape[2:]
    below = [max(t - s, 0) // 2 for s, t in zip(spatial, target)]
    above = [max(t - s, 0) - b for s, t, b in zip(spatial, target, below)]
    if not any(below) and not any(above):
        return volume, below
    pads = [p for b, a in zip(reversed(below), reversed(above)) for p in (b, a)]
    return F.pad(volume, pads, mode="constant", value=0.0), below


def _flip(t: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Flip the spatial ``axes`` (0 = D) of a ``(C, *S)`` tensor."""
    return t.flip([a + 1 for a in axes]) if axes else t


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@functools.lru_cache(maxsize=4)
def _importance(window: tuple[int, ...], blend: Blend, device: torch.device) -> torch.Tensor:
    """The blending weights, made once per window, blend and device (as nnU-Net caches its
    Gaussian); callers must not modify them in place."""
    if blend == "gaussian":
        return gaussian_importance(window, device=device)
    return torch.ones(window, device=device)


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick its fastest convolutions for the fixed window shape, as nnU-Net's
    predictor does (unless deterministic algorithms are asked for); restored afterwards."""
    before = torch.backends.cudnn.benchmark
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def sliding_window_predict(
    model: MultiTaskUNet,
    volume: torch.Tensor,
    *,
    window_size: int | Sequence[int] | None,
    overlap: float = 0.5,
    blend: Blend = "gaussian",
    mirror_axes: Sequence[int] = (),
    window_batch_size: int = 1,
    device: torch.device | str | None = None,
    output_device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cls_weighting: ClsWeighting = "ownership",
) -> dict[str, torch.Tensor]:
    """Predict a volume window by window (see the module docstring for the method).

    Args:
        model: The network (any mode; it runs in eval mode and its mode is restored).
        volume: ``(B, C, *S)`` preprocessed image(s); cases of a batch are predicted one by one.
        window_size: Window ``(D, H, W)`` (an int for all axes), divisible by
            ``model.size_divisor``, usually the plan's patch size; ``None``: the whole volume
            in one window, padded to ``size_divisor``.
        overlap: Fraction of a window shared with its neighbours (nnU-Net's
            ``tile_step_size = 1 - overlap``).
        blend: ``"gaussian"`` importance weights or ``"constant"`` (plain average).
        mirror_axes: Spatial axes (0 = D) to mirror for test-time augmentation, e.g.
            ``(0, 1, 2)``: ``2 ** len(mirror_axes)`` passes per window.
        window_batch_size: Network batch size (windows and their mirrored copies together).
        device: Where the network runs (default: the model's device; the model must be there).
        output_device: Where the logits are accumulated and returned (default:
            ``volume.device``); keep large volumes on the CPU this way.
        dtype: Autocast dtype for the network (``torch.float16`` / ``torch.bfloat16``) or
            ``None`` for full precision. Accumulation and pooling stay float32.
        cls_weighting: ``"ownership"`` (0/1 owned voxels) or ``"foreground"`` (times the
            window's predicted foreground probability).

    Returns:
        ``{"seg": (B, num_classes, *S) logits, <head>: (B, K) logits}`` (float32, on
        ``output_device``).
    """
    dims = model.config.spatial_dims
    if not isinstance(volume, torch.Tensor):
        raise ShapeError(
            f"volume must be a (B, C, {', '.join('DHW'[-dims:])}) torch.Tensor, got a "
            f"{type(volume).__name__}; convert it with torch.as_tensor"
        )
    if volume.ndim != dims + 2:
        raise ShapeError(
            f"volume must be (B, C, {', '.join('DHW'[-dims:])}), got shape {tuple(volume.shape)}"
        )
    if blend not in ("gaussian", "constant"):
        raise ConfigError(f"blend must be 'gaussian' or 'constant', got {blend!r}")
    if cls_weighting not in ("ownership", "foreground"):
        raise ConfigError(
            f"cls_weighting must be 'ownership' or 'foreground', got {cls_weighting!r}"
        )
    if window_batch_size < 1:
        raise ConfigError(f"window_batch_size must be >= 1, got {window_batch_size}")
    bad_axes = [a for a in mirror_axes if not 0 <= a < dims]
    if bad_axes or len(set(mirror_axes)) != len(mirror_axes):
        raise ConfigError(
            f"mirror_axes {tuple(mirror_axes)} must be distinct spatial axes 0..{dims - 1}"
        )
    model_device = _model_device(model)
    device = torch.device(device) if device is not None else model_device
    if device != model_device:
        raise ConfigError(
            f"the model is on {model_device} but device={device}; move it with model.to(device)"
        )
    output_device = torch.device(output_device) if output_device is not None else volume.device
    if output_device == device:  # as nnU-Net: the image goes where the logits are, once
        volume = volume.to(device)
    spatial = tuple(int(s) for s in volume.shape[2:])
    divisor = tuple(model.size_divisor)
    window = _check_window(window_size, spatial, divisor)
    padded, below = _pad_centred(volume, [max(s, k) for s, k in zip(spatial, window)])
    valid = [(b, b + s) for b, s in zip(below, spatial)]
    windows = plan_windows(padded.shape[2:], window, overlap=overlap, divisor=divisor, valid=valid)
    importance = _importance(window, blend, output_device)
    mirrors = mirror_combinations(mirror_axes)
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )
    outputs: list[dict[str, torch.Tensor]] = []
    with _eval_mode(model), torch.inference_mode(), autocast, _cudnn_autotune(device):
        for b in range(volume.shape[0]):
            outputs.append(
                _predict_one(
                    model, padded[b], windows, mirrors, importance,
                    window_batch_size=window_batch_size, device=device,
                    output_device=output_device, cls_weighting=cls_weighting,
                )
            )  # fmt: skip
    crop = (slice(None), *(slice(lo, hi) for lo, hi in valid))
    seg = [o["seg"][crop] for o in outputs]  # views, as nnU-Net's; one case is not copied
    result = {"seg": seg[0][None] if len(seg) == 1 else torch.stack(seg)}
    for name in model.heads:
        result[name] = torch.cat([o[name] for o in outputs])
    return result


def _predict_one(
    model: MultiTaskUNet,
    image: torch.Tensor,
    windows: list[Window],
    mirrors: list[tuple[int, ...]],
    importance: torch.Tensor,
    *,
    window_batch_size: int,
    device: torch.device,
    output_device: torch.device,
    cls_weighting: str,
) -> dict[str, torch.Tensor]:
    """Blend one ``(C, *P)`` padded image; returns padded ``seg`` and ``(1, K)`` head logits.

    Per window, as nnU-Net: one copy of the window to ``device`` (its mirrored copies are made
    there), its mirrored predictions summed in place, then weighted by
    ``importance / len(mirrors)`` (exact: a power of two) and added to the output.
    """
    spatial = image.shape[1:]
    with torch.inference_mode(False):  # a normal tensor, so the result is one (not copied)
        logits = torch.zeros((model.config.num_classes, *spatial), device=output_device)
    norm = torch.zeros(spatial, device=output_device)
    scale = importance.to(device) / len(mirrors)
    states: dict[str, list[list[PoolState]]] = {n: [[] for _ in mirrors] for n in model.heads}
    pending: dict[int, torch.Tensor] = {}  # window index -> sum of its mirrored predictions
    items = [(w, m) for w in range(len(windows)) for m in range(len(mirrors))]
    crops: dict[int, torch.Tensor] = {}  # the batch's windows on device, each copied once
    for batch in _batches(items, window_batch_size):
        previous, crops = crops, {}
        for w in dict.fromkeys(w for w, _ in batch):
            crop = previous.get(w)
            if crop is None:
                crop = image[(slice(None), *windows[w].slices)].to(device, non_blocking=True)
            crops[w] = crop
        x = torch.stack([_flip(crops[w], mirrors[m]) for w, m in batch])
        features = model.features(x)
        seg = model.seg_head(features.decoder[-1]).float()
        if model.heads:
            owned = {w: windows[w].ownership(device=device) for w in crops}
            weights = torch.stack([_flip(owned[w], mirrors[m]) for w, m in batch])
            if cls_weighting == "foreground":
                weights = weights * (1.0 - seg.softmax(dim=1)[:, :1])
            for name, head in model.heads.items():
                state = head.pool(features, weights)
                for i, (w, m) in enumerate(batch):
                    if windows[w].owns_any:
                        states[name][m].append(state.map(lambda t, i=i: t[i : i + 1]))
        for i, (w, m) in enumerate(batch):
            # mirrors[0] is (); every later flip is a new tensor, so the sum goes into it
            pred = _flip(seg[i], mirrors[m])
            pending[w] = pred.add_(pending[w]) if m else pred
            if m == len(mirrors) - 1:
                total = pending.pop(w)  # m == 0: may be the network's own output, kept as is
                total = total.mul_(scale) if m else total * scale
                region = (slice(None), *windows[w].slices)
                logits[region] += total.to(output_device)
                norm[region[1:]] += importance
    logits /= norm
    out = {"seg": logits}
    for name, head in model.heads.items():
        per_mirror = [head.project(head.merge(s)) for s in states[name]]
        out[name] = torch.stack(per_mirror).mean(dim=0).to(output_device)
    return out
