"""Class-balanced case sampling, aware of ``torch.distributed`` ranks.

The study's training set is imbalanced (62 / 106 / 84 cases of subtypes 0 / 1 / 2). A
:class:`BalancedCaseSampler` draws cases with weights from the subtype frequencies so that, in
``"balanced"`` mode, every subtype is drawn equally often.

Example:
    >>> sampler = BalancedCaseSampler([0, 0, 0, 1], weights_mode="balanced", num_samples=8, seed=0)
    >>> sampler.weights.round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    >>> len(list(sampler))
    8
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from multitask_unet.errors import ConfigError

__all__ = [
    "WEIGHTS_MODES",
    "BalancedCaseSampler",
    "WeightsMode",
    "case_weights",
    "distributed_rank",
]

WeightsMode = Literal["balanced", "inverse_sqrt", "none"]
WEIGHTS_MODES: tuple[str, ...] = ("balanced", "inverse_sqrt", "none")


def case_weights(labels: Sequence[int | None], *, mode: WeightsMode = "balanced") -> np.ndarray:
    """Sampling probability of every case from the frequency of its class.

    Args:
        labels: One class per case; ``None`` or a negative value means unknown. Cases with an
            unknown class form one extra group, weighted like a class of their size.
        mode: ``"balanced"`` weighs a case by ``1 / n_class`` (every class drawn equally often),
            ``"inverse_sqrt"`` by ``1 / sqrt(n_class)`` (a milder correction), ``"none"`` uniformly.

    Returns:
        ``(N,)`` float64 probabilities summing to 1.

    Example:
        >>> case_weights([0, 0, 1, 1, 1, 1], mode="inverse_sqrt").round(3).tolist()
        [0.207, 0.207, 0.146, 0.146, 0.146, 0.146]
    """
    if mode not in WEIGHTS_MODES:
        raise ConfigError(
            f"weights_mode {mode!r} is unknown; use one of {', '.join(WEIGHTS_MODES)}"
        )
    if len(labels) == 0:
        raise ConfigError("case_weights needs at least one case label, got an empty sequence")
    groups = [-1 if v is None or int(v) < 0 else int(v) for v in labels]
    counts = Counter(groups)
    if mode == "balanced":
        raw = np.array([1.0 / counts[g] for g in groups])
    elif mode == "inverse_sqrt":
        raw = np.array([1.0 / math.sqrt(counts[g]) for g in groups])
    else:
        raw = np.ones(len(groups))
    return raw / raw.sum()


def distributed_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``torch.distributed``'s, else ``(0, 1)``."""
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(
            f"rank {rank} is not valid for world_size {world_size}; need 0 <= rank < world_size"
        )
    return rank, world_size


class BalancedCaseSampler(Sampler[int]):
    """Draws case indices with class-frequency weights; each rank gets a disjoint share.

    Every epoch draws one global sequence of ``num_samples`` indices (rounded up to a multiple
    of ``world_size``) from a generator seeded by ``(seed, epoch)``; rank ``r`` takes positions
    ``r, r + world_size, ...``. All ranks therefore agree on the sequence without communicating
    and no draw is used twice. Without replacement, ranks also never share a case in an epoch.

    Args:
        labels: One class per case (``None`` / negative: unknown), see :func:`case_weights`.
        weights_mode: ``"balanced"``, ``"inverse_sqrt"`` or ``"none"``.
        num_samples: Draws per epoch over all ranks; defaults to the number of cases.
        replacement: Draw with replacement (default). Without it, ``num_samples`` may not exceed
            the number of cases.
        seed: Base seed; the same seed and epoch give the same draws.
        rank: This process's rank; defaults to ``torch.distributed``'s when initialised, else 0.
        world_size: Number of ranks; defaults like ``rank``.

    Example:
        >>> labels = [0] * 62 + [1] * 106 + [2] * 84
        >>> sampler = BalancedCaseSampler(labels, num_samples=3000, seed=1)
        >>> drawn = np.bincount([labels[i] for i in sampler], minlength=3)
        >>> bool(np.all(np.abs(drawn / 3000 - 1 / 3) < 0.03))
        True
    """

    def __init__(
        self,
        labels: Sequence[int | None],
        *,
        weights_mode: WeightsMode = "balanced",
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.weights_mode = weights_mode
        self.weights = case_weights(self.labels, mode=weights_mode)
        self.num_samples = len(self.labels) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
        self.rank, self.world_size = distributed_rank(rank, world_size)
        self.replacement = replacement
        total = self.num_samples_per_rank * self.world_size
        if not replacement and total > len(self.labels):
            raise ConfigError(
                f"Cannot draw {total} of {len(self.labels)} cases without replacement; "
                "lower num_samples or pass replacement=True"
            )
        self.seed = int(seed)
        self.epoch = 0

    @property
    def num_samples_per_rank(self) -> int:
        """Indices this rank yields per epoch: ``ceil(num_samples / world_size)``."""
        return math.ceil(self.num_samples / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; every epoch draws a new sequence (as ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def global_indices(self) -> np.ndarray:
        """The whole epoch's draws over all ranks, ``(num_samples_per_rank * world_size,)``."""
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self.num_samples_per_rank * self.world_size
        return rng.choice(len(self.labels), size=total, replace=self.replacement, p=self.weights)

    def __iter__(self) -> Iterator[int]:
        mine = self.global_indices()[self.rank :: self.world_size]
        return iter(int(i) for i in mine)

    def __len__(self) -> int:
        return self.num_samples_per_rank

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cases={len(self.labels)}, weights_mode={self.weights_mode!r}, "
            f"num_samples={self.num_samples}, rank={self.rank}/{self.world_size}, seed={self.seed})"
        )
