"""``panda``: global max pooling + a linear layer on every decoder stage, concatenated, then a
classifier (PANDA, Cao et al., Nature Medicine 2023; the study's best variant).

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    >>> [str(level) for level in model.heads["cls"].levels]
    ['decoder[0]', 'decoder[1]']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from multitask_unet.errors import ConfigError
from multitask_unet.heads.classifiers import PerLevelClassifier
from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import GlobalPoolHeadConfig

__all__ = ["PandaHeadConfig"]


@dataclass(frozen=True)
class PandaHeadConfig(GlobalPoolHeadConfig):
    """Config of the ``panda`` head (see :class:`GlobalPoolHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``"all"``.
        hidden: Width of each per-level linear layer (default 32); must be >= 1.
        pooling: ``"max"`` (default) or ``"mean"``.
    """

    name: ClassVar[str] = "panda"
    decoder_stages: LevelIndices = "all"
    hidden: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1:
            raise ConfigError(f"panda needs a per-level width hidden >= 1, got {self.hidden}")

    def make_classifier(self, in_features: Sequence[int]) -> nn.Module:
        return PerLevelClassifier(
            in_features, self.num_classes, width=self.hidden, dropout=self.dropout
        )
