"""``attention``: attention pooling per level, then a classifier.

Two poolers, chosen by ``mode``, both softmax-weighted sums over voxels and therefore exactly
mergeable through a running log-sum-exp (:class:`~multitask_unet.heads.state.SoftmaxState`):

- ``"gated"`` — gated attention (Ilse et al., 2018), ``num_heads`` branches:
  ``score_h(n) = w_h^T (tanh(V x_n) * sigmoid(U x_n))`` with ``V, U`` 1x1 projections to
  ``attention_dim``; each branch pools the raw features, giving ``(B, num_heads * C)``.
- ``"query"`` — learned-query multi-head attention pooling: ``num_heads`` query parameters
  ``q_h`` of width ``attention_dim``, keys ``K x_n`` and values ``W x_n + b`` (1x1
  projections, ``value_dim`` per head), ``score_h(n) = q_h . (K x_n)_h / sqrt(attention_dim)``.
  Because a softmax-weighted sum commutes with linear maps, the key projection is folded into
  one score vector per head and the value projection is applied once, after pooling: the same
  result as projecting every voxel, at a fraction of the cost. Output ``(B, num_heads *
  value_dim)``.

Voxel weights ``w >= 0`` multiply the attention: ``a_n ∝ w_n exp(score_n)``; voxels with
``w = 0`` are left out. A window with no counted voxel reads as zero features.

Example:
    >>> import torch, multitask_unet as mtu
    >>> cfg = AttentionHeadConfig(num_classes=3, mode="query", num_heads=2)
    >>> model = mtu.create_model("tiny_plain", heads={"cls": cfg}).eval()
    >>> model(torch.zeros(1, 1, 8, 16, 16))["cls"].shape
    torch.Size([1, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from einops import rearrange
from torch import nn

from multitask_unet.errors import ConfigError
from multitask_unet.features import FeatureInfo
from multitask_unet.heads.attention_ops import gated_attention_pool, query_attention_pool
from multitask_unet.heads.levels import LevelIndices
from multitask_unet.heads.pooled import PooledHeadConfig
from multitask_unet.heads.pooling import flat
from multitask_unet.heads.state import SoftmaxState

__all__ = ["AttentionHeadConfig", "GatedAttentionPool", "QueryAttentionPool"]


class GatedAttentionPool(nn.Module):
    """Gated attention pooling of one level (Ilse et al., 2018) with ``num_heads`` branches.

    Args:
        channels: Channels ``C`` of the level.
        attention_dim: Width of the ``tanh`` and ``sigmoid`` projections.
        num_heads: Number of attention branches ``H``; ``out_features = H * C``.
    """

    def __init__(self, channels: int, *, attention_dim: int, num_heads: int) -> None:
        super().__init__()
        self.gates = nn.Linear(channels, 2 * attention_dim)  # V (first half) stacked over U
        self.score = nn.Linear(attention_dim, num_heads, bias=False)  # a bias cancels in softmax
        self.out_features = num_heads * channels

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> SoftmaxState:
        """State of ``x`` ``(B, C, *S)`` with optional weights ``(B, 1, *S)``."""
        x, w = flat(x, weights)
        gates, score = self.gates, self.score
        return SoftmaxState(*gated_attention_pool(x, gates.weight, gates.bias, score.weight, w))

    def readout(self, state: SoftmaxState) -> torch.Tensor:
        """``(B, H * C)`` attention-pooled features."""
        return rearrange(state.result(), "b h c -> b (h c)")


class QueryAttentionPool(nn.Module):
    """Learned-query multi-head attention pooling of one level.

    Args:
        channels: Channels ``C`` of the level.
        attention_dim: Width of each head's query and key.
        num_heads: Number of heads ``H``.
        value_dim: Width of each head's value; ``out_features = H * value_dim``.
    """

    def __init__(
        self, channels: int, *, attention_dim: int, num_heads: int, value_dim: int
    ) -> None:
        super().__init__()
        self.num_heads, self.attention_dim, self.value_dim = num_heads, attention_dim, value_dim
        self.query = nn.Parameter(torch.randn(num_heads, attention_dim))
        self.key = nn.Linear(channels, num_heads * attention_dim, bias=False)
        self.value = nn.Linear(channels, num_heads * value_dim)
        self.out_features = num_heads * value_dim

    def score_weight(self) -> torch.Tensor:
        """``(H, C)``: ``q_h^T K_h / sqrt(attention_dim)``, the folded key projection."""
        keys = rearrange(self.key.weight, "(h d) c -> h d c", h=self.num_heads)
        return torch.einsum("hd,hdc->hc", self.query, keys) / math.sqrt(self.attention_dim)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> SoftmaxState:
        """State of ``x`` ``(B, C, *S)`` with optional weights ``(B, 1, *S)``."""
        x, w = flat(x, weights)
        return SoftmaxState(*query_attention_pool(x, self.score_weight(), w))

    def readout(self, state: SoftmaxState) -> torch.Tensor:
        """``(B, H * value_dim)``: each head's value projection of its pooled features."""
        pooled = state.result()  # (B, H, C)
        weight = rearrange(self.value.weight, "(h v) c -> h v c", h=self.num_heads)
        bias = rearrange(self.value.bias, "(h v) -> h v", h=self.num_heads)
        values = torch.einsum("hvc,bhc->bhv", weight, pooled) + bias
        return rearrange(values, "b h v -> b (h v)")


@dataclass(frozen=True)
class AttentionHeadConfig(PooledHeadConfig):
    """Config of the ``attention`` head (see :class:`PooledHeadConfig` for shared options).

    Attributes:
        decoder_stages: Default ``"all"``.
        hidden: Hidden width of the classifier (default 64).
        mode: ``"gated"`` (default) or ``"query"``.
        num_heads: Attention branches (gated) or heads (query).
        attention_dim: Gated: width of ``V`` and ``U``; query: width of queries and keys.
            ``None`` (default): a quarter of each level's channels, at least 8 — the gates
            run at every voxel, so their cost at the finest stage grows with this width.
        value_dim: Query mode: width of each head's value (unused by gated attention).
    """

    name: ClassVar[str] = "attention"
    decoder_stages: LevelIndices = "all"
    hidden: int = 64
    mode: Literal["gated", "query"] = "gated"
    num_heads: int = 1
    attention_dim: int | None = None
    value_dim: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("gated", "query"):
            raise ConfigError(f"attention mode must be 'gated' or 'query', got {self.mode!r}")
        for field in ("num_heads", "attention_dim", "value_dim"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ConfigError(f"{field} must be >= 1, got {value}")

    def make_pooler(self, info: FeatureInfo) -> nn.Module:
        dim = self.attention_dim or max(8, info.channels // 4)
        if self.mode == "gated":
            return GatedAttentionPool(info.channels, attention_dim=dim, num_heads=self.num_heads)
        return QueryAttentionPool(
            info.channels,
            attention_dim=dim,
            num_heads=self.num_heads,
            value_dim=self.value_dim,
        )
