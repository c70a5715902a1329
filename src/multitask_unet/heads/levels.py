"""Which feature levels a head reads, and voxel weights brought to each level's resolution.

Levels are named by source and index: decoder stages count coarse to fine (``-1`` is the
finest stage), encoder levels fine to coarse (``-1`` is the bottleneck), as in
:class:`~multitask_unet.features.Features`.

Example:
    >>> enc = [FeatureInfo(8, (1, 1, 1)), FeatureInfo(16, (2, 2, 2))]
    >>> dec = [FeatureInfo(8, (1, 1, 1))]
    >>> [str(r) for r in resolve_levels(enc, dec, decoder_stages="all", encoder_levels=(-1,))]
    ['decoder[0]', 'encoder[1]']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from multitask_unet.errors import ConfigError, DataError, ShapeError
from multitask_unet.features import FeatureInfo, Features

__all__ = ["LevelIndices", "LevelRef", "check_indices", "level_weights", "resolve_levels"]

LevelIndices = tuple[int, ...] | Literal["all"]
"""Level indices (negative ones count from the end) or ``"all"``."""


@dataclass(frozen=True)
class LevelRef:
    """One level a head reads.

    Attributes:
        source: ``"decoder"`` or ``"encoder"``.
        index: Non-negative index into ``Features.decoder`` / ``Features.encoder``.
        info: Channels and stride of the level.
    """

    source: Literal["decoder", "encoder"]
    index: int
    info: FeatureInfo

    def __str__(self) -> str:
        return f"{self.source}[{self.index}]"

    def take(self, features: Features) -> torch.Tensor:
        """The level's map ``(B, C, *S / stride)`` from ``features``."""
        maps = features.decoder if self.source == "decoder" else features.encoder
        if self.index >= len(maps):
            raise ShapeError(
                f"the head reads {self} but the features have {len(maps)} {self.source} "
                f"level(s); pass model.features(x) of the model the head was built for"
            )
        x = maps[self.index]
        if x.shape[1] != self.info.channels or x.ndim != len(self.info.stride) + 2:
            raise ShapeError(
                f"{self}: expected (B, {self.info.channels}, ...) with {len(self.info.stride)} "
                f"spatial dims, got {tuple(x.shape)}; pass the features of the head's own model"
            )
        return x


def check_indices(value: LevelIndices, what: str) -> None:
    """Validate a config's level indices (types and duplicates; ranges are checked at build)."""
    if value == "all":
        return
    if isinstance(value, str) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ConfigError(f"{what} must be 'all' or a tuple of ints, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{what} lists a level twice: {value!r}")


def _select(
    infos: Sequence[FeatureInfo], indices: LevelIndices, source: Literal["decoder", "encoder"]
) -> list[LevelRef]:
    n = len(infos)
    chosen = range(n) if indices == "all" else indices
    refs, seen = [], set()
    for i in chosen:
        if not -n <= i < n:
            raise ConfigError(
                f"{source} level {i} does not exist: this network has {n} {source} level(s), "
                f"valid indices are {-n}..{n - 1} (negative ones count from the end)"
            )
        k = i % n
        if k in seen:
            raise ConfigError(f"{source} level {i} is selected twice (as index {k})")
        seen.add(k)
        refs.append(LevelRef(source, k, infos[k]))
    return refs


def resolve_levels(
    encoder_info: Sequence[FeatureInfo],
    decoder_info: Sequence[FeatureInfo],
    *,
    decoder_stages: LevelIndices,
    encoder_levels: LevelIndices,
) -> tuple[LevelRef, ...]:
    """The levels a head reads: the chosen decoder stages, then the chosen encoder levels."""
    refs = _select(decoder_info, decoder_stages, "decoder")
    refs += _select(encoder_info, encoder_levels, "encoder")
    if not refs:
        raise ConfigError(
            "the head reads no feature level; set decoder_stages (e.g. 'all' or (-1,)) "
            "and/or encoder_levels (e.g. (-1,))"
        )
    return tuple(refs)


def level_weights(
    weights: torch.Tensor | None,
    refs: Sequence[LevelRef],
    maps: Sequence[torch.Tensor],
) -> list[torch.Tensor | None]:
    """Voxel weights ``(B, 1, *S)`` averaged over each level's stride: one ``(B, 1, *S_i)`` each.

    Average pooling with kernel = stride maps each level voxel to the mean weight of the
    input voxels it covers; windows cut at multiples of the coarsest stride therefore see
    exactly the weights of the whole volume.
    """
    if weights is None:
        return [None] * len(refs)
    if bool((weights < 0).any()):
        raise DataError("voxel weights must be >= 0 (e.g. a foreground probability or a 0/1 mask)")
    cache: dict[tuple[int, ...], torch.Tensor] = {}
    out: list[torch.Tensor | None] = []
    for ref, x in zip(refs, maps):
        stride = ref.info.stride
        expected = tuple(s * k for s, k in zip(x.shape[2:], stride))
        if weights.ndim != x.ndim or weights.shape[1] != 1 or tuple(weights.shape[2:]) != expected:
            raise ShapeError(
                f"voxel weights must be (B, 1, *S) at the input resolution, i.e. "
                f"({x.shape[0]}, 1, {', '.join(map(str, expected))}) for these features; got "
                f"{tuple(weights.shape)}"
            )
        if weights.shape[0] not in (1, x.shape[0]):
            raise ShapeError(
                f"voxel weights have batch size {weights.shape[0]}, features {x.shape[0]}"
            )
        if stride not in cache:
            w = weights.to(torch.float32)
            if math.prod(stride) > 1:
                pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(stride) - 1]
                w = pool(w, kernel_size=stride, stride=stride)
            cache[stride] = w
        out.append(cache[stride])
    return out
