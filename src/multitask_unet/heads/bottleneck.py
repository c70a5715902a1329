"""``bottleneck``: the pooled deepest encoder level and a classifier.

Like segmentation-models' auxiliary head. It reads no decoder stage, so its loss trains the
encoder only.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"aux": ("bottleneck", {"num_classes": 2})})
    >>> [str(level) for level in model.heads["aux"].levels]
    ['encoder[2]']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from multitask_unet.features import FeatureInfo
from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import PooledHeadConfig
from multitask_unet.heads.pooling import GlobalPool, PoolingKind, check_pooling

__all__ = ["BottleneckHeadConfig"]


@dataclass(frozen=True)
class BottleneckHeadConfig(PooledHeadConfig):
    """Config of the ``bottleneck`` head (see :class:`PooledHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``()``.
        encoder_levels: Default ``(-1,)``, the bottleneck.
        pooling: ``"mean"`` (default, as segmentation-models) or ``"max"``.
    """

    name: ClassVar[str] = "bottleneck"
    decoder_stages: LevelIndices = ()
    encoder_levels: LevelIndices = (-1,)
    pooling: PoolingKind = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pooling(self.pooling)

    def make_pooler(self, info: FeatureInfo) -> nn.Module:
        return GlobalPool(self.pooling, channels=info.channels)
