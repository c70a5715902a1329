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

from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import GlobalPoolHeadConfig

__all__ = ["LastStageHeadConfig"]


@dataclass(frozen=True)
class LastStageHeadConfig(GlobalPoolHeadConfig):
    """Config of the ``last_stage`` head (see :class:`GlobalPoolHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``(-1,)``, the finest decoder stage.
        pooling: ``"max"`` (default) or ``"mean"``.
    """

    name: ClassVar[str] = "last_stage"
    decoder_stages: LevelIndices = (-1,)
