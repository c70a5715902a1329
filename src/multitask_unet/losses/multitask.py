"""``MultiTaskLoss``: one weighted loss per model output, with optional uncertainty weighting.

The model returns a dict of logits (``"seg"``, ``"seg_deep"``, ``"cls"``, ...); the loss maps
output keys to ``(loss, weight)`` and returns a :class:`LossOutput` with the total and every part.
The default is the study's ``L = L_seg + 0.3 * L_cls`` with nnU-Net's Dice+CE and deep
supervision for ``"seg"`` and cross-entropy for ``"cls"``.

Missing targets: a classification target of ``-1`` marks a sample without a label; a bool
``(B,)`` tensor in ``valid`` marks the samples that have a target for any key (e.g.
``valid={"seg": has_seg}``). Such samples contribute nothing to that part, and a part with no
valid sample in the batch is 0, never NaN.

Example:
    >>> import torch
    >>> loss_fn = MultiTaskLoss(warmup={"cls": Warmup(epochs=10)})
    >>> outputs = {"seg": torch.randn(2, 3, 8, 16, 16), "seg_deep": [torch.randn(2, 3, 4, 8, 8)],
    ...            "cls": torch.randn(2, 4)}
    >>> targets = {"seg": torch.randint(0, 3, (2, 1, 8, 16, 16)), "cls": torch.tensor([2, -1])}
    >>> loss_fn.set_epoch(5.0)
    >>> out = loss_fn(outputs, targets, valid={"seg": torch.tensor([True, False])})
    >>> sorted(out.parts), round(float(out.weights["cls"]), 2)
    (['cls', 'seg'], 0.15)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.losses.base import zero_loss
from multitask_unet.losses.classification import MISSING, CrossEntropyLoss
from multitask_unet.losses.deep_supervision import DeepSupervisionLoss
from multitask_unet.losses.segmentation import DiceCELoss

__all__ = ["LossOutput", "MultiTaskLoss", "Warmup"]

DEEP_SUFFIX = "_deep"


#: What each dict argument of :meth:`MultiTaskLoss.forward` looks like, for its error.
_DICT_EXAMPLES = {
    "outputs": "model(batch.image)",
    "targets": '{"seg": batch.seg, "cls": batch.label}',
    "valid": '{"seg": batch.has_seg}',
}


@dataclass(frozen=True)
class Warmup(Config):
    """Ramp of a loss weight from 0 to its full value over training.

    The factor is 0 before ``start``, rises to 1 over ``epochs`` (linearly or along a half
    cosine) and stays 1. Epochs may be fractional (``epoch + step / steps_per_epoch``).

    Attributes:
        epochs: Length of the ramp; 0 switches the weight on at ``start`` at once.
        start: Epoch at which the ramp begins.
        shape: ``"linear"`` or ``"cosine"``.

    Example:
        >>> Warmup(epochs=10, start=5).factor(10.0)
        0.5
    """

    epochs: float = 0.0
    start: float = 0.0
    shape: Literal["linear", "cosine"] = "linear"

    def __post_init__(self) -> None:
        for field in ("epochs", "start"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"Warmup.{field} must be a finite number >= 0, got {value!r}")
        if self.shape not in ("linear", "cosine"):
            raise ConfigError(f"Warmup.shape must be 'linear' or 'cosine', got {self.shape!r}")

    def factor(self, epoch: float) -> float:
        """The weight multiplier in [0, 1] at ``epoch``."""
        if epoch < self.start:
            return 0.0
        if self.epochs == 0 or epoch >= self.start + self.epochs:
            return 1.0
        t = (epoch - self.start) / self.epochs
        return t if self.shape == "linear" else 0.5 - 0.5 * math.cos(math.pi * t)


@dataclass(frozen=True)
class LossOutput:
    """What :class:`MultiTaskLoss` returns.

    Attributes:
        total: 0-dim tensor to call ``backward()`` on.
        parts: Unweighted loss of every key, detached (0 when no sample had a target).
        weights: The multiplier applied to every part at this step (static weight x warm-up,
            times ``exp(-log_var)`` with uncertainty weighting), detached.
        present: Bool 0-dim tensor per key: did any sample of the batch have a target? Average
            logged parts over the batches where it is true.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]

    def scalars(self) -> dict[str, float]:
        """Python floats for logging: ``loss``, ``loss/<key>`` and ``weight/<key>`` (syncs)."""
        out = {"loss": float(self.total.detach())}
        out.update({f"loss/{k}": float(v) for k, v in self.parts.items()})
        out.update({f"weight/{k}": float(v) for k, v in self.weights.items()})
        return out


