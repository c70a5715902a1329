"""``PooledHead``: levels -> one pooler per level -> a classifier, and its config base.

Every registered head is a :class:`PooledHead`; the heads differ in which levels they read,
how each level is pooled and which classifier turns the pooled vectors into logits.

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("last_stage", {"num_classes": 4})})
    >>> head = model.eval().heads["cls"]
    >>> f = model.features(torch.randn(2, 1, 8, 16, 24))
    >>> def window(a, b):  # input voxels a:b along W, cut at multiples of the coarsest stride
    ...     cut = lambda m: m[..., a * m.shape[-1] // 24 : b * m.shape[-1] // 24]
    ...     return mtu.Features([cut(m) for m in f.encoder], [cut(m) for m in f.decoder])
    >>> merged = head.project(head.merge([head.pool(window(0, 8)), head.pool(window(8, 24))]))
    >>> bool(torch.allclose(head(f), merged, atol=1e-5))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.features import FeatureInfo, Features
from multitask_unet.heads.base import ClassificationHead, HeadConfig
from multitask_unet.heads.classifiers import MLPClassifier
from multitask_unet.heads.levels import (
    LevelIndices,
    LevelRef,
    check_indices,
    level_weights,
    resolve_levels,
)
from multitask_unet.heads.pooling import GlobalPool, PoolingKind, check_pooling
from multitask_unet.heads.state import PoolState

__all__ = ["GlobalPoolHeadConfig", "PooledHead", "PooledHeadConfig"]


class PooledHead(ClassificationHead):
    """A classification head made of per-level poolers and a classifier.

    Args:
        levels: The feature levels read, in order (see
            :func:`~multitask_unet.heads.levels.resolve_levels`).
        poolers: One pooler per level (``forward(x, weights) -> state``, ``readout(state)``).
        classifier: Maps the list of per-level pooled vectors to ``(B, K)`` logits.
        num_classes: ``K``.
    """

    def __init__(
        self,
        levels: Sequence[LevelRef],
        poolers: Sequence[nn.Module],
        classifier: nn.Module,
        *,
        num_classes: int,
    ) -> None:
        super().__init__()
        if len(levels) != len(poolers):
            raise ConfigError(f"{len(levels)} levels but {len(poolers)} poolers; give one each")
        self.levels = tuple(levels)
        self.poolers = nn.ModuleList(poolers)
        self.classifier = classifier
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return f"levels=[{', '.join(map(str, self.levels))}], num_classes={self.num_classes}"

    def pool(self, features: Features, weights: torch.Tensor | None = None) -> PoolState:
        """A :class:`~multitask_unet.heads.state.PoolState` (float32) of one volume or window.

        Args:
            features: ``model.features(x)``.
            weights: Optional non-negative voxel weights ``(B, 1, *S)`` at the resolution of
                ``x``; each level sees them averaged over its stride.
        """
        maps = [ref.take(features) for ref in self.levels]
        level_w = level_weights(weights, self.levels, maps)
        with torch.autocast(device_type=maps[0].device.type, enabled=False):
            states = tuple(p(x, w) for p, x, w in zip(self.poolers, maps, level_w))
        return PoolState(states)

    def merge(self, states: Sequence[PoolState]) -> PoolState:
        """Exact state of the union of non-overlapping windows (order does not matter)."""
        return PoolState.merge(states)

    def project(self, state: PoolState) -> torch.Tensor:
        """Logits ``(B, num_classes)`` (float32) from a pool state."""
        if not isinstance(state, PoolState) or len(state.levels) != len(self.poolers):
            raise ShapeError(
                f"expected a PoolState with {len(self.poolers)} level(s) from this head's pool(), "
                f"got {type(state).__name__}"
            )
        with torch.autocast(device_type=state.device.type, enabled=False):
            vectors = [p.readout(s) for p, s in zip(self.poolers, state.levels)]
            return self.classifier(vectors)


@dataclass(frozen=True)
class PooledHeadConfig(HeadConfig):
    """Options shared by the registered heads (not registered itself).

    Attributes:
        num_classes: Number of classes ``K`` (>= 2).
        decoder_stages: Decoder stages to read, coarse to fine (``-1`` = finest), or ``"all"``.
        encoder_levels: Encoder levels to read, fine to coarse (``-1`` = bottleneck), or
            ``"all"``; ``()`` for none.
        hidden: Hidden width of the classifier (0: a single linear layer).
        dropout: Dropout probability in the classifier (off in eval mode).
    """

    num_classes: int
    decoder_stages: LevelIndices = "all"
    encoder_levels: LevelIndices = ()
    hidden: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise ConfigError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if self.num_classes < 2:
            raise ConfigError(
                f"num_classes must be >= 2, got {self.num_classes}; a binary task has 2 classes"
            )
        check_indices(self.decoder_stages, "decoder_stages")
        check_indices(self.encoder_levels, "encoder_levels")
        if self.decoder_stages == () and self.encoder_levels == ():
            raise ConfigError(
                f"{type(self).__name__} reads no level: set decoder_stages and/or encoder_levels"
            )
        if self.hidden < 0:
            raise ConfigError(f"hidden must be >= 0 (0: no hidden layer), got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def build(
        self,
        encoder_info: Sequence[FeatureInfo],
        decoder_info: Sequence[FeatureInfo],
        *,
        spatial_dims: int = 3,
    ) -> PooledHead:
        levels = resolve_levels(
            encoder_info,
            decoder_info,
            decoder_stages=self.decoder_stages,
            encoder_levels=self.encoder_levels,
        )
        for ref in levels:
            if len(ref.info.stride) != spatial_dims:
                raise ConfigError(
                    f"{ref} has a {len(ref.info.stride)}-D stride {ref.info.stride} but "
                    f"spatial_dims={spatial_dims}"
                )
        poolers = [self.make_pooler(ref.info) for ref in levels]
        classifier = self.make_classifier([p.out_features for p in poolers])
        return self.head_class()(levels, poolers, classifier, num_classes=self.num_classes)

    # -- what subclasses choose ---------------------------------------------------------------
    def make_pooler(self, info: FeatureInfo) -> nn.Module:
        """The pooler of one level."""
        raise NotImplementedError

    def make_classifier(self, in_features: Sequence[int]) -> nn.Module:
        """The classifier of the pooled vectors (default: :class:`MLPClassifier`)."""
        return MLPClassifier(
            in_features, self.num_classes, hidden=self.hidden, dropout=self.dropout
        )

    def head_class(self) -> type[PooledHead]:
        """The head class to build (default: :class:`PooledHead`)."""
        return PooledHead


@dataclass(frozen=True)
class GlobalPoolHeadConfig(PooledHeadConfig):
    """A :class:`PooledHeadConfig` that pools every level globally (not registered itself).

    Attributes:
        pooling: :class:`~multitask_unet.heads.pooling.GlobalPool`'s kind, ``"max"`` (default)
            or ``"mean"``.
    """

    pooling: PoolingKind = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pooling(self.pooling)

    def make_pooler(self, info: FeatureInfo) -> nn.Module:
        return GlobalPool(self.pooling, channels=info.channels)
