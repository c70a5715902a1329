"""Soft Dice and Dice + cross-entropy with nnU-Net's semantics.

The defaults equal what nnU-Net v2 (``nnUNetTrainer._build_loss``) uses for a ``3d_fullres``
configuration with label maps: ``MemoryEfficientSoftDiceLoss`` without background, smooth
``1e-5``, per-sample (not batch) Dice, Dice and CE weighted 1 : 1, no ignore label. As in nnU-Net,
the Dice term is the *negative* soft Dice (in ``[-1, 0]``), so ``DiceCELoss`` can be negative; its
``lower_bound`` says by how much.

Target convention: integer labels ``(B, 1, *S)`` (as nnU-Net) or ``(B, *S)``, values in
``[0, C)`` or ``ignore_label``; float tensors holding integers (``1.0``) are accepted too, and a
float label that is not an integer (``1.5``, as linear resampling makes) is a ``DataError``.
``S`` is any number of spatial axes, ``(D, H, W)`` for 3D.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from multitask_unet.errors import DataError, ShapeError
from multitask_unet.losses.base import LOSSES, check_valid, masked_ratio, zero_loss

__all__ = ["DiceCELoss", "SoftDiceLoss", "check_labels", "labels_checked"]


def label_map(
    logits: torch.Tensor, target: torch.Tensor, where: str, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Return ``target`` as a long ``(B, 1, *S)`` label map matching ``logits`` ``(B, C, *S)``.

    A float ``target`` must hold integers in the samples ``valid`` keeps (all when None); the
    check is skipped inside :func:`labels_checked`.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim < 3:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeError(f"{where}: logits must be (B, C, *spatial), got {shape}")
    if target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ShapeError(
            f"{where}: target of shape {tuple(target.shape)} does not fit logits of shape "
            f"{tuple(logits.shape)}; give integer labels of shape {expected} or {expected[:1] + expected[2:]}"
        )
    if target.dtype == torch.bool or target.is_complex():
        raise ShapeError(f"{where}: target must hold integer labels, got dtype {target.dtype}")
    if target.is_floating_point() and not _LABELS_CHECKED.get():
        _check_integral(target if valid is None else target[valid.to(target.device)], where)
    return target.long()


def _check_integral(labels: torch.Tensor, where: str) -> None:
    """Raise DataError if a float label map holds a value that is not an integer class index."""
    if not labels.is_floating_point() or labels.numel() == 0:
        return
    bad = labels[~torch.isfinite(labels) | (labels != torch.round(labels))]
    if bad.numel():
        raise DataError(
            f"{where}: the label map ({labels.dtype}) holds the label {float(bad[0])!r}, which is "
            f"not a class index; resample label maps with nearest-neighbour interpolation (linear "
            f"interpolation blends labels), or round them before the loss"
        )


_LABELS_CHECKED: ContextVar[bool] = ContextVar("labels_checked", default=False)


@contextmanager
def labels_checked() -> Iterator[None]:
    """Skip the losses' label-range checks inside this block: the caller checked the labels.

    Reading the range of a CUDA target makes the host wait for the GPU (once per output under
    deep supervision); the :class:`~multitask_unet.training.Trainer` checks each batch on the
    CPU before moving it and computes the loss in this block.

    Example:
        >>> target = torch.randint(0, 3, (1, 1, 4, 4, 4))
        >>> check_labels(target, 3, "example")  # on the CPU: free
        >>> with labels_checked():
        ...     loss = DiceCELoss()(torch.randn(1, 3, 4, 4, 4), target)
    """
    token = _LABELS_CHECKED.set(True)
    try:
        yield
    finally:
        _LABELS_CHECKED.reset(token)


def check_labels(
    target: torch.Tensor, num_classes: int, where: str, *, ignore_label: int | None = None
) -> None:
    """Raise DataError if a label is outside ``[0, num_classes)`` (``ignore_label`` excepted)
    or, in a float label map, is not an integer.

    A no-op inside :func:`labels_checked`.
    """
    if target.numel() == 0 or _LABELS_CHECKED.get():
        return
    labels = target if ignore_label is None else target[target != ignore_label]
    if labels.numel() == 0:
        return
    _check_integral(labels, where)
    low, high = torch.aminmax(labels)
    low_v, high_v = int(low), int(high)
    if low_v < 0 or high_v >= num_classes:
        bad = low_v if low_v < 0 else high_v
        ignore = "" if ignore_label is None else f" or the ignore label {ignore_label}"
        raise DataError(
            f"{where}: the target holds label {bad}, but the logits have {num_classes} channels, "
            f"so labels must lie in [0, {num_classes - 1}]{ignore}. Check the label map or the "
            f"number of segmentation classes of the model."
        )


def _checked_target(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    where: str,
    *,
    ignore_label: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``target`` as a ``(B, 1, *S)`` label map with its labels checked, and ``valid`` checked.

    The labels of samples that ``valid`` leaves out are set to 0 first, so that they neither
    fail the label check nor index past the logits' channels.
    """
    valid = check_valid(valid, logits.shape[0], where)
    target = label_map(logits, target, where, valid)
    if valid is not None:
        target = torch.where(valid.view(-1, *[1] * (target.ndim - 1)), target, 0)
    check_labels(target, logits.shape[1], where, ignore_label=ignore_label)
    return target, valid


