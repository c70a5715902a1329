"""The classification-head contract: ``pool`` -> ``merge`` -> ``project``.

A head summarises feature maps into a *decomposable* pool state, so that the states of
non-overlapping windows merge into exactly the state of the whole volume; ``project`` then
turns one state into logits, once. ``forward(features) == project(pool(features))``.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    >>> model = model.eval()
    >>> features = model.features(torch.randn(1, 1, 8, 16, 16))
    >>> head = model.heads["cls"]
    >>> whole = head.project(head.pool(features))
    >>> tuple(whole.shape), head.loss_kind
    ((1, 3), 'ce')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from multitask_unet.config import Config
from multitask_unet.features import FeatureInfo, Features
from multitask_unet.registry import Registry

__all__ = ["HEADS", "LOSS_KINDS", "ClassificationHead", "HeadConfig"]

HEADS: Registry[type[Config]] = Registry("head")
"""Every registered classification-head config class, by name (``"panda"``, ``"ovr"``, ...)."""

LOSS_KINDS = ("ce", "bce_ovr")
"""Values of :attr:`ClassificationHead.loss_kind`: names in ``multitask_unet.losses.LOSSES``."""


class ClassificationHead(nn.Module):
    """Base class of classification heads.

    Subclasses implement the three steps; ``forward`` chains them. Every head also says how
    its logits become class probabilities (:meth:`probabilities`) and which loss fits them
    (:attr:`loss_kind`), so that trainers and predictors treat all heads alike.

    Attributes:
        num_classes: Number of classes ``K`` of the logits ``(B, K)``.
        loss_kind: ``"ce"`` (softmax cross-entropy family: ``"ce"``, ``"focal"``) or
            ``"bce_ovr"`` (one binary cross-entropy per class).
    """

    num_classes: int
    loss_kind: str = "ce"

    def pool(self, features: Features, weights: torch.Tensor | None = None) -> Any:
        """Summarise one volume or one window into a mergeable state.

        Args:
            features: The :class:`~multitask_unet.features.Features` of ``model.features(x)``
                for the volume or window ``x``.
            weights: Optional voxel weights ``(B, 1, *S)`` at the input resolution of ``x``
                (e.g. a foreground probability); see ``docs/concepts/heads.md`` for what they
                mean for each kind of pooling.
        """
        raise NotImplementedError

    def merge(self, states: Sequence[Any]) -> Any:
        """Combine the states of non-overlapping windows into the whole volume's state."""
        raise NotImplementedError

    def project(self, state: Any) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from a (possibly merged) pool state."""
        raise NotImplementedError

    def forward(self, features: Features, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_classes)``: ``project(pool(features, weights))``."""
        return self.project(self.pool(features, weights))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)`` summing to 1 per row (softmax unless overridden)."""
        return logits.float().softmax(dim=-1)


class HeadConfig(Config):
    """Base of every classification-head config; ``from_dict`` picks the subclass by ``"name"``.

    A frozen-dataclass subclass with ``name: ClassVar[str] = "my_head"`` registers itself in
    :data:`HEADS` and becomes usable as ``create_model(..., heads={"cls": ("my_head", {...})})``.
    """

    family: ClassVar[Registry[type[Config]]] = HEADS

    def build(
        self,
        encoder_info: Sequence[FeatureInfo],
        decoder_info: Sequence[FeatureInfo],
        *,
        spatial_dims: int = 3,
    ) -> ClassificationHead:
        """Build the head for a network described by its encoder levels and decoder stages.

        Args:
            encoder_info: Encoder levels, fine to coarse.
            decoder_info: Decoder stages, coarse to fine.
            spatial_dims: 1, 2 or 3.
        """
        raise NotImplementedError
