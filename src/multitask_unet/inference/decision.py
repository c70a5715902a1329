"""Label maps from segmentation probabilities: the argmax, optionally with per-label weights.

A network trained where one label is rare and nested in another (a lesion inside the pancreas)
can be biased against it: its probabilities favour the common label where the two meet, and
the argmax under-segments the rare one. :func:`weighted_argmax` takes ``argmax_k w_k p_k``
instead, the Bayes decision when calling label ``k`` wrongly costs ``w_k`` (equivalently, a
shift of the label priors). The weights are a post-processing choice like nnU-Net's
largest-component step: choose them on cross-validation predictions
(:func:`label_weight_dice` scores candidate weights of one label on a case), never on the
cases a result is reported on. :class:`Postprocessing` keeps the choice (weights and the
largest-component step) and applies it; a run folder stores it as ``postprocessing.json``.

Example:
    >>> p = np.array([[0.1], [0.6], [0.3]])          # (labels, voxels): background, organ, lesion
    >>> weighted_argmax(p).tolist(), weighted_argmax(p, (1, 1, 4)).tolist()
    ([1], [2])
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask_unet._atomic import write_text_atomic
from multitask_unet.config import Config
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.evaluation.segmentation import dice
from multitask_unet.inference.postprocessing import keep_largest_component

__all__ = ["Postprocessing", "check_label_weights", "label_weight_dice", "weighted_argmax"]


def check_label_weights(weights: Sequence[float], num_labels: int) -> tuple[float, ...]:
    """``weights`` as a tuple of ``num_labels`` finite positive floats.

    Raises:
        ConfigError: Wrong length, or a weight that is not finite and positive.
    """
    out = tuple(float(w) for w in weights)
    if len(out) != num_labels:
        raise ConfigError(
            f"label weights {out} have {len(out)} entries for {num_labels} labels (background "
            f"included); give one weight per label, e.g. {(1.0,) * (num_labels - 1) + (4.0,)}"
        )
    bad = [w for w in out if not (math.isfinite(w) and w > 0)]
    if bad:
        raise ConfigError(f"label weights must be finite and > 0, got {out}")
    return out


def weighted_argmax(
    probabilities: np.ndarray, weights: Sequence[float] | None = None
) -> np.ndarray:
    """The label map ``argmax_k weights[k] * probabilities[k]`` (plain argmax without weights).

    Args:
        probabilities: ``(K, ...)`` probabilities (or any scores) of the ``K`` labels.
        weights: ``K`` positive weights, or ``None``.

    Returns:
        ``(...)`` label map, uint8 for up to 256 labels, else int16.

    Raises:
        ShapeError: ``probabilities`` has no spatial axes.
        ConfigError: Bad weights (see :func:`check_label_weights`).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim < 2:
        raise ShapeError(
            f"probabilities must be (labels, ...spatial), got shape {probabilities.shape}"
        )
    num = probabilities.shape[0]
    dtype = np.uint8 if num <= 256 else np.int16
    if weights is None:
        return probabilities.argmax(axis=0).astype(dtype)
    scale = np.asarray(check_label_weights(weights, num), dtype=np.float32)
    scale = scale.reshape((num,) + (1,) * (probabilities.ndim - 1))
    return (probabilities.astype(np.float32, copy=False) * scale).argmax(axis=0).astype(dtype)


def label_weight_dice(
    probabilities: np.ndarray,
    reference: np.ndarray,
    *,
    label: int,
    candidates: Sequence[float],
    largest_component: bool = False,
) -> list[float]:
    """Dice of ``label`` on one case for each candidate weight of that label (others 1).

    Average the lists over cross-validation cases and keep the best candidate; ``1.0`` among
    the candidates keeps the plain argmax in the running.

    Args:
        probabilities: ``(K, ...)`` probabilities on the reference's grid.
        reference: ``(...)`` integer reference label map.
        label: The label to weight and score (e.g. the lesion, 2).
        candidates: Weights to try (each > 0).
        largest_component: Score after :func:`keep_largest_component` of the foreground.

    Raises:
        ShapeError: The grids differ.
        ConfigError: ``label`` is not one of the ``K`` labels, or a bad candidate.
    """
    probabilities = np.asarray(probabilities)
    reference = np.asarray(reference)
    if probabilities.shape[1:] != reference.shape:
        raise ShapeError(
            f"probabilities of shape {probabilities.shape} do not match the reference grid "
            f"{reference.shape}; resample the probabilities to the reference first"
        )
    num = probabilities.shape[0]
    if not 0 <= label < num:
        raise ConfigError(f"label {label} is not one of the {num} labels 0..{num - 1}")
    scores = []
    for candidate in candidates:
        weights = [1.0] * num
        weights[label] = candidate
        labels = weighted_argmax(probabilities, weights)
        if largest_component:
            labels = keep_largest_component(labels)
        scores.append(dice(labels == label, reference == label))
    return scores


