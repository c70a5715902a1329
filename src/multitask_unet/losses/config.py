"""Configs that name losses, so that a YAML file can describe a :class:`MultiTaskLoss`.

Example:
    >>> config = MultiTaskLossConfig.from_yaml('''
    ... terms:
    ...   seg: {loss: dice_ce, weight: 1.0, deep_supervision: true}
    ...   cls: {loss: focal, weight: 0.3, options: {gamma: 2.0}, class_weights: inverse_sqrt,
    ...         warmup: {epochs: 20}}
    ... ''')
    >>> loss_fn = config.build(class_counts={"cls": [120, 60, 20]})
    >>> loss_fn.losses["cls"]
    FocalLoss(gamma=2.0, weight=[0.7879, 1.1142, 1.9299])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError
from multitask_unet.losses.base import LOSSES, create_loss
from multitask_unet.losses.classification import class_weights, pos_weights
from multitask_unet.losses.deep_supervision import DeepSupervisionLoss
from multitask_unet.losses.multitask import MultiTaskLoss, Warmup

__all__ = ["LossTermConfig", "MultiTaskLossConfig"]

#: Losses whose classes ``class_weights`` weights: the option set, and the function of the counts.
_WEIGHTED = {
    "ce": ("weight", class_weights),
    "focal": ("weight", class_weights),
    "bce_ovr": ("pos_weight", pos_weights),
}


@dataclass(frozen=True)
class LossTermConfig(Config):
    """The loss of one model output.

    Attributes:
        loss: A name from ``LOSSES.list()``: ``"dice_ce"``, ``"dice"``, ``"ce"``, ``"focal"``,
            ``"bce_ovr"``.
        weight: Static weight of the term.
        options: Keyword options of the loss, e.g. ``{"gamma": 2.0}`` or ``{"batch_dice": true}``.
        deep_supervision: Wrap the loss in :class:`DeepSupervisionLoss` (nnU-Net's weights), for
            a segmentation output with ``"<key>_deep"`` outputs.
        class_weights: ``"balanced"`` or ``"inverse_sqrt"`` to weight classes from the training
            counts given to :meth:`MultiTaskLossConfig.build`; the words of the case draws'
            ``data.class_weights``. ``"ce"`` and ``"focal"`` get ``options.weight`` from
            :func:`~multitask_unet.losses.class_weights` (``balanced``: ``1 / n_k``);
            ``"bce_ovr"`` gets ``options.pos_weight`` from
            :func:`~multitask_unet.losses.pos_weights` (``balanced``: negatives / positives of
            every class). ``"inverse"``, the former name of ``"balanced"``, is read as it.
        warmup: Optional ramp of the weight (:class:`Warmup`).
    """

    loss: str = "ce"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    deep_supervision: bool = False
    class_weights: Literal["none", "balanced", "inverse_sqrt"] = "none"
    warmup: Warmup | None = None

    def __post_init__(self) -> None:
        if self.class_weights == "inverse":  # the former name of "balanced"
            object.__setattr__(self, "class_weights", "balanced")
        LOSSES.get(self.loss)  # unknown names raise RegistryError with close matches
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"LossTermConfig.weight must be finite and >= 0, got {self.weight}")
        if self.class_weights == "none":
            return
        if self.loss not in _WEIGHTED:
            raise ConfigError(
                f"class_weights={self.class_weights!r} needs a loss with class weights "
                f"({', '.join(_WEIGHTED)}), not {self.loss!r}; set class_weights: none"
            )
        option = _WEIGHTED[self.loss][0]
        if option in self.options:
            raise ConfigError(f"give either class_weights or options.{option}, not both")


def _default_terms() -> dict[str, LossTermConfig]:
    return {
        "seg": LossTermConfig(loss="dice_ce", weight=1.0, deep_supervision=True),
        "cls": LossTermConfig(loss="ce", weight=0.3),
    }


@dataclass(frozen=True)
class MultiTaskLossConfig(Config):
    """A :class:`MultiTaskLoss` described by names; the default is the study's weighting.

    Attributes:
        terms: Output key -> :class:`LossTermConfig`. Default: ``seg`` nnU-Net Dice+CE with deep
            supervision (weight 1), ``cls`` cross-entropy (weight 0.3).
        uncertainty: Learned uncertainty weighting (see :class:`MultiTaskLoss`).
    """

    terms: dict[str, LossTermConfig] = field(default_factory=_default_terms)
    uncertainty: bool = False

    def __post_init__(self) -> None:
        if not self.terms:
            raise ConfigError("MultiTaskLossConfig.terms needs at least one output key")

    def build(self, *, class_counts: Mapping[str, Sequence[int]] | None = None) -> MultiTaskLoss:
        """Build the loss.

        Args:
            class_counts: Output key -> training samples per class, needed by terms with
                ``class_weights``.

        Raises:
            ConfigError: a term needs class counts that were not given, or an option is invalid.
        """
        counts = dict(class_counts or {})
        losses = {}
        for key, term in self.terms.items():
            options = dict(term.options)
            if term.class_weights != "none":
                if key not in counts:
                    raise ConfigError(
                        f"terms[{key!r}] uses class_weights={term.class_weights!r}; pass "
                        f"build(class_counts={{{key!r}: [n_0, n_1, ...]}}) from the training labels"
                    )
                option, weigh = _WEIGHTED[term.loss]
                try:
                    options[option] = weigh(counts[key], class_weights=term.class_weights)
                except ConfigError as exc:
                    raise ConfigError(
                        f"terms[{key!r}] (class_weights={term.class_weights!r}) weights its "
                        f"classes by their training cases: {exc}; or set class_weights: none"
                    ) from None
            loss = create_loss(term.loss, **options)
            if term.deep_supervision:
                loss = DeepSupervisionLoss(loss)
            losses[key] = (loss, term.weight)
        warmup = {k: t.warmup for k, t in self.terms.items() if t.warmup is not None}
        return MultiTaskLoss(losses, uncertainty=self.uncertainty, warmup=warmup)
