"""Dataset fingerprint: what planning needs to know about a labelled dataset (as nnU-Net's).

For every labelled case, in canonical orientation and after cropping to the non-zero region:
voxel spacing, shapes, label voxel counts and subtype; for the whole dataset: foreground
intensity statistics per channel, computed as nnU-Net does: ``intensity_samples`` foreground
voxels in total are drawn with replacement (equally many per case, seed 1234) and the 0.5 / 50 /
99.5 percentiles, mean and std are taken over all samples.

Example:
    >>> fp = compute_fingerprint(records, workers=2)  # doctest: +SKIP
    >>> fp.median_spacing, fp.intensity[0].percentile_99_5  # doctest: +SKIP
    ((2.0, 0.7326, 0.7328), 180.0)
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.config import Config
from multitask_unet.data._parallel import parallel_map
from multitask_unet.data.canonical import read_canonical_case
from multitask_unet.data.orientation import check_orientation
from multitask_unet.data.preprocessing.cropping import crop, nonzero_bbox
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError

__all__ = [
    "CaseFingerprint",
    "DatasetFingerprint",
    "IntensityStats",
    "compute_fingerprint",
]


@dataclass(frozen=True)
class IntensityStats(Config):
    """Foreground intensity statistics of one channel (nnU-Net's names)."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float

    @classmethod
    def from_samples(cls, values: np.ndarray) -> IntensityStats:
        """Statistics of a 1D sample of foreground intensities."""
        values = np.asarray(values).ravel()  # no float64 copy: 1e8 samples are 400 MB already
        if values.size == 0:
            raise DataError(
                "no foreground voxels to compute intensity statistics from; every mask is empty"
            )
        low, median, high = np.percentile(values, (0.5, 50.0, 99.5))
        return cls(
            mean=float(values.mean(dtype=np.float64)),
            std=float(values.std(dtype=np.float64)),
            median=float(median),
            min=float(values.min()),
            max=float(values.max()),
            percentile_00_5=float(low),
            percentile_99_5=float(high),
        )


@dataclass(frozen=True)
class CaseFingerprint(Config):
    """What the fingerprint records of one case (canonical ``(D, H, W)`` axes).

    Attributes:
        case_id: The case.
        spacing: Voxel size in mm.
        shape: Shape before cropping.
        shape_after_crop: Shape of the non-zero bounding box.
        label: Subtype of the case, or ``None``.
        label_voxels: Voxels per label value (keys are strings, as in JSON) after cropping.
    """

    case_id: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    shape_after_crop: tuple[int, int, int]
    label: int | None
    label_voxels: dict[str, int]


@dataclass(frozen=True)
class DatasetFingerprint(Config):
    """The dataset fingerprint; build it with :func:`compute_fingerprint`.

    Summary fields (medians, counts) are stored next to the per-case entries so that the JSON is
    readable on its own; :meth:`from_cases` computes them.

    Attributes:
        orientation: Canonical orientation the shapes and spacings refer to.
        num_channels: Image channels per case.
        intensity: Foreground :class:`IntensityStats` per channel.
        cases: One :class:`CaseFingerprint` per labelled case.
        median_spacing: Per-axis median of the case spacings.
        median_shape_after_crop: Per-axis median of the cropped shapes.
        median_relative_size_after_crop: Median of cropped / original voxel counts.
        label_voxel_counts: Voxels per segmentation label over the dataset.
        label_case_counts: Cases in which each segmentation label occurs.
        subtype_counts: Cases per subtype (case label); unlabelled cases count as ``"none"``.
    """

    orientation: str
    num_channels: int
    intensity: tuple[IntensityStats, ...]
    cases: tuple[CaseFingerprint, ...]
    median_spacing: tuple[float, float, float]
    median_shape_after_crop: tuple[float, float, float]
    median_relative_size_after_crop: float
    label_voxel_counts: dict[str, int]
    label_case_counts: dict[str, int]
    subtype_counts: dict[str, int]

    @classmethod
    def from_cases(
        cls,
        cases: Sequence[CaseFingerprint],
        intensity: Sequence[IntensityStats],
        *,
        orientation: str = "LPS",
    ) -> DatasetFingerprint:
        """Assemble the fingerprint and its summaries from per-case entries."""
        if not cases:
            raise DataError("a fingerprint needs at least one labelled case")
        spacings = np.array([c.spacing for c in cases], dtype=np.float64)
        cropped = np.array([c.shape_after_crop for c in cases], dtype=np.float64)
        full = np.array([c.shape for c in cases], dtype=np.float64)
        voxels: Counter[str] = Counter()
        present: Counter[str] = Counter()
        for case in cases:
            voxels.update(case.label_voxels)
            present.update(k for k, v in case.label_voxels.items() if v > 0)
        subtypes = Counter("none" if c.label is None else str(c.label) for c in cases)
        by_int = functools.partial(
            sorted, key=lambda k: (k == "none", int(k) if k != "none" else 0)
        )
        return cls(
            orientation=orientation,
            num_channels=len(intensity),
            intensity=tuple(intensity),
            cases=tuple(cases),
            median_spacing=tuple(float(x) for x in np.median(spacings, axis=0)),  # type: ignore[arg-type]
            median_shape_after_crop=tuple(float(x) for x in np.median(cropped, axis=0)),  # type: ignore[arg-type]
            median_relative_size_after_crop=float(
                np.median(cropped.prod(axis=1) / full.prod(axis=1))
            ),
            label_voxel_counts={k: int(voxels[k]) for k in by_int(voxels)},
            label_case_counts={k: int(present[k]) for k in by_int(present)},
            subtype_counts={k: int(subtypes[k]) for k in by_int(subtypes)},
        )

    @property
    def rarest_foreground_label(self) -> int | None:
        """The foreground label with the fewest voxels (a lesion inside its organ), or None."""
        counts = {int(k): n for k, n in self.label_voxel_counts.items() if int(k) > 0 and n > 0}
        return min(counts, key=lambda k: (counts[k], -k)) if counts else None

    @property
    def spacings(self) -> np.ndarray:
        """``(N, 3)`` spacings of the cases."""
        return np.array([c.spacing for c in self.cases], dtype=np.float64)

    @property
    def shapes_after_crop(self) -> np.ndarray:
        """``(N, 3)`` cropped shapes of the cases."""
        return np.array([c.shape_after_crop for c in self.cases], dtype=np.int64)

    @property
    def labels(self) -> tuple[int, ...]:
        """Segmentation label values seen in the dataset, background included, sorted."""
        return tuple(sorted(int(k) for k in self.label_voxel_counts))


def _analyse_case(
    record: CaseRecord, *, orientation: str, num_samples: int, seed: int
) -> tuple[CaseFingerprint, list[np.ndarray]]:
    """Per-case part of the fingerprint: geometry, label counts and foreground samples."""
    case = read_canonical_case(record, orientation=orientation)
    assert case.seg is not None  # compute_fingerprint only passes labelled cases
    bbox = nonzero_bbox(case.image)
    image, seg = crop(case.image, bbox), crop(case.seg, bbox)
    values, counts = np.unique(seg, return_counts=True)
    foreground = seg > 0
    rng = np.random.RandomState(seed)  # nnU-Net's generator and seed, one per case
    samples = []
    for channel in image:
        voxels = channel[foreground]
        picked = rng.choice(voxels, num_samples, replace=True) if voxels.size else voxels[:0]
        samples.append(picked.astype(np.float32, copy=False))
    entry = CaseFingerprint(
        case_id=record.case_id,
        spacing=case.spacing,
        shape=tuple(int(s) for s in case.image.shape[1:]),  # type: ignore[arg-type]
        shape_after_crop=tuple(int(s) for s in image.shape[1:]),  # type: ignore[arg-type]
        label=record.label,
        label_voxels={str(int(v)): int(n) for v, n in zip(values, counts)},
    )
    return entry, samples


@renamed_kwargs(num_workers="workers")
def compute_fingerprint(
    cases: Sequence[CaseRecord],
    *,
    orientation: str = "LPS",
    intensity_samples: int = 10**8,
    seed: int = 1234,
    workers: int = 2,
    progress: bool = True,
) -> DatasetFingerprint:
    """Fingerprint labelled cases (typically the training split).

    Args:
        cases: Records with a mask each.
        orientation: Canonical orientation to measure spacings and shapes in.
        intensity_samples: Foreground voxels to sample over the whole dataset (nnU-Net: 1e8),
            split evenly over cases and drawn with replacement.
        seed: Seed of each case's sampling (nnU-Net: 1234).
        workers: Worker processes (1: in this process). ``num_workers``, its former name,
            still works with a ``FutureWarning``.
        progress: Show a progress bar.

    Returns:
        The :class:`DatasetFingerprint`.

    Raises:
        DataError: No cases, a case without a mask, or every mask empty.
    """
    check_orientation(orientation)
    if not cases:
        raise DataError("no cases to fingerprint; check the dataset folder and split")
    unlabelled = [c.case_id for c in cases if c.mask is None]
    if unlabelled:
        raise DataError(
            f"{len(unlabelled)} case(s) have no mask (e.g. {unlabelled[0]!r}); the fingerprint "
            "needs labelled cases: pass the training split only"
        )
    per_case = max(1, int(intensity_samples // len(cases)))
    worker = functools.partial(
        _analyse_case, orientation=orientation, num_samples=per_case, seed=seed
    )
    results = parallel_map(
        worker, list(cases), workers=workers, desc="Fingerprint", progress=progress
    )
    channels = {len(samples) for _, samples in results}
    if len(channels) != 1:
        raise DataError(f"cases have different numbers of channels: {sorted(channels)}")
    entries = [entry for entry, _ in results]
    per_channel = [[samples[c] for _, samples in results] for c in range(channels.pop())]
    del results  # keep one copy of the samples in memory, not two
    intensity = []
    for chunks in per_channel:
        joined = np.concatenate(chunks)
        chunks.clear()
        intensity.append(IntensityStats.from_samples(joined))
    return DatasetFingerprint.from_cases(entries, intensity, orientation=orientation)