class _AllReduceSum(torch.autograd.Function):
    """Sum over all ranks, with the gradient summed over ranks too (as nnU-Net's AllGatherGrad)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def _sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _AllReduceSum.apply(tensor)
    return tensor


@LOSSES.register("dice")
class SoftDiceLoss(nn.Module):
    """Negative soft Dice of softmax probabilities, as nnU-Net's ``MemoryEfficientSoftDiceLoss``.

    Per class ``c``: ``dice_c = (2 * sum(p_c * y_c) + smooth) / max(sum(p_c) + sum(y_c) + smooth,
    1e-8)``, sums over the spatial axes (and the batch with ``batch_dice``); the loss is
    ``-mean(dice)`` over classes (and samples without ``batch_dice``), in ``[-1, 0]``.

    Args:
        batch_dice: Pool the sums over the batch before the ratio (nnU-Net's ``batch_dice``;
            ``False`` in nnU-Net's ``3d_fullres`` plans).
        do_bg: Include the background channel 0.
        smooth: Added to numerator and denominator.
        ddp: With ``batch_dice``, also pool over all ``torch.distributed`` ranks (as nnU-Net does
            when training with DDP); ignored when no process group is running.

    Example:
        >>> logits = torch.randn(2, 3, 4, 6, 6)
        >>> target = torch.randint(0, 3, (2, 1, 4, 6, 6))
        >>> SoftDiceLoss()(logits, target).shape
        torch.Size([])
    """

    lower_bound: float = -1.0

    def __init__(
        self,
        *,
        batch_dice: bool = False,
        do_bg: bool = False,
        smooth: float = 1e-5,
        ddp: bool = False,
    ) -> None:
        super().__init__()
        self.batch_dice = bool(batch_dice)
        self.do_bg = bool(do_bg)
        self.smooth = float(smooth)
        self.ddp = bool(ddp)

    def extra_repr(self) -> str:
        return f"batch_dice={self.batch_dice}, do_bg={self.do_bg}, smooth={self.smooth}"

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        valid: torch.Tensor | None = None,
        voxel_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Negative soft Dice.

        Args:
            logits: ``(B, C, *S)`` raw scores.
            target: ``(B, 1, *S)`` or ``(B, *S)`` integer labels in ``[0, C)``.
            valid: Optional bool ``(B,)``; samples marked ``False`` are left out.
            voxel_mask: Optional bool ``(B, 1, *S)``; voxels marked ``False`` are left out
                (used for an ignore label).

        Returns:
            0-dim float32 tensor.
        """
        target, valid = _checked_target(logits, target, valid, type(self).__name__)
        return self._dice(logits, target, valid, voxel_mask)

    def _dice(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None,
        voxel_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if logits.shape[1] < 2:
            raise ShapeError(
                f"soft Dice over a softmax needs logits with at least 2 channels (background and "
                f"foreground), got {tuple(logits.shape)}"
            )
        axes = tuple(range(2, logits.ndim))
        probs = torch.softmax(logits.float(), dim=1)
        with torch.no_grad():
            onehot = torch.zeros_like(probs).scatter_(1, target, 1.0)
            if voxel_mask is not None:
                onehot = onehot * voxel_mask
        if not self.do_bg:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        if voxel_mask is not None:
            probs = probs * voxel_mask
        intersect = (probs * onehot).sum(axes)  # (B, C')
        sum_pred = probs.sum(axes)
        sum_gt = onehot.sum(axes)
        if valid is not None:
            keep = valid.view(-1, 1)
            intersect, sum_pred, sum_gt = (
                torch.where(keep, t, 0) for t in (intersect, sum_pred, sum_gt)
            )
        if self.batch_dice:
            # The sample count travels with the sums (same shape on every rank, with or without
            # `valid`): the pooled Dice of no sample would be smooth / smooth = 1, not "nothing".
            count = intersect.new_full((), logits.shape[0]) if valid is None else valid.sum()
            stacked = torch.stack(
                [
                    intersect.sum(0),
                    sum_pred.sum(0),
                    sum_gt.sum(0),
                    count.to(intersect).expand(intersect.shape[1]),
                ]
            )
            if self.ddp:
                stacked = _sum_over_ranks(stacked)
            intersect, sum_pred, sum_gt, num_valid = stacked
            dice = (2 * intersect + self.smooth) / (sum_gt + sum_pred + self.smooth).clamp_min(1e-8)
            return torch.where(num_valid[0] > 0, -dice.mean(), 0)
        dice = (2 * intersect + self.smooth) / (sum_gt + sum_pred + self.smooth).clamp_min(1e-8)
        if valid is None:
            return -dice.mean()
        per_sample = torch.where(valid.view(-1, 1), dice, 0)
        count = valid.sum() * dice.shape[1]
        return -masked_ratio(per_sample.sum(), count.to(per_sample.dtype))


@LOSSES.register("dice_ce")
class DiceCELoss(nn.Module):
    """Soft Dice (without background) plus cross-entropy, as nnU-Net's ``DC_and_CE_loss``.

    ``loss = weight_ce * CE + weight_dice * (-soft_dice)``; with the defaults it equals nnU-Net
    v2's ``3d_fullres`` training loss (before deep supervision). The CE term is the mean over the
    voxels of valid samples that do not carry ``ignore_label``; the Dice term is
    :class:`SoftDiceLoss`. Computed in float32 whatever the logits' dtype (autocast-safe).

    Args:
        batch_dice: See :class:`SoftDiceLoss`.
        do_bg: Include background in the Dice term.
        smooth: Dice smoothing term.
        weight_ce: Weight of the cross-entropy term.
        weight_dice: Weight of the Dice term.
        ignore_label: A label value whose voxels are left out of both terms (nnU-Net's
            ``ignore_label``; ``None`` for none).
        ddp: See :class:`SoftDiceLoss`.

    Example:
        >>> loss = DiceCELoss()
        >>> logits = torch.randn(2, 3, 4, 6, 6, requires_grad=True)
        >>> target = torch.randint(0, 3, (2, 1, 4, 6, 6))
        >>> value = loss(logits, target, valid=torch.tensor([True, False]))
        >>> value.backward()
    """

    def __init__(
        self,
        *,
        batch_dice: bool = False,
        do_bg: bool = False,
        smooth: float = 1e-5,
        weight_ce: float = 1.0,
        weight_dice: float = 1.0,
        ignore_label: int | None = None,
        ddp: bool = False,
    ) -> None:
        super().__init__()
        self.dice = SoftDiceLoss(batch_dice=batch_dice, do_bg=do_bg, smooth=smooth, ddp=ddp)
        self.weight_ce = float(weight_ce)
        self.weight_dice = float(weight_dice)
        self.ignore_label = None if ignore_label is None else int(ignore_label)

    @property
    def lower_bound(self) -> float:
        """Smallest possible value: ``-weight_dice`` (CE is non-negative, -Dice is at least -1)."""
        return min(0.0, -self.weight_dice)

    def extra_repr(self) -> str:
        return (
            f"weight_ce={self.weight_ce}, weight_dice={self.weight_dice}, "
            f"ignore_label={self.ignore_label}"
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, *, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Dice + CE.

        Args:
            logits: ``(B, C, *S)`` raw scores.
            target: ``(B, 1, *S)`` or ``(B, *S)`` integer labels in ``[0, C)`` or ``ignore_label``.
            valid: Optional bool ``(B,)``; samples marked ``False`` (no segmentation) are left out.

        Returns:
            0-dim float32 tensor; 0 (with a zero gradient) when no sample is valid.
        """
        target, valid = _checked_target(
            logits, target, valid, type(self).__name__, ignore_label=self.ignore_label
        )

        voxel_mask = None
        if self.ignore_label is not None:
            voxel_mask = target != self.ignore_label
            target = torch.where(voxel_mask, target, 0)

        terms = []
        if self.weight_ce != 0:
            terms.append(self.weight_ce * self._ce(logits, target, valid, voxel_mask))
        if self.weight_dice != 0:
            terms.append(self.weight_dice * self.dice._dice(logits, target, valid, voxel_mask))
        return sum(terms[1:], terms[0]) if terms else zero_loss(logits)

    def _ce(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None,
        voxel_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if valid is None and voxel_mask is None:
            return F.cross_entropy(logits.float(), target[:, 0])
        per_voxel = F.cross_entropy(logits.float(), target[:, 0], reduction="none")
        keep = (
            torch.ones_like(per_voxel, dtype=torch.bool) if voxel_mask is None else voxel_mask[:, 0]
        )
        if valid is not None:
            keep = keep & valid.view(-1, *[1] * (keep.ndim - 1))
        per_voxel = torch.where(keep, per_voxel, 0)
        return masked_ratio(per_voxel.sum(), keep.sum().to(per_voxel.dtype))
