"""Classification losses with missing targets: cross-entropy, focal loss, one-vs-rest BCE.

Target convention: ``(B,)`` integer class indices in ``[0, K)``, with ``-1`` meaning "no label
for this sample" (e.g. a segmentation-only case). Missing samples contribute nothing; a batch
without any label gives a zero loss that is still part of the graph, never NaN. Logits are
``(B, K)`` and the loss is computed in float32 whatever their dtype.

Example:
    >>> counts = [120, 60, 20]
    >>> class_weights(counts)
    tensor([0.5556, 1.1111, 3.3333])
    >>> loss = CrossEntropyLoss(weight=class_weights(counts), label_smoothing=0.1)
    >>> loss(torch.randn(4, 3), torch.tensor([0, 2, -1, 1])).shape
    torch.Size([])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.errors import ConfigError, DataError, ShapeError
from multitask_unet.losses.base import LOSSES, check_valid, masked_ratio

__all__ = ["CrossEntropyLoss", "FocalLoss", "OneVsRestBCELoss", "class_weights", "pos_weights"]

MISSING = -1


@renamed_kwargs(method="class_weights")
def class_weights(
    counts: Sequence[int] | torch.Tensor,
    *,
    class_weights: Literal["balanced", "inverse_sqrt", "none", "inverse"] = "balanced",
) -> torch.Tensor:
    """Per-class weights from class counts, scaled so that the average sample weight is 1.

    ``balanced``: ``w_k ∝ 1 / n_k`` (scikit-learn's ``"balanced"`` weights ``N / (K n_k)``);
    ``inverse_sqrt``: ``w_k ∝ 1 / sqrt(n_k)``, a milder correction; ``none``: every weight 1.
    In every case ``sum_k n_k w_k = sum_k n_k``. The argument and its words are those of the
    case draws (``data.class_weights``, :func:`~multitask_unet.data.sampling.case_weights`) and
    of a loss term's ``class_weights``; ``"inverse"`` is the former name of ``"balanced"``.

    Args:
        counts: Number of training samples of every class, ``(K,)``; every count must be > 0.
        class_weights: ``"balanced"``, ``"inverse_sqrt"`` or ``"none"``. ``method``, its
            former name, still works with a ``FutureWarning``.

    Returns:
        float32 tensor ``(K,)``, e.g. for ``CrossEntropyLoss(weight=...)``.

    Example:
        >>> class_weights([30, 10], class_weights="inverse_sqrt")
        tensor([0.8453, 1.4641])
    """
    values = _counts(counts, "weight")
    raw = _soften(1.0 / values, "balanced" if class_weights == "inverse" else class_weights)
    return (raw * values.sum() / (raw * values).sum()).float()


def pos_weights(
    counts: Sequence[int] | torch.Tensor,
    *,
    class_weights: Literal["balanced", "inverse_sqrt", "none"] = "balanced",
) -> torch.Tensor:
    """One-vs-rest positive weights from class counts: the binary form of :func:`class_weights`.

    Problem ``k`` of a one-vs-rest head (class ``k`` against the rest) has ``n_k`` positives and
    ``N - n_k`` negatives. ``balanced``: ``pos_weight_k = (N - n_k) / n_k``, so that positives
    and negatives weigh the same in every problem; ``inverse_sqrt``: its square root, a milder
    correction; ``none``: every weight 1. For :class:`OneVsRestBCELoss` ``(pos_weight=...)``; a
    loss term ``{loss: bce_ovr, class_weights: balanced}`` computes it from the training counts.

    Args:
        counts: Number of training samples of every class, ``(K,)``, ``K >= 2``; every count
            must be > 0.
        class_weights: ``"balanced"``, ``"inverse_sqrt"`` or ``"none"``.

    Returns:
        float32 tensor ``(K,)``.

    Raises:
        ConfigError: Fewer than two classes, a class without samples, or an unknown word.

    Example:
        >>> pos_weights([10, 30, 60])
        tensor([9.0000, 2.3333, 0.6667])
        >>> pos_weights([10, 30, 60], class_weights="inverse_sqrt")
        tensor([3.0000, 1.5275, 0.8165])
    """
    values = _counts(counts, "pos_weight")
    if values.numel() < 2:
        raise ConfigError(
            f"one-vs-rest pos_weight needs the counts of at least 2 classes, got {counts!r}"
        )
    return _soften((values.sum() - values) / values, class_weights).float()


def _soften(ratio: torch.Tensor, class_weights: str) -> torch.Tensor:
    """``balanced``: ``ratio``; ``inverse_sqrt``: its square root; ``none``: ones."""
    if class_weights == "balanced":
        return ratio
    if class_weights == "inverse_sqrt":
        return ratio.sqrt()
    if class_weights == "none":
        return torch.ones_like(ratio)
    raise ConfigError(
        f"class_weights must be 'balanced', 'inverse_sqrt' or 'none', got {class_weights!r}"
    )


def _counts(counts: Sequence[int] | torch.Tensor, what: str) -> torch.Tensor:
    """``counts`` as a float64 ``(K,)`` tensor; every class needs at least one sample."""
    values = torch.as_tensor(counts, dtype=torch.float64)
    if values.ndim != 1 or values.numel() == 0:
        raise ConfigError(
            f"counts must be a non-empty 1-D list, one count per class, got {counts!r}"
        )
    empty = (values <= 0).nonzero().flatten().tolist()
    if empty:
        shown = [int(v) if float(v).is_integer() else float(v) for v in values.tolist()]
        raise ConfigError(
            f"class(es) {empty} have no sample (counts {shown}); every class needs at least "
            f"one to get a finite {what} (drop the class or pass weights yourself)"
        )
    return values


def _as_weight(weight: Sequence[float] | torch.Tensor | None, name: str) -> torch.Tensor | None:
    if weight is None:
        return None
    tensor = torch.as_tensor(weight, dtype=torch.float32)
    if tensor.ndim != 1 or bool((tensor < 0).any()) or not bool(torch.isfinite(tensor).all()):
        raise ConfigError(f"{name} must be a 1-D list of finite values >= 0, got {weight!r}")
    return tensor


def _check_weight(
    weight: torch.Tensor | None, logits: torch.Tensor, where: str
) -> torch.Tensor | None:
    if weight is not None and weight.numel() != logits.shape[1]:
        raise ShapeError(
            f"{where} has {weight.numel()} class weights but the logits have "
            f"{logits.shape[1]} classes; give one weight per class"
        )
    return None if weight is None else weight.float()


def class_targets(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``(B, K)`` logits and ``(B,)`` targets; return safe targets and the keep mask."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeError(f"{where}: logits must be (B, K), got {shape}")
    batch, num_classes = logits.shape
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (batch,):
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ShapeError(
            f"{where}: target must be ({batch},) class indices (-1 = missing) for logits "
            f"{tuple(logits.shape)}, got {shape}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ShapeError(f"{where}: target must be an integer tensor, got dtype {target.dtype}")
    target = target.long()
    if batch and bool(((target < MISSING) | (target >= num_classes)).any()):
        bad = target[(target < MISSING) | (target >= num_classes)][0].item()
        raise DataError(
            f"{where}: target holds class {bad}, but the logits have {num_classes} classes; "
            f"labels must lie in [0, {num_classes - 1}], or be -1 for a missing label"
        )
    keep = target != MISSING
    valid = check_valid(valid, batch, where)
    if valid is not None:
        keep = keep & valid
    return torch.where(keep, target, 0), keep


@LOSSES.register("ce")
class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over the labelled samples, with class weights and label smoothing.

    Equals ``torch.nn.functional.cross_entropy(logits[keep], target[keep], weight=weight,
    label_smoothing=label_smoothing)`` (a weighted mean, normalised by the weights of the targets),
    and 0 when no sample is labelled.

    Args:
        weight: Optional per-class weights ``(K,)``, e.g. from :func:`class_weights`.
        label_smoothing: Share of the target mass spread uniformly over all classes, in [0, 1).
    """

    lower_bound: float = 0.0
    weight: torch.Tensor | None

    def __init__(
        self,
        *,
        weight: Sequence[float] | torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.register_buffer("weight", _as_weight(weight, "weight"))
        self.label_smoothing = float(label_smoothing)

    def extra_repr(self) -> str:
        weight = None if self.weight is None else [round(w, 4) for w in self.weight.tolist()]
        return f"weight={weight}, label_smoothing={self.label_smoothing}"

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, *, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy.

        Args:
            logits: ``(B, K)``.
            target: ``(B,)`` class indices, ``-1`` for missing.
            valid: Optional bool ``(B,)``, combined with the ``-1`` convention.

        Returns:
            0-dim float32 tensor.
        """
        target, keep = class_targets(logits, target, valid, type(self).__name__)
        weight = _check_weight(self.weight, logits, type(self).__name__)
        per_sample = F.cross_entropy(
            logits.float(),
            target,
            weight=weight,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        norm = keep.float() if weight is None else torch.where(keep, weight[target], 0)
        return masked_ratio(torch.where(keep, per_sample, 0).sum(), norm.sum())


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al., 2017): ``-w_y (1 - p_y)**gamma log p_y``.

    Normalised like weighted cross-entropy (by the sum of target weights), so ``gamma=0`` gives
    exactly :class:`CrossEntropyLoss`.

    Args:
        gamma: Focusing parameter >= 0; larger values down-weight well-classified samples.
        weight: Optional per-class weights ``(K,)`` (the ``alpha`` of the paper).
    """

    lower_bound: float = 0.0
    weight: torch.Tensor | None

    def __init__(
        self, *, gamma: float = 2.0, weight: Sequence[float] | torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if not float(gamma) >= 0.0:
            raise ConfigError(f"gamma must be >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        self.register_buffer("weight", _as_weight(weight, "weight"))

    def extra_repr(self) -> str:
        weight = (
            "" if self.weight is None else f", weight={[round(w, 4) for w in self.weight.tolist()]}"
        )
        return f"gamma={self.gamma}{weight}"

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, *, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Focal loss; arguments as :meth:`CrossEntropyLoss.forward`."""
        target, keep = class_targets(logits, target, valid, type(self).__name__)
        weight = _check_weight(self.weight, logits, type(self).__name__)
        log_p = torch.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
        per_sample = -log_p
        if self.gamma != 0:
            per_sample = per_sample * (1 - log_p.exp()).clamp_min(0) ** self.gamma
        if weight is not None:
            per_sample = per_sample * weight[target]
        norm = keep.float() if weight is None else torch.where(keep, weight[target], 0)
        return masked_ratio(torch.where(keep, per_sample, 0).sum(), norm.sum())


@LOSSES.register("bce_ovr")
class OneVsRestBCELoss(nn.Module):
    """Binary cross-entropy for one-vs-rest heads: one sigmoid logit per class.

    The class index target becomes a one-hot ``(B, K)`` target (optionally smoothed to
    ``y (1 - s) + s / 2``); the loss is the mean over classes and labelled samples of
    ``binary_cross_entropy_with_logits``.

    Args:
        pos_weight: Optional ``(K,)`` weights of the positive term of every binary problem,
            e.g. ``negatives / positives`` per class (:func:`pos_weights`).
        label_smoothing: In [0, 1).
    """

    lower_bound: float = 0.0
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        *,
        pos_weight: Sequence[float] | torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.register_buffer("pos_weight", _as_weight(pos_weight, "pos_weight"))
        self.label_smoothing = float(label_smoothing)

    def extra_repr(self) -> str:
        pos = None if self.pos_weight is None else [round(w, 4) for w in self.pos_weight.tolist()]
        return f"pos_weight={pos}, label_smoothing={self.label_smoothing}"

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, *, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One-vs-rest BCE; arguments as :meth:`CrossEntropyLoss.forward`."""
        target, keep = class_targets(logits, target, valid, type(self).__name__)
        pos_weight = _check_weight(self.pos_weight, logits, f"{type(self).__name__}.pos_weight")
        onehot = F.one_hot(target, logits.shape[1]).float()
        if self.label_smoothing:
            onehot = onehot * (1 - self.label_smoothing) + self.label_smoothing / 2
        per_entry = F.binary_cross_entropy_with_logits(
            logits.float(), onehot, pos_weight=pos_weight, reduction="none"
        )
        per_sample = torch.where(keep, per_entry.mean(1), 0)
        return masked_ratio(per_sample.sum(), keep.float().sum())
