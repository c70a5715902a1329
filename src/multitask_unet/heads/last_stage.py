"""``last_stage``: global max pooling + a linear layer on the finest decoder stage.

The study's single-stage head. Reading more levels (``decoder_stages="all"``) concatenates
their pooled vectors before the classifier.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": LastStageHeadConfig(num_classes=3)})
    >>> model.eval()(torch.zeros(2, 1, 8, 16, 16))["cls"].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from multitask_unet.features import FeatureInfo
from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import PooledHeadConfig
from multitask_unet.heads.pooling import GlobalPool, PoolingKind, check_pooling

__all__ = ["LastStageHeadConfig"]


@dataclass(frozen=True)
class LastStageHeadConfig(PooledHeadConfig):
    """Config of the ``last_stage`` head (see :class:`PooledHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``(-1,)``, the finest decoder stage.
        pooling: ``"max"`` (default) or ``"mean"``.
    """

    name: ClassVar[str] = "last_stage"
    decoder_stages: LevelIndices = (-1,)
    pooling: PoolingKind = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pooling(self.pooling)

    def make_pooler(self, info: FeatureInfo) -> nn.Module:
        return GlobalPool(self.pooling, channels=info.channels)
