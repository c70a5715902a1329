"""Synthetic CT phantoms with a pancreas, a lesion and a known lesion subtype.

Each phantom is a crop of an abdomen in Hounsfield units: air, subcutaneous fat, soft tissue
with fatty mesentery, a vertebra, the aorta, a liver edge, and a contrast-enhanced pancreas
(label 1) running left-right in peripancreatic fat, holding one lesion (label 2). The subtype
changes the lesion's appearance, with overlapping distributions so that it is learnable but not
trivial:

| subtype | lesion intensity (mean HU, varies by case) | texture | shape |
|---|---|---|---|
| 0 | hypodense, N(30, 12) | homogeneous (4 HU) | round |
| 1 | core N(35, 12), enhancing rim +80 to +120 | mild (6 HU) | oval |
| 2 | N(45, 12) | heterogeneous (18-28 HU blobs) | lobulated |

The pancreas enhances to about 120 HU, so every lesion stands out from it by 40-90 HU. Lesion
radii are 6-11 mm (several hundred to a few thousand voxels at the default spacing). Sizes are
in millimetres and shrink with a smaller field of view, so tiny test phantoms stay complete.
Everything is drawn from a seed: same arguments, same voxels.

Example:
    >>> image, mask = make_phantom(2, shape=(32, 32, 16), spacing=(2.0, 2.0, 3.0), seed=1)
    >>> image.shape, image.dtype.name, sorted(set(mask.ravel().tolist()))
    ((32, 32, 16), 'int16', [0, 1, 2])
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from multitask_unet._atomic import write_text_atomic
from multitask_unet.data.io import spacing_affine, write_image
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.errors import DataError

__all__ = ["PHANTOM_LABELS", "STUDY_SUBTYPE_COUNTS", "make_phantom", "write_phantom_dataset"]

#: Cases per subtype in the reference study's training set (the default class balance).
STUDY_SUBTYPE_COUNTS: tuple[int, int, int] = (62, 106, 84)
#: Segmentation labels of the phantoms.
PHANTOM_LABELS: dict[str, int] = {"background": 0, "pancreas": 1, "lesion": 2}

_DEFAULT_SHAPE = (64, 64, 48)
_DEFAULT_SPACING = (1.0, 1.0, 1.5)


def _checked_geometry(shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """``shape`` as ints, after checking it and ``spacing``; DataError naming the bad one."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise DataError(f"shape must be three sizes of at least 8 voxels, got {shape!r}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise DataError(f"spacing must be three positive millimetre sizes, got {tuple(spacing)!r}")
    return shape


