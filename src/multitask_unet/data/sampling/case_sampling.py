"""Class-balanced case sampling, aware of ``torch.distributed`` ranks.

The study's training set is imbalanced (62 / 106 / 84 cases of subtypes 0 / 1 / 2). A
:class:`BalancedCaseSampler` draws cases with weights from the subtype frequencies so that, in
``"balanced"`` mode, every subtype is drawn equally often.

On lopsided data (say 2 / 1 / 44 cases) full balancing would take two thirds of all draws from
three cases and starve segmentation of the other 44. ``max_oversampling`` (default 3) caps
every class at that many times its natural frequency ``n_k / N``; the excess goes to the other
classes. :func:`sampling_warnings` says when the cap binds or a class is too small to learn.

Example:
    >>> sampler = BalancedCaseSampler([0, 0, 0, 1], class_weights="balanced", num_samples=8, seed=0)
    >>> sampler.weights.round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    >>> len(list(sampler))
    8
    >>> lopsided = [0] * 2 + [1] * 1 + [2] * 44
    >>> def shares(**kw):
    ...     return np.bincount(lopsided, weights=case_weights(lopsided, **kw)).round(3).tolist()
    >>> shares(max_oversampling=None), shares()  # uncapped, capped at 3x
    ([0.333, 0.333, 0.333], [0.128, 0.064, 0.809])
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.errors import ConfigError

__all__ = [
    "CLASS_WEIGHTS",
    "DEFAULT_MAX_OVERSAMPLING",
    "WEIGHTS_MODES",
    "BalancedCaseSampler",
    "ClassWeights",
    "WeightsMode",
    "case_weights",
    "distributed_rank",
    "sampling_warnings",
]

#: How classes are weighted, in case draws (``data.class_weights``) as in a loss term's
#: ``class_weights``: ``1 / n_k`` (balanced), ``1 / sqrt(n_k)``, or not at all.
ClassWeights = Literal["balanced", "inverse_sqrt", "none"]
CLASS_WEIGHTS: tuple[str, ...] = ("balanced", "inverse_sqrt", "none")
#: Former names of :data:`ClassWeights` and :data:`CLASS_WEIGHTS`.
WeightsMode = ClassWeights
WEIGHTS_MODES = CLASS_WEIGHTS
#: Default cap on how many times its natural frequency a class is drawn.
DEFAULT_MAX_OVERSAMPLING = 3.0
#: Classes with fewer cases than this get a warning whatever the sampling.
MIN_CASES_PER_CLASS = 5


@renamed_kwargs(mode="class_weights")
def case_weights(
    labels: Sequence[int | None],
    *,
    class_weights: ClassWeights = "balanced",
    max_oversampling: float | None = DEFAULT_MAX_OVERSAMPLING,
) -> np.ndarray:
    """Sampling probability of every case from the frequency of its class.

    Args:
        labels: One class per case; ``None`` or a negative value means unknown. Cases with an
            unknown class form one extra group, weighted like a class of their size.
        class_weights: ``"balanced"`` weighs a case by ``1 / n_class`` (every class drawn
            equally often), ``"inverse_sqrt"`` by ``1 / sqrt(n_class)`` (a milder correction),
            ``"none"`` uniformly. ``mode``, its former name, still works with a ``FutureWarning``.
        max_oversampling: No class is drawn more than this many times its natural frequency
            ``n_k / N``; the excess share goes to the other classes in proportion to their
            shares (repeated until no class exceeds its cap), then each class's share is split
            evenly among its cases. At least 1; ``None`` turns the cap off.

    Returns:
        ``(N,)`` float64 probabilities summing to 1.

    Example:
        >>> case_weights([0, 0, 1, 1, 1, 1], class_weights="inverse_sqrt").round(3).tolist()
        [0.207, 0.207, 0.146, 0.146, 0.146, 0.146]
        >>> case_weights([0, 1, 1, 1, 1, 1], max_oversampling=1.5).round(3).tolist()
        [0.25, 0.15, 0.15, 0.15, 0.15, 0.15]
    """
    groups, counts, _, capped = _shares(labels, class_weights, max_oversampling)
    raw = _raw_weights(groups, counts, class_weights)
    weights = raw / raw.sum()
    for g, share in capped.items():  # rescale only the classes the cap changed
        mass = weights[groups == g].sum()
        if not math.isclose(mass, share, rel_tol=1e-12):
            weights[groups == g] *= share / mass
    return weights / weights.sum()


def _raw_weights(groups: np.ndarray, counts: dict[int, int], mode: str) -> np.ndarray:
    if mode == "balanced":
        return np.array([1.0 / counts[g] for g in groups])
    if mode == "inverse_sqrt":
        return np.array([1.0 / math.sqrt(counts[g]) for g in groups])
    return np.ones(len(groups))


def _check_options(mode: str, max_oversampling: float | None) -> None:
    if mode not in CLASS_WEIGHTS:
        raise ConfigError(
            f"class weights {mode!r} are unknown; use one of {', '.join(CLASS_WEIGHTS)}"
        )
    if max_oversampling is not None and not float(max_oversampling) >= 1.0:
        raise ConfigError(
            f"max_oversampling must be at least 1 (times a class's natural frequency), got "
            f"{max_oversampling!r}; pass a value >= 1 (e.g. 3) or None to turn the cap off"
        )


def _group(label: object, index: int) -> int:
    """The class of one case label as an int; ``-1`` when unknown (``None`` or negative)."""
    if label is None:
        return -1
    try:
        value = operator.index(label)  # int, numpy and 0-dim torch integers
    except TypeError:
        if not (isinstance(label, (float, np.floating)) and float(label).is_integer()):
            raise ConfigError(
                f"case label {index} is {label!r}; labels must be integers (class index) or "
                f"None (class unknown): map class names to indices first, e.g. "
                f"[names.index(v) for v in labels]"
            ) from None
        value = int(label)
    return -1 if value < 0 else value


def _shares(
    labels: Sequence[int | None], mode: str, max_oversampling: float | None
) -> tuple[np.ndarray, dict[int, int], dict[int, float], dict[int, float]]:
    """Case groups (``-1``: unknown), class counts, and class shares before and after the cap."""
    _check_options(mode, max_oversampling)
    if len(labels) == 0:
        raise ConfigError("case_weights needs at least one case label, got an empty sequence")
    groups = np.array([_group(v, i) for i, v in enumerate(labels)])
    counts = dict(sorted(Counter(groups.tolist()).items()))
    power = {"balanced": 0.0, "inverse_sqrt": 0.5, "none": 1.0}[mode]
    mass = {g: n**power for g, n in counts.items()}  # n_k * (weight of one case)
    uncapped = {g: m / sum(mass.values()) for g, m in mass.items()}
    if max_oversampling is None:
        return groups, counts, uncapped, dict(uncapped)
    total = len(groups)
    cap = {g: float(max_oversampling) * n / total for g, n in counts.items()}
    shares, fixed = dict(uncapped), set()
    while True:  # water-filling: pin classes above their cap, share the rest out again
        free = [g for g in counts if g not in fixed]
        left = 1.0 - sum(cap[g] for g in fixed)
        norm = sum(uncapped[g] for g in free)
        for g in free:
            shares[g] = left * uncapped[g] / norm
        over = {g for g in free if shares[g] > cap[g] * (1 + 1e-12)}
        if not over or len(over) == len(free):  # all over only by rounding when cap == 1
            break
        fixed |= over
        for g in over:
            shares[g] = cap[g]
    return groups, counts, uncapped, shares


@renamed_kwargs(mode="class_weights")
def sampling_warnings(
    labels: Sequence[int | None],
    *,
    class_weights: ClassWeights = "balanced",
    max_oversampling: float | None = DEFAULT_MAX_OVERSAMPLING,
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """What goes wrong when cases with these classes are sampled with ``class_weights``.

    One message per problem, naming the class, its case count and the total: the cap binds
    (the weighting would draw a class more than ``max_oversampling`` times its natural rate),
    the weighting oversamples a class more than 3x with the cap off, or a class has fewer than
    5 cases (too few to learn or validate a classifier, whatever the sampling).

    Args:
        labels: One class per case (``None`` / negative: unknown), as for :func:`case_weights`.
        class_weights: The weighting to check (``mode``, its former name, still works with a
            ``FutureWarning``).
        max_oversampling: The cap to check (``None``: no cap).
        class_names: Name of each class (index = label); default ``"0"``, ``"1"``, ...

    Returns:
        Human-readable warnings; empty when there is nothing to say.

    Example:
        >>> names = ["subtype0", "subtype1", "subtype2"]
        >>> for w in sampling_warnings([0] * 2 + [1] * 1 + [2] * 44, class_names=names):
        ...     print(w.split(";")[0])
        class subtype0 has 2 of 47 cases: balanced sampling would draw it 7.8x its natural rate
        class subtype0 has 2 of 47 cases: too few to learn or to validate a classifier on
        class subtype1 has 1 of 47 cases: balanced sampling would draw it 15.7x its natural rate
        class subtype1 has 1 of 47 cases: too few to learn or to validate a classifier on
        >>> sampling_warnings([0] * 62 + [1] * 106 + [2] * 84)
        []
    """
    if len(labels) == 0:
        _check_options(class_weights, max_oversampling)
        return []
    _, counts, uncapped, capped = _shares(labels, class_weights, max_oversampling)
    total = sum(counts.values())
    names = tuple(class_names or ())

    def who(g: int) -> str:
        if g < 0:
            return f"the group of cases without a class has {counts[g]} of {total} cases"
        name = names[g] if g < len(names) else str(g)
        return f"class {name} has {counts[g]} of {total} cases"

    out = []
    for g, n in counts.items():
        ratio, natural = uncapped[g] * total / n, n / total
        if max_oversampling is not None and ratio > max_oversampling * (1 + 1e-9):
            out.append(
                f"{who(g)}: {class_weights} sampling would draw it {ratio:.1f}x its natural rate; capped "
                f"at {max_oversampling:g}x (max_oversampling), so it gets {capped[g]:.1%} of the "
                f"draws instead of {uncapped[g]:.1%} and the other classes keep the rest"
            )
        elif max_oversampling is None and ratio > DEFAULT_MAX_OVERSAMPLING:
            out.append(
                f"{who(g)}: {class_weights} sampling draws it {ratio:.1f}x its natural rate "
                f"({uncapped[g]:.1%} of the draws instead of {natural:.1%}), repeating its "
                f"cases and starving the other classes; set max_oversampling (e.g. "
                f"{DEFAULT_MAX_OVERSAMPLING:g}) to cap it"
            )
        if g >= 0 and n < MIN_CASES_PER_CLASS:
            out.append(
                f"{who(g)}: too few to learn or to validate a classifier on; add cases, or "
                "rely on a class-weighted classification loss rather than on oversampling, "
                "and read its metrics with caution"
            )
    return out


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
        class_weights: ``"balanced"``, ``"inverse_sqrt"`` or ``"none"`` (``weights_mode``, its
            former name, still works with a ``FutureWarning``).
        max_oversampling: No class is drawn more than this many times its natural frequency
            (at least 1; ``None``: no cap), see :func:`case_weights`.
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

    @renamed_kwargs(weights_mode="class_weights")
    def __init__(
        self,
        labels: Sequence[int | None],
        *,
        class_weights: ClassWeights = "balanced",
        max_oversampling: float | None = DEFAULT_MAX_OVERSAMPLING,
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.class_weights = class_weights
        self.max_oversampling = max_oversampling
        self.weights = case_weights(
            self.labels, class_weights=class_weights, max_oversampling=max_oversampling
        )
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
            f"{type(self).__name__}(cases={len(self.labels)}, class_weights={self.class_weights!r}, "
            f"max_oversampling={self.max_oversampling!r}, num_samples={self.num_samples}, rank={self.rank}/{self.world_size}, seed={self.seed})"
        )
