"""Heads: the segmentation head and pluggable classification heads."""

from multitask_unet.heads.base import HEADS, ClassificationHead, HeadConfig
from multitask_unet.heads.segmentation import SegmentationHead

__all__ = ["HEADS", "ClassificationHead", "HeadConfig", "SegmentationHead"]
