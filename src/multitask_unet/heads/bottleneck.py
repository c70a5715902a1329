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

from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import GlobalPoolHeadConfig
from multitask_unet.heads.pooling import PoolingKind

__all__ = ["BottleneckHeadConfig"]


@dataclass(frozen=True)
class BottleneckHeadConfig(GlobalPoolHeadConfig):
    """Config of the ``bottleneck`` head (see :class:`GlobalPoolHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``()``.
        encoder_levels: Default ``(-1,)``, the bottleneck.
        pooling: ``"mean"`` (default, as segmentation-models) or ``"max"``.
    """

    name: ClassVar[str] = "bottleneck"
    decoder_stages: LevelIndices = ()
    encoder_levels: LevelIndices = (-1,)
    pooling: PoolingKind = "mean"
