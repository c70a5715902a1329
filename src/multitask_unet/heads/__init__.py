"""Heads: the segmentation head and pluggable classification heads.

Classification heads register their configs in :data:`HEADS` (``last_stage``, ``panda``,
``ovr``, ``attention``, ``bottleneck``); each splits into ``pool`` -> ``merge`` -> ``project``
so that whole volumes and merged windows give the same logits.
"""

from multitask_unet.heads.attention import AttentionHeadConfig
from multitask_unet.heads.base import HEADS, LOSS_KINDS, ClassificationHead, HeadConfig
from multitask_unet.heads.bottleneck import BottleneckHeadConfig
from multitask_unet.heads.last_stage import LastStageHeadConfig
from multitask_unet.heads.ovr import OneVsRestHead, OvRHeadConfig, ovr_probabilities
from multitask_unet.heads.panda import PandaHeadConfig
from multitask_unet.heads.pooled import PooledHead, PooledHeadConfig
from multitask_unet.heads.segmentation import SegmentationHead
from multitask_unet.heads.state import PoolState

__all__ = [
    "HEADS",
    "LOSS_KINDS",
    "AttentionHeadConfig",
    "BottleneckHeadConfig",
    "ClassificationHead",
    "HeadConfig",
    "LastStageHeadConfig",
    "OneVsRestHead",
    "OvRHeadConfig",
    "PandaHeadConfig",
    "PoolState",
    "PooledHead",
    "PooledHeadConfig",
    "SegmentationHead",
    "ovr_probabilities",
]
