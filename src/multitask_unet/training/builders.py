"""Build the model config and the loss a :class:`TrainConfig` describes, sized for the data.

Example:
    >>> from multitask_unet.training.config import ModelSpec
    >>> config = build_model_config(ModelSpec(preset="tiny_plain", head="ovr"), in_channels=1,
    ...                             seg_classes=3, case_classes=3)
    >>> config.heads["cls"].name, config.heads["cls"].num_classes
    ('ovr', 3)
    >>> spec = ModelSpec(preset="tiny_plain", encoder="residual",
    ...                  heads={"cls": "panda", "binary": {"name": "ovr", "num_classes": 2}})
    >>> config = build_model_config(spec, in_channels=1, seg_classes=3, case_classes=3)
    >>> config.encoder.name, config.encoder.channels, config.heads["binary"].num_classes
    ('residual', (8, 16, 32), 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from multitask_unet.config import Config
from multitask_unet.decoders import DecoderConfig
from multitask_unet.encoders import EncoderConfig
from multitask_unet.errors import ConfigError
from multitask_unet.losses import LossTermConfig, MultiTaskLoss, MultiTaskLossConfig
from multitask_unet.models import ModelConfig, MultiTaskUNet, resolve_config
from multitask_unet.models.config import as_component_config
from multitask_unet.training.config import ModelSpec, TrainConfig

__all__ = ["build_loss", "build_model_config"]


def build_model_config(
    spec: ModelSpec, *, in_channels: int, seg_classes: int, case_classes: int
) -> ModelConfig:
    """The model a :class:`ModelSpec` names, sized for the data.

    Args:
        spec: Preset, encoder, decoder, heads.
        in_channels: Image channels.
        seg_classes: Segmentation outputs, background included (largest label + 1).
        case_classes: Case-level classes: every head's ``num_classes`` unless the spec gives
            it; such heads are left out when there are fewer than 2.
    """
    if spec.preset is None:
        assert isinstance(spec.encoder, Mapping)  # ModelSpec checks it
        base = ModelConfig(encoder=_component(spec.encoder, None, EncoderConfig, "encoder"))  # type: ignore[arg-type]
    else:
        base = resolve_config(spec.preset)
    overrides: dict[str, Any] = {
        "in_channels": in_channels,
        "num_classes": seg_classes,
        "deep_supervision": spec.deep_supervision,
        "heads": _heads(spec, case_classes),
    }
    if spec.encoder is not None:
        overrides["encoder"] = _component(spec.encoder, base.encoder, EncoderConfig, "encoder")
    if spec.decoder is not None:
        overrides["decoder"] = _component(spec.decoder, base.decoder, DecoderConfig, "decoder")
    return resolve_config(base, **overrides)


def _heads(spec: ModelSpec, case_classes: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """The heads with their options; ``num_classes`` is the dataset's unless given."""
    if spec.heads is None:
        given = {} if spec.head is None else {"cls": {"name": spec.head, **spec.head_options}}
    else:
        given = {k: {"name": v} if isinstance(v, str) else dict(v) for k, v in spec.heads.items()}
    heads = {}
    for key, options in given.items():
        name = options.pop("name")
        if "num_classes" not in options:
            if case_classes < 2:
                continue  # no classes to learn from
            options["num_classes"] = case_classes
        heads[key] = (name, options)
    return heads


def _component(value: Any, preset: Config | None, base: type[Config], what: str) -> Config:
    """A dict is a whole config; a bare name keeps the options of the preset's it shares."""
    if isinstance(value, str) and preset is not None:
        if value == preset.name:
            return preset
        assert base.family is not None
        target = base.family.get(value)
        shared = {f.name for f in dataclasses.fields(target)} & set(preset.to_dict())  # type: ignore[arg-type]
        value = {"name": value, **{k: v for k, v in preset.to_dict().items() if k in shared}}
    try:
        return as_component_config(value, base, f"model.{what}")
    except ConfigError as exc:
        raise ConfigError(f"model.{what}: {exc}") from None


