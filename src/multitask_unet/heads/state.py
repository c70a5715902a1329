"""Decomposable pool states: what a head keeps of one window, and how windows merge.

Three kinds of summary cover every head, each exact under merging (up to float rounding):

- :class:`MaxState`: the elementwise maximum; merge = maximum.
- :class:`MeanState`: the (weighted) sum and the total weight; merge = add both.
- :class:`SoftmaxState`: attention pooling ``sum_n softmax(score)_n * x_n`` kept as a running
  log-sum-exp: ``m = max score``, ``s = sum exp(score - m)``, ``v = sum exp(score - m) * x``;
  merge rescales each window by ``exp(m_i - m)``.

A head's state is a :class:`PoolState`: one of these per feature level it reads. States hold
float32 tensors whatever the network's dtype, so that sums over many voxels stay accurate.

Example:
    >>> a = MaxState(torch.tensor([[1.0, 5.0]]))
    >>> b = MaxState(torch.tensor([[3.0, 2.0]]))
    >>> MaxState.merge([a, b]).result()
    tensor([[3., 5.]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import torch

from multitask_unet.errors import ShapeError

__all__ = ["LevelState", "MaxState", "MeanState", "PoolState", "SoftmaxState"]

S = TypeVar("S", bound="_TensorState")


class _TensorState:
    """Shared helpers of dataclass states whose fields are all tensors."""

    def map(self: S, fn: Callable[[torch.Tensor], torch.Tensor]) -> S:
        """A state with ``fn`` applied to every tensor, e.g. ``state.map(torch.Tensor.detach)``."""
        return type(self)(*(fn(getattr(self, f.name)) for f in dataclasses.fields(self)))  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        return getattr(self, dataclasses.fields(self)[0].name).device  # type: ignore[arg-type]

    @classmethod
    def _check(cls, states: Sequence[object]) -> None:
        if not states:
            raise ShapeError(
                f"cannot merge an empty list of {cls.__name__}s; pool one window first"
            )
        bad = [type(s).__name__ for s in states if not isinstance(s, cls)]
        if bad:
            raise ShapeError(f"cannot merge {cls.__name__} with {', '.join(sorted(set(bad)))}")


@dataclass
class MaxState(_TensorState):
    """Global max pooling of one window.

    Attributes:
        value: ``(B, C)`` maximum over the window's voxels; ``-inf`` where no voxel counted.
    """

    value: torch.Tensor

    @classmethod
    def merge(cls, states: Sequence[MaxState]) -> MaxState:
        cls._check(states)
        return cls(torch.stack([s.value for s in states]).amax(dim=0))

    def result(self) -> torch.Tensor:
        """``(B, C)`` maxima; channels with no counted voxel (all weights 0) read as 0."""
        return torch.where(torch.isneginf(self.value), torch.zeros_like(self.value), self.value)


@dataclass
class MeanState(_TensorState):
    """Global (weighted) mean pooling of one window.

    Attributes:
        total: ``(B, C)`` sum of ``weight * x`` over voxels.
        weight: ``(B, 1)`` sum of the voxel weights (the voxel count without weights).
    """

    total: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def merge(cls, states: Sequence[MeanState]) -> MeanState:
        cls._check(states)
        return cls(
            torch.stack([s.total for s in states]).sum(dim=0),
            torch.stack([s.weight for s in states]).sum(dim=0),
        )

    def result(self) -> torch.Tensor:
        """``(B, C)`` means; 0 where the total weight is 0."""
        safe = torch.where(self.weight > 0, self.weight, torch.ones_like(self.weight))
        return torch.where(self.weight > 0, self.total / safe, torch.zeros_like(self.total))


@dataclass
class SoftmaxState(_TensorState):
    """Attention pooling of one window as a running log-sum-exp, for ``H`` attention heads.

    Attributes:
        max_score: ``(B, H)`` largest attention score ``m`` (``-inf`` where no voxel counted).
        norm: ``(B, H)`` ``s = sum_n w_n exp(score_n - m)``.
        value: ``(B, H, C)`` ``v = sum_n w_n exp(score_n - m) x_n``.
    """

    max_score: torch.Tensor
    norm: torch.Tensor
    value: torch.Tensor

    @classmethod
    def merge(cls, states: Sequence[SoftmaxState]) -> SoftmaxState:
        cls._check(states)
        scores = torch.stack([s.max_score for s in states])  # (W, B, H)
        top = scores.amax(dim=0)
        scale = rescale(scores, top)  # (W, B, H)
        norm = (torch.stack([s.norm for s in states]) * scale).sum(dim=0)
        value = (torch.stack([s.value for s in states]) * scale[..., None]).sum(dim=0)
        return cls(top, norm, value)

    def result(self) -> torch.Tensor:
        """``(B, H, C)`` attention-weighted means ``v / s``; 0 where no voxel counted."""
        norm = self.norm[..., None]
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        return torch.where(norm > 0, self.value / safe, torch.zeros_like(self.value))


def rescale(scores: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``exp(scores - top)`` that reads 0 (never NaN) where ``scores`` is ``-inf``."""
    safe_top = torch.where(torch.isneginf(top), torch.zeros_like(top), top)
    return torch.exp(scores - safe_top)


LevelState: TypeAlias = "MaxState | MeanState | SoftmaxState"
"""The state of one feature level."""


@dataclass
class PoolState:
    """A head's state: one :data:`LevelState` per feature level it reads, in order.

    Attributes:
        levels: The per-level states.
    """

    levels: tuple[MaxState | MeanState | SoftmaxState, ...]

    @classmethod
    def merge(cls, states: Sequence[PoolState]) -> PoolState:
        """The state of the union of the (non-overlapping) windows of ``states``."""
        if not states:
            raise ShapeError("cannot merge an empty list of pool states; pool one window first")
        counts = {len(s.levels) for s in states}
        if len(counts) != 1:
            raise ShapeError(
                f"pool states of one head must have the same number of levels, got {sorted(counts)}"
            )
        merged = []
        for level in zip(*(s.levels for s in states)):
            merged.append(type(level[0]).merge(level))  # type: ignore[arg-type]
        return cls(tuple(merged))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PoolState:
        """Apply ``fn`` to every tensor, e.g. ``state.map(lambda t: t.to("cpu"))``."""
        return PoolState(tuple(level.map(fn) for level in self.levels))

    @property
    def device(self) -> torch.device:
        """Device of the state's tensors."""
        return self.levels[0].device

    def detach(self) -> PoolState:
        """A copy cut from the autograd graph (for accumulating windows at inference)."""
        return self.map(torch.Tensor.detach)
