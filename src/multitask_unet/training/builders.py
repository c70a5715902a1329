"""Build the model config and the loss a :class:`TrainConfig` describes, sized for the data.

Example:
    >>> from multitask_unet.training.config import ModelSpec
    >>> config = build_model_config(ModelSpec(preset="tiny_plain", head="ovr"), in_channels=1,
    ...                             seg_classes=3, case_classes=3)
    >>> config.heads["cls"].name, config.heads["cls"].num_classes
    ('ovr', 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from multitask_unet.losses import LossTermConfig, MultiTaskLoss, MultiTaskLossConfig
from multitask_unet.models import ModelConfig, MultiTaskUNet, resolve_config
from multitask_unet.training.config import ModelSpec, TrainConfig

__all__ = ["build_loss", "build_model_config"]


def build_model_config(
    spec: ModelSpec, *, in_channels: int, seg_classes: int, case_classes: int
) -> ModelConfig:
    """The model a :class:`ModelSpec` names, sized for the data.

    Args:
        spec: Preset, encoder, head.
        in_channels: Image channels.
        seg_classes: Segmentation outputs, background included (largest label + 1).
        case_classes: Case-level classes; the head is left out when fewer than 2.
    """
    overrides: dict[str, Any] = {
        "in_channels": in_channels,
        "num_classes": seg_classes,
        "deep_supervision": spec.deep_supervision,
    }
    if spec.encoder is not None:
        overrides["encoder"] = spec.encoder
    if spec.head is not None and case_classes >= 2:
        overrides["heads"] = {
            "cls": (spec.head, {"num_classes": case_classes, **spec.head_options})
        }
    elif spec.head is None:
        overrides["heads"] = {}
    return resolve_config(spec.preset, **overrides)


def build_loss(
    config: TrainConfig, model: MultiTaskUNet, *, class_counts: Sequence[int] = ()
) -> MultiTaskLoss:
    """``config.loss``, or the default: Dice+CE on ``seg`` + 0.3 x the head's own loss kind."""
    loss_config = config.loss
    if loss_config is None:
        terms = {
            "seg": LossTermConfig("dice_ce", 1.0, deep_supervision=config.model.deep_supervision)
        }
        for key, head in model.heads.items():
            terms[key] = LossTermConfig(getattr(head, "loss_kind", "ce"), 0.3)
        loss_config = MultiTaskLossConfig(terms=terms)
    counts = {k: list(class_counts) for k in model.heads} if class_counts else None
    return loss_config.build(class_counts=counts)
