"""Pictures of label maps on their image: one PNG per case and a contact sheet, worst first.

Each picture is the axial slice (the array axis closest to the body's head-foot axis, read from
the affine) through the largest connected structure of the reference (of the prediction when
there is no reference), with the image in grey (1st to 99th percentile of the volume) and one
outline per label: the prediction solid, the reference dashed. The slice is drawn as stored
(first array axis across), not flipped to a radiological view.

``write_overlays`` writes ``OUT/CASE.png`` for every case and ``OUT/contact_sheet.png`` with the
first ``sheet_cases`` cases, worst score first (cases without a score last, by id).

Example:
    >>> cases = [OverlayCase("a", image, prediction, reference, score=0.7)]  # doctest: +SKIP
    >>> write_overlays(cases, "report/overlays")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.data.io import read_image, read_mask
from multitask_unet.evaluation.figures import require_matplotlib, save_figure

__all__ = ["OverlayCase", "axial_axis", "largest_structure_slice", "write_overlays"]

#: Outline colours of labels 1, 2, ... (repeating).
LABEL_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0")


@dataclass(frozen=True)
class OverlayCase:
    """One case to draw.

    Attributes:
        case_id: Title of the picture and name of its file.
        image: The image file (the first channel is drawn).
        prediction: The predicted label map, on the image's grid.
        reference: The reference label map, or None.
        score: Orders the contact sheet, lowest first (e.g. the mean Dice); None sorts last.
    """

    case_id: str
    image: Path
    prediction: Path
    reference: Path | None = None
    score: float | None = None


def axial_axis(affine: np.ndarray) -> int:
    """The array axis whose direction is closest to the world's head-foot (z) axis."""
    columns = np.asarray(affine, dtype=float)[:3, :3]
    direction = columns / np.linalg.norm(columns, axis=0)
    return int(np.argmax(np.abs(direction[2])))


def largest_structure_slice(labels: np.ndarray, axis: int) -> int:
    """The index along ``axis`` where the largest connected foreground structure is widest;
    the middle slice when there is no foreground."""
    components, count = ndimage.label(labels > 0)
    if count == 0:
        return labels.shape[axis] // 2
    sizes = np.bincount(components.ravel())[1:]
    largest = components == int(np.argmax(sizes)) + 1
    other = tuple(a for a in range(labels.ndim) if a != axis)
    return int(np.argmax(largest.sum(axis=other)))


def _draw(ax: Any, case: OverlayCase) -> None:
    volume = read_image(case.image)
    image = np.asarray(volume.array, dtype=np.float32)
    image = image if image.ndim == 3 else image[..., 0]
    prediction = read_mask(case.prediction).array
    reference = read_mask(case.reference).array if case.reference is not None else None
    axis = axial_axis(volume.affine)
    index = largest_structure_slice(reference if reference is not None else prediction, axis)
    finite = image[np.isfinite(image)]
    low, high = np.percentile(finite, (1, 99)) if finite.size else (0.0, 1.0)
    ax.imshow(np.take(image, index, axis).T, cmap="gray", vmin=low, vmax=high, origin="lower")
    labels = np.union1d(np.unique(prediction), [] if reference is None else np.unique(reference))
    for label in (int(v) for v in labels if v > 0):
        colour = LABEL_COLOURS[(label - 1) % len(LABEL_COLOURS)]
        for mask, style in ((prediction, "solid"), (reference, "dashed")):
            if mask is None:
                continue
            plane = label == np.take(mask, index, axis).T
            if plane.any():
                ax.contour(plane, levels=[0.5], colors=[colour], linewidths=1.0, linestyles=style)
    score = "" if case.score is None or math.isnan(case.score) else f"  {case.score:.3f}"
    ax.set_title(f"{case.case_id}{score}  (slice {index})", fontsize=8)
    ax.set_axis_off()


@renamed_kwargs(out_dir="output_dir")
def write_overlays(
    cases: Sequence[OverlayCase], output_dir: str | os.PathLike[str], *, sheet_cases: int = 24
) -> list[Path]:
    """Write ``OUT/CASE.png`` for every case and ``OUT/contact_sheet.png`` (see module docs).

    ``output_dir`` (created) was called ``out_dir``; that name still works with a
    ``FutureWarning``.

    Returns:
        The written files, the contact sheet last.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    out = Path(output_dir)
    order = sorted(
        cases,
        key=lambda c: (c.score is None or math.isnan(c.score), c.score or 0.0, c.case_id),
    )
    written = []
    for case in order:
        fig = Figure(figsize=(4.0, 4.0), dpi=100, layout="constrained")
        _draw(fig.add_subplot(), case)
        written.append(save_figure(fig, out / f"{case.case_id}.png"))
    shown = order[:sheet_cases]
    if shown:
        columns = min(6, len(shown))
        rows = math.ceil(len(shown) / columns)
        fig = Figure(figsize=(2.6 * columns, 2.6 * rows), dpi=100, layout="constrained")
        for i, case in enumerate(shown):
            _draw(fig.add_subplot(rows, columns, i + 1), case)
        title = f"{len(shown)} of {len(order)} cases, lowest score first"
        if any(c.reference for c in shown):
            title += "; prediction solid, reference dashed"
        fig.suptitle(title, fontsize=9)
        written.append(save_figure(fig, out / "contact_sheet.png"))
    return written