@dataclass(frozen=True)
class Postprocessing(Config):
    """The post-processing of label maps chosen on cross-validation predictions.

    Probabilities become a label map by :func:`weighted_argmax` with ``label_weights`` (the
    plain argmax without), then :func:`~multitask_unet.inference.keep_largest_component` when
    ``largest_component``. A run folder keeps it as ``postprocessing.json``
    (:meth:`save` / :meth:`load`), which :meth:`Predictor.from_run
    <multitask_unet.inference.Predictor.from_run>` applies.

    Attributes:
        label_weights: One weight per segmentation label, background included, or ``None``.
        largest_component: Keep only the largest connected component of the foreground.
        details: Free-form record of how the choice was made (candidates, scores, cases).

    Example:
        >>> pp = Postprocessing(label_weights=(1, 1, 4))
        >>> pp.labels(np.array([[0.1], [0.6], [0.3]])).tolist(), pp.is_identity
        ([2], False)
    """

    label_weights: tuple[float, ...] | None = None
    largest_component: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label_weights is not None:
            if len(self.label_weights) < 2:
                raise ConfigError(
                    f"label_weights {self.label_weights} must hold one weight per label, "
                    "background included (at least 2)"
                )
            weights = check_label_weights(self.label_weights, len(self.label_weights))
            object.__setattr__(self, "label_weights", weights)
        if not isinstance(self.largest_component, bool):
            raise ConfigError(
                f"largest_component must be true or false, got {self.largest_component!r}"
            )
        if not isinstance(self.details, Mapping):
            raise ConfigError(f"details must be a mapping, got {type(self.details).__name__}")

    @property
    def is_identity(self) -> bool:
        """True when the label map is the plain argmax (no step, or equal weights only)."""
        uniform = self.label_weights is None or len(set(self.label_weights)) == 1
        return uniform and not self.largest_component

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map of ``(K, ...)`` probabilities (uint8 up to 256 labels, else int16).

        Raises:
            ShapeError: ``probabilities`` has no spatial axes.
            ConfigError: ``label_weights`` does not have ``K`` entries.
        """
        probabilities = np.asarray(probabilities)
        if self.label_weights is None:
            if probabilities.ndim < 2:
                raise ShapeError(
                    f"probabilities must be (labels, ...spatial), got shape {probabilities.shape}"
                )
            # torch's argmax (first maximum, as numpy's) runs on several threads
            dtype = torch.uint8 if probabilities.shape[0] <= 256 else torch.int16
            scores = torch.from_numpy(np.ascontiguousarray(probabilities))
            labels = scores.argmax(dim=0).to(dtype).numpy()
        else:
            labels = weighted_argmax(probabilities, self.label_weights)
        return keep_largest_component(labels) if self.largest_component else labels

    def describe(self) -> str:
        """One line for logs, e.g. ``label weights (1, 1, 16), largest component``."""
        steps = []
        if self.label_weights is not None:
            steps.append("label weights (" + ", ".join(f"{w:g}" for w in self.label_weights) + ")")
        if self.largest_component:
            steps.append("largest component")
        return ", ".join(steps) or "none (plain argmax)"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (a reader never sees half a file)."""
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Postprocessing:
        """Read a file written by :meth:`save`.

        Raises:
            ConfigError: The file is missing, not JSON, or holds other keys or values; the
                message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"post-processing file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path} is not valid JSON ({exc}); write it with Postprocessing.save or delete "
                "it to predict without post-processing"
            ) from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path} is not a valid post-processing file: {exc}") from None
