"""Deep supervision as nnU-Net does it: weights, target downsampling and the loss wrapper.

nnU-Net v2 gives output ``i`` (0 = full resolution) the weight ``1 / 2**i``, except the
lowest-resolution output, which gets ``0``, and normalises the weights to sum to 1. Targets are downsampled with ``interpolate(mode="nearest-exact")`` to
``round(size * scale)`` per axis, where the scales are ``1 / cumprod(pool_op_kernel_sizes)``
without the last stage (``nnUNetTrainer._get_deep_supervision_scales``,
``DownsampleSegForDSTransform``).

Example:
    >>> deep_supervision_weights(4)
    (0.5714285714285714, 0.2857142857142857, 0.14285714285714285, 0.0)
    >>> deep_supervision_scales([(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)])
    ((1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (0.5, 0.25, 0.25))
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.losses.base import zero_loss

__all__ = [
    "DeepSupervisionLoss",
    "deep_supervision_scales",
    "deep_supervision_weights",
    "downsample_seg_target",
]

ShapeOrScale = float | Sequence[float] | Sequence[int]


def deep_supervision_weights(num_outputs: int) -> tuple[float, ...]:
    """nnU-Net's deep-supervision weights for ``num_outputs`` outputs ordered fine to coarse.

    ``w_i = 1 / 2**i``, the coarsest set to 0, normalised to sum 1. A single output gets ``(1.0,)``.
    """
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ConfigError(f"num_outputs must be a positive int, got {num_outputs!r}")
    if num_outputs == 1:
        return (1.0,)
    raw = [1.0 / 2**i for i in range(num_outputs - 1)] + [0.0]
    total = sum(raw)
    return tuple(w / total for w in raw)


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> tuple[tuple[float, ...], ...]:
    """Per-output target scales from per-stage encoder strides (nnU-Net's ``pool_op_kernel_sizes``).

    Args:
        strides: One stride per axis for every encoder stage, the first usually all ones.

    Returns:
        ``len(strides) - 1`` scales, fine to coarse: ``1 / cumprod(strides)`` without the last.
    """
    if not strides:
        raise ConfigError("strides must list at least one stage, e.g. [(1, 1, 1), (2, 2, 2)]")
    ndim = len(strides[0])
    cumulative = [1] * ndim
    scales = []
    for stage, stride in enumerate(strides):
        if len(stride) != ndim or any(int(s) < 1 for s in stride):
            raise ConfigError(
                f"strides[{stage}] = {tuple(stride)} must hold {ndim} positive ints like strides[0]"
            )
        cumulative = [c * int(s) for c, s in zip(cumulative, stride)]
        scales.append(tuple(1.0 / c for c in cumulative))
    return tuple(scales[:-1])


def _is_shape(entry: object) -> bool:
    return (
        isinstance(entry, Sequence)
        and not isinstance(entry, str)
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in entry)
    )


def _target_size(size: Sequence[int], entry: ShapeOrScale, index: int) -> list[int]:
    ndim = len(size)
    if _is_shape(entry):
        shape = [int(v) for v in entry]  # type: ignore[union-attr]
        if len(shape) != ndim or any(v < 1 for v in shape):
            raise ShapeError(
                f"shapes_or_scales[{index}] = {tuple(shape)} must be {ndim} positive ints"
            )
        return shape
    if isinstance(entry, numbers.Real) and not isinstance(entry, numbers.Integral):
        scales = [float(entry)] * ndim
    elif isinstance(entry, Sequence) and all(isinstance(v, numbers.Real) for v in entry):
        scales = [float(v) for v in entry]
    else:
        raise ShapeError(
            f"shapes_or_scales[{index}] = {entry!r} is neither a shape (a sequence of {ndim} ints) "
            f"nor a scale (a float, or a sequence of {ndim} numbers with at least one float); "
            f"write 1.0, not 1, for a unit scale"
        )
    if len(scales) != ndim or any(not 0 < s <= 1 for s in scales):
        raise ShapeError(f"shapes_or_scales[{index}] = {entry!r} must give {ndim} scales in (0, 1]")
    return [round(n * s) for n, s in zip(size, scales)]


def downsample_seg_target(
    target: torch.Tensor, shapes_or_scales: Sequence[ShapeOrScale]
) -> list[torch.Tensor]:
    """Downsample a label map to several resolutions as nnU-Net's ``DownsampleSegForDSTransform``.

    Nearest-neighbour (``mode="nearest-exact"``) on a float copy, cast back to the input dtype; an
    entry equal to the full size returns ``target`` itself.

    Args:
        target: ``(B, 1, *S)`` or ``(B, *S)`` labels of any dtype.
        shapes_or_scales: One entry per output: a spatial shape (a sequence of ints, e.g. an
            output's ``shape[2:]``) or a scale (a float for every axis, or a sequence of numbers
            with at least one float, e.g. ``(1.0, 0.5, 0.5)``); scaled sizes are
            ``round(size * scale)`` as in nnU-Net.

    Returns:
        One tensor per entry, with the layout and dtype of ``target``.

    Example:
        >>> seg = torch.randint(0, 3, (2, 1, 8, 16, 16))
        >>> [t.shape[2:] for t in downsample_seg_target(seg, [1.0, (1.0, 0.5, 0.5), (4, 4, 4)])]
        [torch.Size([8, 16, 16]), torch.Size([8, 8, 8]), torch.Size([4, 4, 4])]
    """
    if not isinstance(target, torch.Tensor) or target.ndim < 2:
        raise ShapeError(f"target must be a (B, 1, *S) or (B, *S) tensor, got {target!r}")
    if isinstance(shapes_or_scales, (str, torch.Tensor)) or not isinstance(
        shapes_or_scales, Sequence
    ):
        raise ShapeError(
            f"shapes_or_scales must be a list with one shape or scale per output, "
            f"got {shapes_or_scales!r}"
        )
    ndims = {len(e) for e in shapes_or_scales if isinstance(e, Sequence) and not isinstance(e, str)}
    if len(ndims) > 1:
        raise ShapeError(f"shapes_or_scales mixes entries for {sorted(ndims)} spatial axes")
    if ndims:
        (ndim,) = ndims
        if target.ndim not in (ndim + 1, ndim + 2) or (
            target.ndim == ndim + 2 and target.shape[1] != 1
        ):
            raise ShapeError(
                f"target of shape {tuple(target.shape)} is neither (B, 1, *S) nor (B, *S) "
                f"with {ndim} spatial axes as shapes_or_scales implies"
            )
        has_channel = target.ndim == ndim + 2
    else:
        has_channel = target.ndim >= 3 and target.shape[1] == 1
    batched = target if has_channel else target.unsqueeze(1)
    size = tuple(batched.shape[2:])
    as_float: torch.Tensor | None = None
    results = []
    for index, entry in enumerate(shapes_or_scales):
        new_size = _target_size(size, entry, index)
        if tuple(new_size) == size:
            results.append(target)
            continue
        if as_float is None:
            as_float = batched.float()
        down = F.interpolate(as_float, size=new_size, mode="nearest-exact").to(target.dtype)
        results.append(down if has_channel else down[:, 0])
    return results


class DeepSupervisionLoss(nn.Module):
    """Applies a segmentation loss to every deep-supervision output and sums with weights.

    Args:
        loss: Any segmentation loss called as ``loss(logits, target)`` (e.g. :class:`DiceCELoss`);
            it also receives ``valid=`` when one is given.
        weights: One weight per output, fine to coarse, used as given; ``None`` (default) uses
            :func:`deep_supervision_weights` for the number of outputs of each call.

    Outputs with weight 0 are not evaluated but still get a zero gradient, so DDP sees every
    parameter used (nnU-Net sets the weight to 1e-6 under DDP for that reason).

    Example:
        >>> from multitask_unet.losses import DiceCELoss
        >>> loss = DeepSupervisionLoss(DiceCELoss())
        >>> outputs = [torch.randn(2, 3, 8, 16, 16), torch.randn(2, 3, 8, 8, 8),
        ...            torch.randn(2, 3, 4, 4, 4)]
        >>> target = torch.randint(0, 3, (2, 1, 8, 16, 16))
        >>> loss(outputs, target).shape
        torch.Size([])
    """

    def __init__(self, loss: nn.Module, *, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not callable(loss):
            raise ConfigError(f"loss must be a callable loss module, got {loss!r}")
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            if not weights or not any(w != 0 for w in weights):
                raise ConfigError(f"weights {weights} must hold at least one non-zero weight")
        self.loss = loss
        self.weights = weights

    @property
    def lower_bound(self) -> float:
        """Smallest possible value, from the wrapped loss's ``lower_bound`` (0 if it has none)."""
        scale = 1.0 if self.weights is None else sum(w for w in self.weights if w > 0)
        return float(getattr(self.loss, "lower_bound", 0.0)) * scale

    def extra_repr(self) -> str:
        return f"weights={self.weights if self.weights is not None else 'nnU-Net'}"

    def forward(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor | Sequence[torch.Tensor],
        *,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted sum of the loss over outputs.

        Args:
            outputs: ``[seg, *seg_deep]``, logits fine to coarse, each ``(B, C, *S_i)``; a single
                tensor is the same as a list of one.
            target: The full-resolution labels ``(B, 1, *S)`` or ``(B, *S)``, downsampled here to
                each output's size, or a list with one target per output (already downsampled).
            valid: Optional bool ``(B,)`` passed on to the loss.

        Returns:
            0-dim float32 tensor.
        """
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        outputs = list(outputs)
        if not outputs:
            raise ShapeError("outputs is empty; give [seg, *seg_deep]")
        for i in range(1, len(outputs)):
            finer, coarser = outputs[i - 1].shape[2:], outputs[i].shape[2:]
            if len(finer) != len(coarser) or any(c > f for c, f in zip(coarser, finer)):
                raise ShapeError(
                    f"output {i} has spatial shape {tuple(coarser)}, output {i - 1} "
                    f"{tuple(finer)}; outputs must be ordered fine to coarse ([seg, *seg_deep])"
                )
        if isinstance(target, torch.Tensor):
            full = tuple(target.shape[-(outputs[0].ndim - 2) :])
            if any(o > f for o, f in zip(outputs[0].shape[2:], full)):
                raise ShapeError(
                    f"output 0 has spatial shape {tuple(outputs[0].shape[2:])}, larger than the "
                    f"target's {full}; give the full-resolution target"
                )
            targets = downsample_seg_target(target, [tuple(o.shape[2:]) for o in outputs])
        else:
            targets = list(target)
            if len(targets) != len(outputs):
                raise ShapeError(f"got {len(outputs)} outputs but {len(targets)} targets")
        weights = self.weights or deep_supervision_weights(len(outputs))
        if len(weights) != len(outputs):
            raise ConfigError(
                f"DeepSupervisionLoss has {len(weights)} weights but got {len(outputs)} outputs; "
                f"give one weight per output or weights=None for nnU-Net's"
            )
        extra = {} if valid is None else {"valid": valid}
        terms = []
        for weight, out, tgt in zip(weights, outputs, targets):
            if weight != 0:
                terms.append(weight * self.loss(out, tgt, **extra))
            else:
                terms.append(zero_loss(out))
        return sum(terms[1:], terms[0])
