"""The one config that builds a :class:`~multitask_unet.models.MultiTaskUNet`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multitask_unet.config import Config
from multitask_unet.decoders import DecoderConfig, UNetDecoderConfig
from multitask_unet.encoders import EncoderConfig
from multitask_unet.errors import ConfigError
from multitask_unet.heads import HeadConfig

__all__ = ["RESERVED_OUTPUT_KEYS", "ModelConfig", "as_component_config", "heads_from_spec"]

RESERVED_OUTPUT_KEYS = frozenset({"seg", "seg_deep"})


@dataclass(frozen=True)
class ModelConfig(Config):
    """Everything needed to build a model; round-trips to dict, JSON and YAML.

    ``encoder``, ``decoder`` and each head may also be given as :func:`create_model` takes them:
    a registered name, a ``(name, options)`` pair or a dict with ``"name"``; they are stored as
    config objects.

    Attributes:
        encoder: Encoder config (``{"name": "plain" | "residual" | "timm3d", ...}``).
        decoder: Decoder config (default: nnU-Net's U-Net decoder).
        heads: Classification heads by output key, e.g. ``{"cls": PandaHeadConfig(...)}`` or
            ``{"cls": ("panda", {"num_classes": 3})}``.
        in_channels: Image channels (CT: 1).
        num_classes: Segmentation classes including background (pancreas study: 3).
        deep_supervision: Return ``"seg_deep"`` logits in training mode.
        spatial_dims: 3 for volumes (2 works for slices).
    """

    encoder: EncoderConfig
    decoder: DecoderConfig = field(default_factory=UNetDecoderConfig)
    heads: dict[str, HeadConfig] = field(default_factory=dict)
    in_channels: int = 1
    num_classes: int = 3
    deep_supervision: bool = True
    spatial_dims: int = 3

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.num_classes < 2:
            raise ConfigError(
                f"num_classes counts background too and must be >= 2, got {self.num_classes}"
            )
        if self.spatial_dims not in (1, 2, 3):
            raise ConfigError(f"spatial_dims must be 1, 2 or 3, got {self.spatial_dims}")
        for key in self.heads if isinstance(self.heads, Mapping) else ():
            if key in RESERVED_OUTPUT_KEYS or not key.isidentifier():
                raise ConfigError(
                    f"head name {key!r} is not allowed: use a Python identifier other than "
                    f"{sorted(RESERVED_OUTPUT_KEYS)}, e.g. 'cls'"
                )
        encoder = as_component_config(self.encoder, EncoderConfig, "encoder")
        object.__setattr__(self, "encoder", encoder)
        decoder = as_component_config(self.decoder, DecoderConfig, "decoder")
        object.__setattr__(self, "decoder", decoder)
        object.__setattr__(self, "heads", heads_from_spec(self.heads))

    @property
    def size_divisor(self) -> tuple[int, ...]:
        """Per-axis factor every input size must be a multiple of, without building the model.

        The same as :attr:`MultiTaskUNet.size_divisor <multitask_unet.models.MultiTaskUNet.size_divisor>`
        of the model this config builds: the stride of the encoder's deepest level.

        Example:
            >>> from multitask_unet.models.presets import PRESETS
            >>> PRESETS.get("tiny_plain")().size_divisor
            (4, 4, 4)
        """
        return self.encoder.size_divisor(self.spatial_dims)


def as_component_config(value: Any, base: type[Config], what: str) -> Config:
    """Accept a config object, a dict with ``"name"``, a ``(name, options)`` pair or a name."""
    if isinstance(value, base):
        return value
    if isinstance(value, str):
        return base.from_dict({"name": value})
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return base.from_dict({"name": value[0], **dict(value[1] or {})})
    if isinstance(value, Mapping):
        return base.from_dict(value)
    raise ConfigError(
        f"{what} must be a {base.__name__}, a name, a (name, options) pair or a dict; got {value!r}. "
        f"Registered: {', '.join(base.family.list()) if base.family else '-'}"
    )


def heads_from_spec(heads: Mapping[str, Any]) -> dict[str, HeadConfig]:
    """Normalise ``{"cls": ("panda", {"num_classes": 3})}`` and friends to head configs."""
    if not isinstance(heads, Mapping):
        raise ConfigError(f"heads must map output names to head specs, got {heads!r}")
    return {k: as_component_config(v, HeadConfig, f"head {k!r}") for k, v in heads.items()}  # type: ignore[misc]
