"""From segmentation logits on the preprocessed grid to a label map on the image file's grid.

The order is nnU-Net v2's (``convert_predicted_logits_to_segmentation_with_correct_shape``): the
logits are resampled to the cropped image grid (linear, nearest along the coarse axis of
anisotropic data), the softmax is taken there, then the (weighted) argmax; outside the crop box
every voxel is background. For the same logits the label map equals nnU-Net's export.

Example:
    >>> labels, probabilities = export_logits(logits, case.properties)  # doctest: +SKIP
    >>> labels.shape == case.properties.original_shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch

from multitask_unet.data.preprocessing.case import CaseProperties, restore_native
from multitask_unet.inference.decision import Postprocessing

__all__ = ["export_logits"]


def export_logits(
    logits: np.ndarray | torch.Tensor,
    properties: CaseProperties,
    postprocessing: Postprocessing | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The label map and softmax probabilities of ``logits`` on the image file's grid.

    Args:
        logits: ``(K, D, H, W)`` segmentation logits on the grid ``properties.shape``.
        properties: The case's preprocessing record.
        postprocessing: Label weights and largest component (default: plain argmax).

    Returns:
        ``(labels, probabilities)``: ``(I, J, K)`` label map and ``(K, I, J, K)`` float32
        probabilities, both on the grid of the case's image file.
    """
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().float().cpu().numpy()
    channels = logits.shape[0]
    background = (0.0, *[-math.inf] * (channels - 1))  # softmax: background only
    native = restore_native(np.asarray(logits, np.float32), properties, outside=background)
    probabilities = torch.from_numpy(np.ascontiguousarray(native)).softmax(dim=0).numpy()
    del native
    labels = (postprocessing or Postprocessing()).labels(probabilities)
    return labels, probabilities
