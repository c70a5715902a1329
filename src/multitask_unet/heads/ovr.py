"""``ovr``: ``K`` binary one-vs-rest classifiers on globally pooled features.

Logit ``z_k`` scores "class ``k`` versus the rest"; it is trained with one binary
cross-entropy per class (``loss_kind = "bce_ovr"``). The rule that turns the ``K`` binary
scores into ``K``-class probabilities is

    p_k = sigmoid(z_k) / sum_j sigmoid(z_j),

which keeps the ranking of the binary scores (so the predicted class is ``argmax_k z_k``) and
sums to 1. Per-class one-vs-rest AUCs can use ``sigmoid(z_k)`` or ``p_k``.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("ovr", {"num_classes": 3})})
    >>> head = model.heads["cls"]
    >>> head.loss_kind
    'bce_ovr'
    >>> head.probabilities(torch.tensor([[0.0, 0.0, 0.0]]))
    tensor([[0.3333, 0.3333, 0.3333]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from multitask_unet.heads.classifiers import OneVsRestClassifier
from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import GlobalPoolHeadConfig, PooledHead

__all__ = ["OneVsRestHead", "OvRHeadConfig", "ovr_probabilities"]


def ovr_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``p_k = sigmoid(z_k) / sum_j sigmoid(z_j)`` for logits ``(B, K)``."""
    scores = torch.sigmoid(logits.float())
    return scores / scores.sum(dim=-1, keepdim=True)


class OneVsRestHead(PooledHead):
    """A :class:`PooledHead` whose logits are ``K`` binary one-vs-rest scores."""

    loss_kind = "bce_ovr"

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` probabilities by :func:`ovr_probabilities`."""
        return ovr_probabilities(logits)


@dataclass(frozen=True)
class OvRHeadConfig(GlobalPoolHeadConfig):
    """Config of the ``ovr`` head (see :class:`GlobalPoolHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``"all"``.
        hidden: Hidden width of *each* binary classifier (0: linear classifiers).
        pooling: ``"max"`` (default) or ``"mean"``.
    """

    name: ClassVar[str] = "ovr"
    decoder_stages: LevelIndices = "all"

    def make_classifier(self, in_features: Sequence[int]) -> nn.Module:
        return OneVsRestClassifier(
            in_features, self.num_classes, hidden=self.hidden, dropout=self.dropout
        )

    def head_class(self) -> type[PooledHead]:
        return OneVsRestHead
