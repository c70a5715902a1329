"""Post-processing of predicted label maps.

:func:`keep_largest_component` is nnU-Net's "remove all but the largest connected component"
applied to the whole foreground: for a single organ (the pancreas with its lesion) every other
island of foreground is a false positive. nnU-Net decides per dataset, on its cross-validation
predictions, whether the step helps; the :class:`~multitask_unet.inference.Predictor` applies
it only when asked (``largest_component=True``, ``multitask-unet predict --largest-component``)
or when a run's ``postprocessing.json`` says so
(:class:`~multitask_unet.inference.decision.Postprocessing`, importable from here too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from multitask_unet.errors import ShapeError

__all__ = ["keep_largest_component"]


def keep_largest_component(
    segmentation: np.ndarray, labels: Sequence[int] | None = None
) -> np.ndarray:
    """Keep the largest connected component of the union of ``labels``; set the rest to 0.

    Components are 26-connected (faces, edges and corners touch), as scikit-image's default that
    nnU-Net uses. Labels outside ``labels`` are left as they are.

    Args:
        segmentation: Integer label map of any dimensionality (2D or 3D).
        labels: The labels forming the structure (default: every label other than 0).

    Returns:
        A new label map of the same shape and dtype.

    Raises:
        ShapeError: ``segmentation`` is not an integer array of at least 2 dimensions.

    Example:
        >>> seg = np.zeros((1, 6, 6), dtype=np.uint8)
        >>> seg[0, :3, :3] = 1          # the organ
        >>> seg[0, 1, 1] = 2            # a lesion inside it
        >>> seg[0, 5, 5] = 1            # a false-positive island
        >>> keep_largest_component(seg)[0, 5, 5], keep_largest_component(seg)[0, 1, 1]
        (np.uint8(0), np.uint8(2))
    """
    if segmentation.ndim < 2 or not np.issubdtype(segmentation.dtype, np.integer):
        raise ShapeError(
            f"keep_largest_component needs an integer label map of 2 or more dimensions, got "
            f"dtype {segmentation.dtype} and shape {segmentation.shape}; round and cast it first"
        )
    mask = segmentation > 0 if labels is None else np.isin(segmentation, list(labels))
    structure = np.ones((3,) * segmentation.ndim, dtype=bool)
    components, count = ndimage.label(mask, structure=structure)
    out = segmentation.copy()
    if count <= 1:
        return out
    sizes = np.bincount(components.ravel())
    sizes[0] = 0  # the background
    out[mask & (components != int(sizes.argmax()))] = 0
    return out


def __getattr__(name: str) -> Any:
    # Postprocessing lives in decision.py, which imports this module: resolve it lazily.
    if name == "Postprocessing":
        from multitask_unet.inference.decision import Postprocessing

        return Postprocessing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
