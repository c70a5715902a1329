"""``create_model`` and ``list_models``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multitask_unet.errors import ConfigError
from multitask_unet.models.config import ModelConfig
from multitask_unet.models.presets import PRESETS
from multitask_unet.models.unet import MultiTaskUNet

__all__ = ["create_model", "list_models", "resolve_config"]


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the model presets, optionally filtered by a shell pattern such as ``"tiny*"``."""
    return PRESETS.list(pattern)


def resolve_config(
    name_or_config: str | ModelConfig | Mapping[str, Any], **overrides: Any
) -> ModelConfig:
    """The :class:`ModelConfig` that :func:`create_model` would build."""
    if isinstance(name_or_config, str):
        config = PRESETS.get(name_or_config)()
    elif isinstance(name_or_config, ModelConfig):
        config = name_or_config
    elif isinstance(name_or_config, Mapping):
        config = ModelConfig.from_dict(name_or_config)
    else:
        raise ConfigError(
            f"create_model takes a preset name, a ModelConfig or a dict, got {name_or_config!r}"
        )
    if not overrides:
        return config
    changes = dict(overrides)  # component specs become configs in ModelConfig
    unknown = set(changes) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"unknown create_model option(s) {sorted(unknown)}; "
            f"valid: {sorted(ModelConfig.__dataclass_fields__)}"
        )
    fields = {k: getattr(config, k) for k in ModelConfig.__dataclass_fields__}
    return ModelConfig(**{**fields, **changes})


def create_model(
    name_or_config: str | ModelConfig | Mapping[str, Any], **overrides: Any
) -> MultiTaskUNet:
    """Build a model from a preset name, a config or a config dict, with optional overrides.

    Args:
        name_or_config: A preset from :func:`list_models`, a :class:`ModelConfig` or its dict.
        **overrides: Any :class:`ModelConfig` field. ``heads`` maps output names to a head
            config or a ``(registered_name, options)`` pair; ``encoder`` / ``decoder`` take a
            config, a dict with ``"name"`` or a ``(name, options)`` pair.

    Example:
        >>> model = create_model("tiny_residual", in_channels=2, num_classes=4)
        >>> model.size_divisor
        (4, 4, 4)
    """
    return MultiTaskUNet(resolve_config(name_or_config, **overrides))
