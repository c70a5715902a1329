"""Choose post-processing on cross-validation predictions, as nnU-Net's ``determine_postprocessing``.

Two steps are considered, on the out-of-fold segmentation probabilities of every case:

1. **Label weights** (:func:`~multitask_unet.inference.decision.weighted_argmax`): one weight
   per foreground label, searched one label at a time, the rarest label (smallest reference
   volume) first, each from ``candidates`` with the weights chosen so far fixed. A weight is
   kept when it raises the criterion; the smallest weight wins a tie.
2. **Largest component** (:func:`~multitask_unet.inference.keep_largest_component`) of the whole
   foreground, kept when it raises the criterion (nnU-Net's rule).

The criterion is the mean over foreground labels of each label's mean Dice over the cases
(cases where a label is absent from both reference and prediction do not count for it), so a
weight that helps the rare label at the expense of the common one is weighed fairly. Report a
choice on cases it was not made on: :meth:`PostprocessingSearch.choose` takes the cases to
choose on, so that each fold's choice can come from the other folds (cross-fitting).

Example:
    >>> rng = np.random.default_rng(0)
    >>> reference = np.zeros((8, 8, 8), np.uint8); reference[2:6, 2:6, 2:6] = 1
    >>> reference[3:5, 3:5, 3:5] = 2
    >>> p = np.full((3, 8, 8, 8), 0.1); p[0] = 0.8
    >>> p[0][reference > 0] = 0.05; p[1][reference > 0] = 0.6
    >>> p[2][reference == 2] = 0.35                       # the lesion is under-called
    >>> search = PostprocessingSearch({"a": lambda: (p, reference)}, labels=(1, 2))
    >>> choice = search.choose(["a"])
    >>> choice.label_weights, choice.largest_component
    ((1.0, 1.0, 2.0), False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multitask_unet.errors import ConfigError
from multitask_unet.evaluation.segmentation import dice
from multitask_unet.inference.decision import weighted_argmax
from multitask_unet.inference.postprocessing import keep_largest_component

__all__ = ["WEIGHT_CANDIDATES", "PostprocessingChoice", "PostprocessingSearch"]

#: Candidate weights of each foreground label (1: the plain argmax).
WEIGHT_CANDIDATES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

CaseLoader = Callable[[], tuple[np.ndarray, np.ndarray]]
_Variant = tuple[tuple[float, ...], bool]


@dataclass(frozen=True)
class PostprocessingChoice:
    """What :meth:`PostprocessingSearch.choose` chose, and the criterion along the way.

    Attributes:
        label_weights: One weight per label, background first; all ones is the plain argmax.
        largest_component: Keep only the largest foreground component.
        criterion: Mean foreground Dice of the choice on the cases it was chosen on.
        baseline: The same for the plain argmax.
        steps: Every variant tried, with its criterion, in order.
    """

    label_weights: tuple[float, ...]
    largest_component: bool
    criterion: float
    baseline: float
    steps: list[dict[str, Any]] = field(default_factory=list)


class PostprocessingSearch:
    """Scores of post-processing variants on cases, computed once per case and variant.

    Args:
        cases: Case id -> a function returning ``(probabilities (K, ...), reference (...))``,
            both on the same grid; called once per batch of variants, so cases need not stay
            in memory.
        labels: The foreground labels to score (e.g. ``(1, 2)``); ``K`` is ``max(labels) + 1``.
        candidates: Candidate weights of each label (must include 1).
    """

    def __init__(
        self,
        cases: Mapping[str, CaseLoader],
        labels: Sequence[int],
        candidates: Sequence[float] = WEIGHT_CANDIDATES,
    ) -> None:
        if not cases:
            raise ConfigError("the post-processing search needs at least one case")
        if 1.0 not in {float(c) for c in candidates}:
            raise ConfigError(f"weight candidates must include 1 (the plain argmax): {candidates}")
        self.cases = dict(cases)
        self.labels = tuple(sorted(int(v) for v in labels if int(v) != 0))
        if not self.labels:
            raise ConfigError("the post-processing search needs at least one foreground label")
        self.candidates = tuple(sorted({float(c) for c in candidates}))
        self.num_labels = max(self.labels) + 1
        self._scores: dict[str, dict[_Variant, np.ndarray]] = {c: {} for c in self.cases}
        self._volumes: dict[str, np.ndarray] = {}

    def choose(self, case_ids: Sequence[str]) -> PostprocessingChoice:
        """The label weights and largest-component step that score best on ``case_ids``."""
        ids = list(case_ids)
        unknown = [c for c in ids if c not in self.cases]
        if unknown or not ids:
            raise ConfigError(f"cannot choose on cases {unknown or ids}: not in the search")
        weights = (1.0,) * self.num_labels
        baseline = best = self.criterion(ids, (weights, False))
        steps = [_step(weights, False, best)]
        volumes = np.sum([self._volume(c) for c in ids], axis=0)
        for label in sorted(self.labels, key=lambda v: (volumes[v], v)):  # rarest first
            tried = [_with(weights, label, w) for w in self.candidates if w != 1.0]
            self._ensure(ids, [(t, False) for t in tried])
            chosen = weights
            for variant in tried:  # ascending: the smallest weight wins a tie
                score = self.criterion(ids, (variant, False))
                steps.append(_step(variant, False, score))
                if score > best:
                    best, chosen = score, variant
            weights = chosen
        lcc = self.criterion(ids, (weights, True))
        steps.append(_step(weights, True, lcc))
        keep = lcc > best
        return PostprocessingChoice(
            label_weights=weights,
            largest_component=keep,
            criterion=max(lcc, best),
            baseline=baseline,
            steps=steps,
        )

    def criterion(self, case_ids: Sequence[str], variant: _Variant) -> float:
        """Mean over foreground labels of the label's mean Dice over ``case_ids``."""
        table = self.dice(case_ids, variant)
        per_label = [np.nanmean(col) if np.isfinite(col).any() else np.nan for col in table.T]
        return float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")

    def dice(self, case_ids: Sequence[str], variant: _Variant) -> np.ndarray:
        """``(cases, labels)`` Dice of each foreground label (NaN: absent from both)."""
        self._ensure(case_ids, [variant])
        return np.stack([self._scores[c][variant] for c in case_ids])

    # -- cache -------------------------------------------------------------------------------
    def _ensure(self, case_ids: Sequence[str], variants: Sequence[_Variant]) -> None:
        for case_id in case_ids:
            missing = [v for v in variants if v not in self._scores[case_id]]
            if not missing:
                continue
            probabilities, reference = self._load(case_id)
            for weights, lcc in missing:
                labels = weighted_argmax(probabilities, weights)
                if lcc:
                    labels = keep_largest_component(labels)
                self._scores[case_id][(weights, lcc)] = np.array(
                    [dice(labels == v, reference == v, both_empty=np.nan) for v in self.labels]
                )

    def _volume(self, case_id: str) -> np.ndarray:
        if case_id not in self._volumes:
            self._load(case_id)
        return self._volumes[case_id]

    def _load(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        probabilities, reference = self.cases[case_id]()
        probabilities = np.asarray(probabilities, dtype=np.float32)
        reference = np.asarray(reference)
        if probabilities.shape[0] != self.num_labels or probabilities.shape[1:] != reference.shape:
            raise ConfigError(
                f"case {case_id}: probabilities {probabilities.shape} do not match "
                f"{self.num_labels} labels on the reference's grid {reference.shape}"
            )
        self._volumes[case_id] = np.bincount(
            reference.ravel().astype(np.int64), minlength=self.num_labels
        )[: self.num_labels]
        return probabilities, reference


def _step(weights: tuple[float, ...], lcc: bool, score: float) -> dict[str, Any]:
    return {"label_weights": list(weights), "largest_component": lcc, "criterion": score}


def _with(weights: tuple[float, ...], label: int, value: float) -> tuple[float, ...]:
    out = list(weights)
    out[label] = value
    return tuple(out)
