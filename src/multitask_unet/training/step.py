"""One optimiser step, as the trainer takes it and the budget planner's trial steps time it.

Forward under autocast, the multi-task loss, backward through the AMP scaler, gradient
clipping, the optimiser step. The loss skips its label check here (on a GPU it would wait for
the device): check the labels on the CPU before moving the batch, with
:func:`~multitask_unet.losses.check_labels`, as the trainer does.

Example:
    >>> import torch
    >>> from multitask_unet import create_model
    >>> from multitask_unet.losses import MultiTaskLoss
    >>> model = create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})}).train()
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> scaler = torch.amp.GradScaler("cpu", enabled=False)
    >>> targets = {"seg": torch.randint(0, 3, (2, 1, 8, 16, 16)), "cls": torch.tensor([0, 2])}
    >>> out = training_step(model, model, MultiTaskLoss(), optimizer, scaler,
    ...                     torch.randn(2, 1, 8, 16, 16), targets)
    >>> bool(torch.isfinite(out.total))
    True
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from multitask_unet.losses import labels_checked
from multitask_unet.training.distributed import DistInfo
from multitask_unet.training.precision import autocast

__all__ = ["training_step"]


def training_step(
    net: nn.Module,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    image: torch.Tensor,
    targets: Mapping[str, torch.Tensor | None],
    *,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float = 12.0,
    valid: Mapping[str, torch.Tensor] | None = None,
    dist: DistInfo | None = None,
):
    """Take one step; returns the loss output (``.total`` and the terms).

    Args:
        net: What runs the forward pass (the model, compiled or wrapped in DDP).
        model: The model itself, whose gradients are clipped.
        loss_fn: The :class:`~multitask_unet.losses.MultiTaskLoss`.
        optimizer, scaler: The optimiser and the AMP gradient scaler.
        image, targets: The batch's images and the loss targets by key.
        amp_dtype: Autocast dtype, or None for full precision.
        grad_clip: Maximum gradient norm (0: no clipping; nnU-Net: 12).
        valid: Which samples carry each target (missing targets are masked out).
        dist: Under DDP, the learned loss weights' gradients are averaged over ranks.
    """
    with labels_checked(), autocast(amp_dtype, image.device):
        out = loss_fn(net(image), targets, valid=valid)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out.total).backward()
    if dist is not None and dist.distributed:  # DDP syncs the model's gradients, not the loss's
        for p in loss_fn.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= dist.world_size
    scaler.unscale_(optimizer)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return out
