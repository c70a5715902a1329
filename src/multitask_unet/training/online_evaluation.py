"""Online evaluation (nnU-Net's word): the trainer's periodic whole-case Dice, ``val/score``.

Not to be confused with :mod:`multitask_unet.data.validation`, the checks of a dataset
(``multitask-unet validate``). Here the validation cases go whole through the sliding-window
predictor every few epochs.

Cases are taken from the preprocessing cache (already normalised and resampled), so the Dice
computed here is in the preprocessed space, as nnU-Net's validation during training; the final
evaluation in the original space is :func:`multitask_unet.evaluation` 's job.

Metrics (all in [0, 1], averaged over cases):

- ``val/dice_<label>`` for every foreground label, ``val/dice_whole`` for all of them together
  (a case whose reference and prediction both lack a label counts as 1);
- with a classification head: ``val/accuracy``, ``val/macro_f1`` and ``val/auc`` (macro
  one-vs-rest AUC over the classes present);
- ``val/score``: the mean of ``val/dice_whole``, the mean foreground Dice and, with a head,
  ``val/auc``; ``best.pt`` is the epoch with the highest score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from multitask_unet.data.sampling.loader import CacheEntry

__all__ = ["dice_scores", "validate"]


def dice_scores(pred: np.ndarray, ref: np.ndarray, labels: Mapping[str, int]) -> dict[str, float]:
    """Dice per foreground label and for all of them together (``"whole"``).

    Args:
        pred: Predicted label map, any shape.
        ref: Reference label map, same shape.
        labels: Label value by name; value 0 (background) is skipped.

    Example:
        >>> a = np.array([0, 1, 1, 2]); b = np.array([0, 1, 2, 2])
        >>> dice_scores(a, b, {"background": 0, "pancreas": 1, "lesion": 2})
        {'pancreas': 0.6666666666666666, 'lesion': 0.6666666666666666, 'whole': 1.0}
    """
    out: dict[str, float] = {}
    regions = {n: [v] for n, v in labels.items() if v != 0}
    regions["whole"] = [v for v in labels.values() if v != 0]
    for name, values in regions.items():
        p, r = np.isin(pred, values), np.isin(ref, values)
        denominator = int(p.sum()) + int(r.sum())
        out[name] = 1.0 if denominator == 0 else 2.0 * int((p & r).sum()) / denominator
    return out


@torch.no_grad()
def predict_volume(
    model: nn.Module,
    image: torch.Tensor,
    *,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Segmentation logits ``(1, C, D, H, W)`` and head logits of a whole preprocessed volume.

    Sliding windows of ``patch_size`` with Gaussian blending
    (:func:`~multitask_unet.inference.sliding_window_predict`); a volume smaller than a window
    is padded.
    """
    from multitask_unet.inference.sliding_window import sliding_window_predict

    return sliding_window_predict(
        _unwrap(model), image, window_size=tuple(patch_size), overlap=overlap, dtype=dtype
    )


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


@torch.no_grad()
def validate(
    model: nn.Module,
    cases: Sequence[CacheEntry],
    *,
    device: torch.device,
    label_names: Mapping[str, int],
    patch_size: Sequence[int],
    overlap: float = 0.5,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Predict every case whole and return the metrics of the module docstring (``val/...``)."""
    from multitask_unet.data.preprocessing.cache import load_cached_case
    from multitask_unet.evaluation.classification import macro_f1, roc_auc_ovr

    was_training = model.training
    model.eval()
    dice: dict[str, list[float]] = {}
    y_true, scores = [], []
    try:
        for entry in cases:
            case = load_cached_case(entry.cache_dir, entry.case_id, mmap=False)
            image = torch.from_numpy(np.ascontiguousarray(case.image))[None].to(device)
            out = predict_volume(
                model, image, patch_size=patch_size, overlap=overlap, dtype=autocast_dtype
            )
            if case.seg is not None:
                pred = out["seg"].argmax(1)[0].cpu().numpy()
                for name, value in dice_scores(pred, case.seg[0], label_names).items():
                    dice.setdefault(name, []).append(value)
            if "cls" in out and entry.label is not None:
                y_true.append(entry.label)
                probs = _unwrap(model).heads["cls"].probabilities(out["cls"].float())
                scores.append(probs[0].cpu().numpy())
    finally:
        model.train(was_training)
    metrics = {f"val/dice_{k}": float(np.mean(v)) for k, v in dice.items()}
    parts = []
    if dice:
        parts.append(metrics["val/dice_whole"])
        parts.append(float(np.mean([metrics[f"val/dice_{k}"] for k in dice if k != "whole"])))
    if y_true:
        truth, prob = np.asarray(y_true), np.stack(scores)
        predicted = prob.argmax(1)
        metrics["val/accuracy"] = float((predicted == truth).mean())
        metrics["val/macro_f1"] = float(macro_f1(truth, predicted))
        auc = roc_auc_ovr(truth, prob)
        if np.isfinite(auc).any():
            metrics["val/auc"] = float(np.nanmean(auc))
            parts.append(metrics["val/auc"])
    if parts:
        metrics["val/score"] = float(np.mean(parts))
    return metrics
