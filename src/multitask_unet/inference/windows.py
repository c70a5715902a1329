"""Where the windows of a sliding-window prediction go, and which voxels each one owns.

Windows are placed as nnU-Net places them (``compute_steps_for_sliding_window``): along an axis
of size ``n`` with window ``k`` and ``overlap`` ``o``, ``ceil((n - k) / (k (1 - o))) + 1`` windows
are spread evenly from ``0`` to ``n - k`` (starts rounded to integers), so neighbouring windows
overlap by at least ``o k`` voxels and the first and last windows touch the volume's borders.

For classification each window also **owns** a box of voxels: along each axis, the voxels closer
to its centre than to a neighbour's, with the boundary rounded to a multiple of the network's
``size_divisor`` (and kept inside the overlap of the two windows). The owned boxes partition
the volume (padding excluded), so pooling each window over its own box and merging the states
pools every voxel exactly once.

Example:
    >>> window_starts(110, 64, overlap=0.5)  # nnU-Net's example: 3 steps
    [0, 23, 46]
    >>> [w.start for w in plan_windows((110,), (64,), overlap=0.5, divisor=(8,))]
    [(0,), (23,), (46,)]
    >>> [w.owned for w in plan_windows((110,), (64,), overlap=0.5, divisor=(8,))]
    [((0, 40),), ((17, 41),), ((18, 64),)]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from multitask_unet.errors import ShapeError

__all__ = ["Window", "plan_windows", "window_starts"]


@dataclass(frozen=True)
class Window:
    """One window of a sliding-window prediction.

    Attributes:
        start: First voxel of the window per axis (in the padded volume).
        size: Window shape.
        owned: Half-open ``(lo, hi)`` per axis, in window coordinates, of the voxels the window
            owns for classification (``lo == hi`` on some axis: it owns none).
    """

    start: tuple[int, ...]
    size: tuple[int, ...]
    owned: tuple[tuple[int, int], ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        """Slices of the window in the padded volume's spatial axes."""
        return tuple(slice(s, s + k) for s, k in zip(self.start, self.size))

    @property
    def owns_any(self) -> bool:
        """Whether the window owns at least one voxel."""
        return all(hi > lo for lo, hi in self.owned)

    def ownership(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The owned box as a 0/1 mask ``(1, *size)``."""
        mask = torch.zeros((1, *self.size), device=device, dtype=dtype)
        mask[(slice(None), *(slice(lo, hi) for lo, hi in self.owned))] = 1
        return mask


def window_starts(size: int, window: int, *, overlap: float = 0.5) -> list[int]:
    """nnU-Net's window starts along one axis (``compute_steps_for_sliding_window``).

    Args:
        size: Length of the (padded) axis, ``>= window``.
        window: Window length.
        overlap: Fraction of the window shared by neighbours, in ``[0, 1)``
            (nnU-Net's ``tile_step_size`` is ``1 - overlap``).
    """
    if size < window:
        raise ShapeError(f"axis of size {size} is smaller than the window {window}; pad it first")
    if not 0.0 <= overlap < 1.0:
        raise ShapeError(f"overlap must be in [0, 1), got {overlap}")
    step = window * (1.0 - overlap)
    count = math.ceil((size - window) / step) + 1
    if count == 1:
        return [0]
    actual = (size - window) / (count - 1)
    return [round(actual * i) for i in range(count)]


def _owned(
    starts: Sequence[int], window: int, divisor: int, valid: tuple[int, int]
) -> list[tuple[int, int]]:
    bounds = [valid[0]]
    for a, b in itertools.pairwise(starts):
        middle = (a + b + window) / 2  # midpoint of the two centres
        snapped = round(middle / divisor) * divisor
        bounds.append(min(max(snapped, b), a + window))  # inside the overlap of both windows
    bounds.append(valid[1])
    out = []
    for s, lo, hi in zip(starts, bounds, bounds[1:]):
        lo, hi = max(lo, valid[0]) - s, min(hi, valid[1]) - s
        lo, hi = min(max(lo, 0), window), min(max(hi, 0), window)
        out.append((lo, max(lo, hi)))
    return out


def plan_windows(
    shape: Sequence[int],
    window_size: Sequence[int],
    *,
    overlap: float = 0.5,
    divisor: Sequence[int] | None = None,
    valid: Sequence[tuple[int, int]] | None = None,
) -> list[Window]:
    """All windows over a (padded) volume, in nnU-Net's order (last axis fastest).

    Args:
        shape: Spatial shape of the padded volume, at least ``window_size`` on every axis.
        window_size: Window shape.
        overlap: See :func:`window_starts`.
        divisor: Multiples that ownership boundaries are rounded to (the network's
            ``size_divisor``); default 1.
        valid: Half-open ``(lo, hi)`` per axis of the real voxels (padding excluded from
            ownership); default the whole volume.

    Returns:
        The :class:`Window` list; their ``owned`` boxes partition the ``valid`` region.
    """
    dims = len(shape)
    if len(window_size) != dims:
        raise ShapeError(f"window_size {tuple(window_size)} must have {dims} axes like {shape}")
    divisor = tuple(divisor) if divisor is not None else (1,) * dims
    valid = tuple(valid) if valid is not None else tuple((0, int(s)) for s in shape)
    per_axis = []
    for n, k, d, v in zip(shape, window_size, divisor, valid):
        starts = window_starts(int(n), int(k), overlap=overlap)
        per_axis.append(list(zip(starts, _owned(starts, int(k), int(d), v))))
    size = tuple(int(k) for k in window_size)
    return [
        Window(tuple(s for s, _ in combo), size, tuple(o for _, o in combo))
        for combo in itertools.product(*per_axis)
    ]
