"""Classifiers: pooled per-level vectors in, logits ``(B, K)`` out (the ``project`` step).

Each takes the list of per-level pooled vectors ``[(B, F_1), (B, F_2), ...]``.

Example:
    >>> clf = MLPClassifier((8, 16), 3, hidden=32, dropout=0.1)
    >>> clf([torch.zeros(2, 8), torch.zeros(2, 16)]).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLPClassifier", "OneVsRestClassifier", "PerLevelClassifier"]


def _mlp(in_features: int, out_features: int, *, hidden: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    if hidden > 0:
        layers += [nn.Linear(in_features, hidden), nn.LeakyReLU(0.01)]
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        in_features = hidden
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class MLPClassifier(nn.Module):
    """Concatenate the level vectors, then ``dropout -> Linear`` (``hidden == 0``) or
    ``dropout -> Linear(hidden) -> LeakyReLU -> dropout -> Linear``.

    Args:
        in_features: Width of each level's vector.
        num_classes: Number of logits ``K``.
        hidden: Width of the hidden layer; 0 for a single linear layer.
        dropout: Dropout probability before each linear layer.
    """

    def __init__(
        self, in_features: Sequence[int], num_classes: int, *, hidden: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.mlp = _mlp(sum(in_features), num_classes, hidden=hidden, dropout=dropout)

    def forward(self, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.mlp(torch.cat(list(vectors), dim=1))


class PerLevelClassifier(nn.Module):
    """PANDA's classifier: one ``Linear(F_i, width) -> LeakyReLU`` per level, concatenated,
    then ``dropout -> Linear(levels * width, K)``.

    Args:
        in_features: Width of each level's vector.
        num_classes: Number of logits ``K``.
        width: Output width of each per-level layer.
        dropout: Dropout probability before the final layer.
    """

    def __init__(
        self, in_features: Sequence[int], num_classes: int, *, width: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.per_level = nn.ModuleList(
            nn.Sequential(nn.Linear(f, width), nn.LeakyReLU(0.01)) for f in in_features
        )
        self.final = _mlp(width * len(in_features), num_classes, hidden=0, dropout=dropout)

    def forward(self, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.final(torch.cat([fc(v) for fc, v in zip(self.per_level, vectors)], dim=1))


class OneVsRestClassifier(nn.Module):
    """``K`` independent binary classifiers on the concatenated level vectors.

    Classifier ``k`` is ``dropout -> Linear(F, 1)`` (``hidden == 0``) or its own
    ``dropout -> Linear(F, hidden) -> LeakyReLU -> dropout -> Linear(hidden, 1)``; they share
    no parameters. Output ``(B, K)``: logit ``k`` is "class ``k`` versus the rest".

    Args:
        in_features: Width of each level's vector.
        num_classes: Number of binary classifiers ``K``.
        hidden: Hidden width of each classifier; 0 for linear classifiers.
        dropout: Dropout probability before each linear layer.
    """

    def __init__(
        self, in_features: Sequence[int], num_classes: int, *, hidden: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        total, self.hidden = sum(in_features), hidden
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if hidden == 0:
            self.linear = nn.Linear(total, num_classes)
            return
        self.weight1 = nn.Parameter(torch.empty(num_classes, hidden, total))
        self.bias1 = nn.Parameter(torch.empty(num_classes, hidden))
        self.weight2 = nn.Parameter(torch.empty(num_classes, hidden))
        self.bias2 = nn.Parameter(torch.empty(num_classes))
        for param, fan_in in (
            (self.weight1, total),
            (self.bias1, total),
            (self.weight2, hidden),
            (self.bias2, hidden),
        ):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            nn.init.uniform_(param, -bound, bound)

    def forward(self, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.dropout(torch.cat(list(vectors), dim=1))
        if self.hidden == 0:
            return self.linear(x)
        h = torch.einsum("khf,bf->bkh", self.weight1, x) + self.bias1
        h = self.dropout(nn.functional.leaky_relu(h, 0.01))
        return (h * self.weight2).sum(dim=-1) + self.bias2