#: The loss family of every built-in loss name; a head's ``loss_kind`` is one of these.
_FAMILY = {"ce": "ce", "focal": "ce", "bce_ovr": "bce_ovr", "dice_ce": "seg", "dice": "seg"}


def build_loss(
    config: TrainConfig, model: MultiTaskUNet, *, class_counts: Sequence[int] = ()
) -> MultiTaskLoss:
    """The loss the :class:`~multitask_unet.training.Trainer` trains ``model`` with.

    ``config.optimization.loss`` when given, else the default: nnU-Net's Dice+CE on ``seg``
    (with deep supervision when the model has it) + 0.3 x each head's own loss, from its
    ``loss_kind``: cross-entropy, or one-vs-rest BCE for an ``ovr`` head. Call it in a custom
    training loop to train with the same loss as the Trainer.

    Args:
        config: The training config (``TrainConfig()`` for the defaults).
        model: The model to train; its heads decide the default terms.
        class_counts: Training cases per class, for terms with ``class_weights``.

    Raises:
        ConfigError: ``optimization.loss`` leaves an output of the model without a term (its
            head would never be trained), names an output the model does not have, or gives a
            head a loss of another kind than its ``loss_kind`` (e.g. ``ce`` for an ``ovr`` head).

    Example:
        >>> from multitask_unet.models import create_model
        >>> from multitask_unet.training import TrainConfig
        >>> heads = {"cls": ("ovr", {"num_classes": 3})}  # a one-vs-rest head named "cls"
        >>> model = create_model("tiny_plain", num_classes=3, heads=heads)
        >>> loss_fn = build_loss(TrainConfig(), model)
        >>> type(loss_fn.losses["cls"]).__name__, loss_fn.weight("cls")
        ('OneVsRestBCELoss', 0.3)
    """
    loss_config = config.optimization.loss
    if loss_config is None:
        deep = bool(model.config.deep_supervision)
        terms = {"seg": LossTermConfig("dice_ce", 1.0, deep_supervision=deep)}
        for key, head in model.heads.items():
            terms[key] = LossTermConfig(getattr(head, "loss_kind", "ce"), 0.3)
        loss_config = MultiTaskLossConfig(terms=terms)
    else:
        _check_terms(loss_config.terms, model)
    counts = {k: list(class_counts) for k in model.heads} if class_counts else None
    return loss_config.build(class_counts=counts)


def _check_terms(terms: Mapping[str, LossTermConfig], model: MultiTaskUNet) -> None:
    """Every output of ``model`` has a term of its kind, and every term an output."""
    kinds = {"seg": "seg"} | {k: getattr(h, "loss_kind", None) for k, h in model.heads.items()}
    missing = [k for k in kinds if k not in terms]
    if missing:
        key = missing[0]
        loss, weight = ("dice_ce", 1.0) if key == "seg" else (kinds[key] or "ce", 0.3)
        raise ConfigError(
            f"optimization.loss.terms has no term for the model output(s) {missing} (terms: "
            f"{list(terms)}), so they would never be trained; add e.g. "
            f"'{key}: {{loss: {loss}, weight: {weight}}}' (weight 0 leaves it untrained on "
            f"purpose), or remove optimization.loss for the default terms"
        )
    unknown = [k for k in terms if k not in kinds]
    if unknown:
        raise ConfigError(
            f"optimization.loss.terms names {unknown}, which the model does not output (its "
            f"outputs: {list(kinds)}); remove those terms or add the heads to model.heads (a head "
            f"without num_classes is left out when the data has fewer than 2 classes)"
        )
    for key, term in terms.items():
        family = _FAMILY.get(term.loss)
        if kinds[key] in _FAMILY.values() and family is not None and family != kinds[key]:
            fits = [name for name, kind in _FAMILY.items() if kind == kinds[key]]
            raise ConfigError(
                f"optimization.loss.terms.{key} uses {term.loss!r}, but the output {key!r} "
                f"needs a {kinds[key]!r} loss ({', '.join(fits)}); set terms.{key}.loss to "
                f"one of them"
            )