def _any_target(target: Any, valid: torch.Tensor | None) -> torch.Tensor:
    """Bool 0-dim tensor: does any sample have a target (``valid`` and, for ``(B,)`` class
    targets, not ``-1``)? Computed on the target's device, without a host sync."""
    if target is None:
        return torch.tensor(False)
    flags = None
    if (
        isinstance(target, torch.Tensor)
        and target.ndim == 1
        and not (target.is_floating_point() or target.is_complex())
    ):
        flags = target != MISSING
    if valid is not None:
        valid = valid.to(torch.bool)
        flags = valid if flags is None else flags & valid.to(flags.device)
    return torch.tensor(True) if flags is None else flags.any()


def _zero(prediction: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    tensors = [prediction] if isinstance(prediction, torch.Tensor) else prediction
    return sum((zero_loss(t) for t in tensors[1:]), zero_loss(tensors[0]))


def _default_losses() -> dict[str, tuple[nn.Module, float]]:
    return {"seg": (DeepSupervisionLoss(DiceCELoss()), 1.0), "cls": (CrossEntropyLoss(), 0.3)}


class MultiTaskLoss(nn.Module):
    """Weighted sum of one loss per model output.

    ``total = sum_k w_k * a_k(epoch) * L_k`` with static weights ``w_k`` and warm-up factors
    ``a_k``. With ``uncertainty=True`` every key gets a learned log-variance ``s_k`` (Kendall et
    al., 2018, softmax form) and its term becomes
    ``w_k * a_k * (exp(-s_k) * (L_k - L_k_min) + s_k / 2)``, where ``L_k_min`` is the loss's
    ``lower_bound`` (nnU-Net's Dice+CE can be negative; shifting it keeps the objective bounded
    and does not change the network's gradients). ``s_k`` starts at 0; add this module's
    parameters to the optimiser and save its ``state_dict`` with the checkpoint; under DDP,
    wrap a module holding both the model and this loss (or average the log-variance gradients
    over ranks) so that the ranks keep the same weights. A batch without any target for a key
    leaves that key's log-variance unchanged.

    For a key ``k``, the output ``f"{k}_deep"`` (e.g. ``"seg_deep"``) holds deep-supervision
    logits; when present the loss of ``k`` receives ``[outputs[k], *outputs[k + "_deep"]]`` and
    must be a :class:`DeepSupervisionLoss`.

    Every output of the model needs a term: an output no term consumes is a
    :class:`~multitask_unet.errors.ConfigError` (a head without a loss would never be trained;
    give it weight 0 to leave it untrained on purpose). The default suits a model with the heads
    ``"seg"`` and a softmax ``"cls"``; for other heads (e.g. ``ovr``, trained with one-vs-rest
    BCE) name their losses, or build the Trainer's loss for a model with
    :func:`multitask_unet.training.build_loss`, which gives each head its own.

    Args:
        losses: Output key -> ``(loss, weight)`` or a bare loss (weight 1). ``None`` gives
            ``{"seg": (DeepSupervisionLoss(DiceCELoss()), 1.0), "cls": (CrossEntropyLoss(), 0.3)}``.
        uncertainty: Learn one log-variance per key (see above).
        warmup: Key -> :class:`Warmup` (or its dict) for the weights to ramp up, e.g.
            ``{"cls": Warmup(epochs=50)}``; call :meth:`set_epoch` as training advances.
    """

    def __init__(
        self,
        losses: Mapping[str, nn.Module | tuple[nn.Module, float]] | None = None,
        *,
        uncertainty: bool = False,
        warmup: Mapping[str, Warmup | Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        spec = _default_losses() if losses is None else dict(losses)
        if not spec:
            raise ConfigError("MultiTaskLoss needs at least one output key with a loss")
        modules: dict[str, nn.Module] = {}
        self.static_weights: dict[str, float] = {}
        for key, item in spec.items():
            loss, weight = item if isinstance(item, tuple) else (item, 1.0)
            if not isinstance(key, str) or not key or "." in key or key.endswith(DEEP_SUFFIX):
                raise ConfigError(
                    f"loss key {key!r} must be an output name without '.' and not ending in "
                    f"{DEEP_SUFFIX!r} (deep outputs are paired with their key automatically)"
                )
            if not isinstance(loss, nn.Module):
                raise ConfigError(f"the loss for {key!r} must be an nn.Module, got {loss!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(f"the weight for {key!r} must be a number, got {weight!r}")
            if not (math.isfinite(weight) and weight >= 0):
                raise ConfigError(f"the weight for {key!r} must be finite and >= 0, got {weight}")
            modules[key] = loss
            self.static_weights[key] = float(weight)
        self.losses = nn.ModuleDict(modules)
        self.warmup: dict[str, Warmup] = {}
        for key, ramp in (warmup or {}).items():
            if key not in modules:
                raise ConfigError(f"warmup names {key!r}, which has no loss; keys: {list(modules)}")
            self.warmup[key] = ramp if isinstance(ramp, Warmup) else Warmup.from_dict(ramp)
        self.uncertainty = bool(uncertainty)
        self.log_vars = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(())) for k in modules} if self.uncertainty else {}
        )
        self._epoch = 0.0

    # -- schedule -------------------------------------------------------------------------------
    @property
    def epoch(self) -> float:
        """The training progress the warm-up factors are computed at."""
        return self._epoch

    def set_epoch(self, epoch: float) -> None:
        """Set the training progress (epochs, may be fractional) used by the warm-ups."""
        if not math.isfinite(float(epoch)) or float(epoch) < 0:
            raise ConfigError(f"epoch must be a finite number >= 0, got {epoch!r}")
        self._epoch = float(epoch)

    def weight(self, key: str) -> float:
        """Static weight of ``key`` times its warm-up factor at the current epoch."""
        if key not in self.static_weights:
            raise ConfigError(f"no loss for {key!r}; keys: {list(self.static_weights)}")
        ramp = self.warmup.get(key)
        return self.static_weights[key] * (1.0 if ramp is None else ramp.factor(self._epoch))

    def get_extra_state(self) -> dict[str, float]:
        return {"epoch": self._epoch}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.set_epoch(state.get("epoch", 0.0))

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={w}" for k, w in self.static_weights.items())
        return f"weights=({weights}), uncertainty={self.uncertainty}, warmup={self.warmup or None}"

    # -- loss -----------------------------------------------------------------------------------
    def forward(
        self,
        outputs: Mapping[str, Any],
        targets: Mapping[str, torch.Tensor | None],
        *,
        valid: Mapping[str, torch.Tensor] | None = None,
    ) -> LossOutput:
        """Compute every part and the weighted total.

        Args:
            outputs: The model's output dict, e.g. ``{"seg": (B, C, D, H, W), "seg_deep": [...],
                "cls": (B, K)}``.
            targets: Key -> target: ``"seg"`` ``(B, 1, D, H, W)`` or ``(B, D, H, W)`` labels,
                ``"cls"`` ``(B,)`` class indices with ``-1`` for missing; ``None`` when no
                sample of the batch has that target (the part is then 0).
            valid: Optional key -> bool ``(B,)``: which samples have a target for that key.

        Returns:
            A :class:`LossOutput`.
        """
        valid = {} if valid is None else valid
        for name, given in (("outputs", outputs), ("targets", targets), ("valid", valid)):
            if not isinstance(given, Mapping):
                raise ConfigError(
                    f"{name} must be a dict keyed like the losses {list(self.losses)}, got "
                    f"{type(given).__name__}; pass e.g. {name}={_DICT_EXAMPLES[name]}"
                )
        self._check_consumed(outputs)
        valid = dict(valid)
        unknown = sorted(set(valid) - set(self.losses))
        if unknown:
            raise ConfigError(
                f"valid names {unknown}, which have no loss; keys: {list(self.losses)}"
            )
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        for key, loss in self.losses.items():
            prediction = self._prediction(outputs, key, loss)
            if key not in targets:
                raise ConfigError(
                    f"targets has no {key!r} (it has {sorted(targets)}); pass a target for every "
                    f"loss key and mark samples without one as missing (-1 or valid=...)"
                )
            if targets[key] is None:  # no sample of the batch has this target
                value = _zero(prediction)
            else:
                extra = {"valid": valid[key]} if key in valid else {}
                value = loss(prediction, targets[key], **extra)
            if not isinstance(value, torch.Tensor) or value.ndim != 0:
                raise ShapeError(f"the loss for {key!r} must return a 0-dim tensor, got {value!r}")
            weight = self.weight(key)
            present[key] = _any_target(targets[key], valid.get(key))
            if self.uncertainty:
                log_var = self.log_vars[key]
                bound = float(getattr(loss, "lower_bound", 0.0))
                term = weight * (torch.exp(-log_var) * (value - bound) + 0.5 * log_var)
                # A batch without any target for this key must not move its log-variance.
                term = torch.where(present[key].to(term.device), term, term * 0)
                weights[key] = (weight * torch.exp(-log_var)).detach()
            else:
                term = weight * value
                weights[key] = torch.tensor(weight)
            parts[key] = value.detach()
            total = term if total is None else total + term
        assert total is not None  # at least one key, checked in __init__
        return LossOutput(total=total, parts=parts, weights=weights, present=present)

    def _check_consumed(self, outputs: Mapping[str, Any]) -> None:
        """Raise if an output has no loss term: its head would silently stay untrained."""
        unused = [
            key
            for key in outputs
            if key not in self.losses
            and not (key.endswith(DEEP_SUFFIX) and key[: -len(DEEP_SUFFIX)] in self.losses)
        ]
        if unused:
            raise ConfigError(
                f"the model outputs {unused} have no loss term (the loss has {list(self.losses)}),"
                f" so those heads would never be trained; give each a term, e.g. "
                f"MultiTaskLoss({{..., {unused[0]!r}: (OneVsRestBCELoss(), 0.3)}}) for an 'ovr' "
                f"head or CrossEntropyLoss() for a softmax head (weight 0 leaves it untrained on "
                f"purpose), or build the Trainer's loss with "
                f"multitask_unet.training.build_loss(config, model)"
            )

    def _prediction(self, outputs: Mapping[str, Any], key: str, loss: nn.Module) -> Any:
        if key not in outputs:
            raise ConfigError(
                f"the model outputs have no {key!r} (they have {sorted(outputs)}); give the loss "
                f"the head names of the model"
            )
        deep = outputs.get(key + DEEP_SUFFIX)
        if deep is None:
            return outputs[key]
        if not isinstance(loss, DeepSupervisionLoss):
            raise ConfigError(
                f"the outputs hold {key + DEEP_SUFFIX!r} but the loss for {key!r} is "
                f"{type(loss).__name__}; wrap it in DeepSupervisionLoss or turn off deep supervision"
            )
        return [outputs[key], *deep]
