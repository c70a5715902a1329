"""Loss functions: nnU-Net's Dice+CE and deep supervision, classification losses, MultiTaskLoss.

Every loss takes logits, returns a 0-dim float32 tensor and accepts ``valid=`` (bool ``(B,)``)
to leave out samples without a target; classification targets use ``-1`` for "missing".

Example:
    >>> import torch
    >>> from multitask_unet.losses import MultiTaskLoss
    >>> loss_fn = MultiTaskLoss()  # nnU-Net Dice+CE with deep supervision + 0.3 * CE
    >>> out = loss_fn({"seg": torch.randn(1, 3, 4, 8, 8), "cls": torch.randn(1, 4)},
    ...               {"seg": torch.randint(0, 3, (1, 4, 8, 8)), "cls": torch.tensor([1])})
    >>> sorted(out.parts)
    ['cls', 'seg']
"""

from __future__ import annotations

from multitask_unet.losses.base import LOSSES, create_loss
from multitask_unet.losses.classification import (
    CrossEntropyLoss,
    FocalLoss,
    OneVsRestBCELoss,
    class_weights,
    pos_weights,
)
from multitask_unet.losses.config import LossTermConfig, MultiTaskLossConfig
from multitask_unet.losses.deep_supervision import (
    DeepSupervisionLoss,
    deep_supervision_scales,
    deep_supervision_weights,
    downsample_seg_target,
)
from multitask_unet.losses.multitask import LossOutput, MultiTaskLoss, Warmup
from multitask_unet.losses.segmentation import (
    DiceCELoss,
    SoftDiceLoss,
    check_labels,
    labels_checked,
)

__all__ = [
    "LOSSES",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "FocalLoss",
    "LossOutput",
    "LossTermConfig",
    "MultiTaskLoss",
    "MultiTaskLossConfig",
    "OneVsRestBCELoss",
    "SoftDiceLoss",
    "Warmup",
    "check_labels",
    "class_weights",
    "create_loss",
    "deep_supervision_scales",
    "deep_supervision_weights",
    "downsample_seg_target",
    "labels_checked",
    "pos_weights",
]