def make_phantom(
    subtype: int,
    *,
    shape: Sequence[int] = _DEFAULT_SHAPE,
    spacing: Sequence[float] = _DEFAULT_SPACING,
    seed: int | Sequence[int] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one phantom.

    Args:
        subtype: Lesion subtype 0, 1 or 2 (see the module docstring).
        shape: Array shape ``(X, Y, Z)``; Z is the slice axis.
        spacing: Voxel size in millimetres ``(sx, sy, sz)``.
        seed: Seed (or seed sequence) of the random generator.

    Returns:
        ``(image, mask)``: int16 Hounsfield units and uint8 labels (0 background, 1 pancreas,
        2 lesion), both ``(X, Y, Z)``.
    """
    if subtype not in (0, 1, 2):
        raise DataError(f"subtype must be 0, 1 or 2, got {subtype!r}")
    shape = _checked_geometry(shape, spacing)
    rng = np.random.default_rng(seed)
    sp = np.asarray(spacing, float)
    half = np.asarray(shape) * sp / 2
    scale = min(1.0, float(half.min()) / 30.0)  # anatomy in mm, shrunk for small fields of view
    centres = [(np.arange(n) + 0.5) * s - h for n, s, h in zip(shape, sp, half, strict=True)]
    x, y, z = centres[0][:, None, None], centres[1][None, :, None], centres[2][None, None, :]

    def field(sigma_mm: float) -> np.ndarray:
        """Smooth Gaussian random field with unit standard deviation."""
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_mm * scale / sp)
        return noise / (noise.std() + 1e-8)

    # Body: elliptic cylinder with a fat layer, soft tissue mixed with fatty mesentery.
    ax, ay = half[0] * rng.uniform(0.88, 0.98), half[1] * rng.uniform(0.78, 0.92)
    body_r = np.sqrt((x / ax) ** 2 + ((y + half[1] * 0.05) / ay) ** 2) + 0 * z
    fat_layer = 1 - rng.uniform(4, 7) * scale / min(ax, ay)
    image = np.full(shape, -1000.0)
    image[body_r < 1] = -100.0
    inner = body_r < fat_layer
    mesentery = field(4.0) > rng.uniform(0.3, 0.8)
    image[inner] = np.where(mesentery, -90.0, 45.0)[inner]
    # Vertebra (posterior), aorta in front of it, a liver edge on the patient's right.
    spine_y = ay * 0.55
    vertebra = (x**2 + (y - spine_y) ** 2 < (9 * scale) ** 2) & inner
    image[vertebra] = rng.uniform(350, 550)
    aorta_x = rng.choice((-1.0, 1.0)) * rng.uniform(9, 13) * scale
    aorta = ((x - aorta_x) ** 2 + (y - spine_y + 16 * scale) ** 2 < (7 * scale) ** 2) & inner
    image[aorta] = rng.uniform(150, 220)
    liver = ((x + ax) / (ax * 0.55)) ** 2 + ((y + ay * 0.3) / (ay * 0.7)) ** 2 < 1
    image[liver & inner] = rng.uniform(55, 70)

    # Pancreas: a tube running left-right, gently curved, in peripancreatic fat.
    y0 = rng.uniform(-0.15, 0.05) * half[1]
    z0 = rng.uniform(-0.15, 0.15) * half[2]
    bend, tilt = rng.uniform(-8, 8) * scale, rng.uniform(-0.15, 0.15)
    centre_y = y0 + bend * np.sin(np.pi * x / (2 * half[0])) + 0 * z
    centre_z = z0 + tilt * x
    radius = (rng.uniform(6, 8) + 1.5 * np.cos(x / (half[0] + 1) * rng.uniform(1, 3))) * scale
    distance = np.sqrt((y - centre_y) ** 2 + (z - centre_z) ** 2)

    # Lesion, centred on the pancreas; the pancreas swells around it.
    lx = rng.uniform(-0.35, 0.35) * half[0]
    ly = y0 + bend * np.sin(np.pi * lx / (2 * half[0])) + rng.uniform(-2, 2) * scale
    lz = z0 + tilt * lx + rng.uniform(-2, 2) * scale
    r_lesion = rng.uniform(6, 11) * scale
    lesion_dist = _lesion_distance(subtype, x - lx, y - ly, z - lz, r_lesion, rng)
    pancreas = ((distance < radius) & (np.abs(x) < half[0] * 0.95)) | (
        lesion_dist < 1 + 3 * scale / r_lesion
    )
    halo = ndimage.binary_dilation(pancreas, iterations=max(1, round(3 * scale / sp.min())))
    image[halo & inner] = -90.0
    image[pancreas] = rng.normal(120, 8) + 8 * field(2.0)[pancreas]
    lesion = lesion_dist < 1

    image[lesion] = _lesion_intensity(subtype, lesion_dist, field, rng)[lesion]
    mask = np.zeros(shape, np.uint8)
    mask[pancreas] = 1
    mask[lesion] = 2

    # Scanner: partial-volume blur, then correlated noise.
    image = ndimage.gaussian_filter(image, 0.6 / sp * sp.min())
    image += rng.uniform(8, 14) * field(0.8)
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16), mask


def _lesion_distance(
    subtype: int, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, r: float, rng
) -> np.ndarray:
    """Normalised distance to the lesion surface: < 1 inside."""
    if subtype == 0:  # round
        axes = r * rng.uniform(0.9, 1.1, size=3)
        return np.sqrt((dx / axes[0]) ** 2 + (dy / axes[1]) ** 2 + (dz / axes[2]) ** 2)
    if subtype == 1:  # oval, randomly oriented in the axial plane
        axes = r * np.array([rng.uniform(1.1, 1.35), rng.uniform(0.75, 0.9), rng.uniform(0.8, 1.0)])
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * dx + np.sin(angle) * dy
        v = -np.sin(angle) * dx + np.cos(angle) * dy
        return np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2 + (dz / axes[2]) ** 2)
    # subtype 2: lobulated, the union of a core and 3-5 offset lobes
    dist = np.sqrt(dx**2 + dy**2 + dz**2) / (0.75 * r)
    for _ in range(rng.integers(3, 6)):
        direction = rng.normal(size=3)
        offset = direction / np.linalg.norm(direction) * r * rng.uniform(0.4, 0.6)
        lobe_r = r * rng.uniform(0.5, 0.7)
        lobe = np.sqrt((dx - offset[0]) ** 2 + (dy - offset[1]) ** 2 + (dz - offset[2]) ** 2)
        dist = np.minimum(dist, lobe / lobe_r)
    return dist


def _lesion_intensity(subtype: int, dist: np.ndarray, field, rng) -> np.ndarray:
    """Lesion HU everywhere (only the voxels with ``dist < 1`` are used)."""
    if subtype == 0:
        return rng.normal(30, 12) + 4 * field(1.5)
    if subtype == 1:
        rim = np.clip((dist - rng.uniform(0.7, 0.78)) / 0.08, 0, 1)  # 0 in the core, 1 at the rim
        return rng.normal(35, 12) + rng.uniform(80, 120) * rim + 6 * field(1.5)
    return rng.normal(45, 12) + rng.uniform(18, 28) * field(1.5)


def write_phantom_dataset(
    root: str | Path,
    *,
    n_train: int = 60,
    n_validation: int = 12,
    n_test: int = 12,
    shape: Sequence[int] = _DEFAULT_SHAPE,
    spacing: Sequence[float] = _DEFAULT_SPACING,
    class_counts: Sequence[int] = STUDY_SUBTYPE_COUNTS,
    seed: int = 0,
) -> DatasetIndex:
    """Write phantoms in the study's layout and return the dataset read back.

    Files: ``SPLIT/subtypeK/phantom_NNN_0000.nii.gz`` (int16 HU, LPS, spacing in the affine) and
    ``phantom_NNN.nii.gz`` (uint8 mask) for train and validation, ``test/phantom_NNN_0000.nii.gz``
    plus its mask for test; ``cases.csv`` (case, split, subtype, including test subtypes, for
    evaluation) and ``dataset.json`` (labels, channel). Case ids do not reveal the subtype.

    Args:
        root: An empty or new folder.
        n_train: Training cases.
        n_validation: Validation cases.
        n_test: Test cases.
        shape: Array shape ``(X, Y, Z)`` of each phantom.
        spacing: Voxel size in millimetres.
        class_counts: Relative frequency of subtypes 0, 1, 2 in every split (default: the study's
            62/106/84).
        seed: Seed of the whole dataset.

    Returns:
        The :class:`DatasetIndex` of the written dataset.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} is not empty; write phantoms into a new or empty folder")
    shape = _checked_geometry(shape, spacing)
    if len(class_counts) != 3 or min(class_counts) < 0 or sum(class_counts) <= 0:
        raise DataError(f"class_counts must be three non-negative numbers, got {class_counts!r}")
    rng = np.random.default_rng(seed)
    plan: list[tuple[str, int]] = []
    for split, n in (("train", n_train), ("validation", n_validation), ("test", n_test)):
        if n < 0:
            raise DataError(f"n_{split} must be >= 0, got {n}")
        subtypes = np.repeat(np.arange(3), _allocate(n, class_counts))
        plan.extend((split, int(k)) for k in rng.permutation(subtypes))
    affine = spacing_affine(spacing, -np.asarray(shape) * np.asarray(spacing) / 2 * [-1, -1, 1])
    rows = []
    width = max(3, len(str(len(plan))))
    for i, (split, subtype) in enumerate(plan, start=1):
        case_id = f"phantom_{i:0{width}d}"
        image, mask = make_phantom(subtype, shape=shape, spacing=spacing, seed=(seed, i))
        folder = root / split / (f"subtype{subtype}" if split != "test" else "")
        write_image(folder / f"{case_id}_0000.nii.gz", image, affine)
        write_image(folder / f"{case_id}.nii.gz", mask, affine)
        rows.append((case_id, split, subtype))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("case", "split", "subtype"))
    writer.writerows(rows)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "cases.csv", buffer.getvalue())
    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": PHANTOM_LABELS,
        "file_ending": ".nii.gz",
    }
    write_text_atomic(root / "dataset.json", json.dumps(dataset_json, indent=2) + "\n")
    return read_dataset(root, layout="study")


def _allocate(n: int, weights: Sequence[float]) -> list[int]:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainders)."""
    share = np.asarray(weights, float) / float(sum(weights)) * n
    counts = np.floor(share).astype(int)
    for k in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return counts.tolist()
