"""Which network a training config trains: a preset with overrides, or any ``ModelConfig``.

The short form names a preset and one classification head (output ``"cls"``); the long form
replaces the preset's encoder and decoder and lists any number of heads with their options.
``in_channels`` and the segmentation classes always come from the dataset, and so does every
head's ``num_classes`` that is not given. :meth:`ModelSpec.from_model_config` writes the long
form of a network built with ``create_model``.

Example:
    >>> ModelSpec.from_dict({"preset": "tiny_plain", "head": "ovr"}).heads is None
    True
    >>> spec = ModelSpec.from_dict({"preset": "tiny_plain",
    ...                             "heads": {"cls": {"name": "panda", "hidden": 8}, "aux": "ovr"}})
    >>> spec.head, sorted(spec.heads)
    (None, ['aux', 'cls'])
    >>> ModelSpec.from_dict({"head": "panda", "heads": {"cls": "ovr"}})
    Traceback (most recent call last):
    ...
    multitask_unet.errors.ConfigError: model: give either 'head' (one head, output 'cls') or 'heads' (any number), not both; set head: null to use heads
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multitask_unet.config import Config
from multitask_unet.decoders import DecoderConfig
from multitask_unet.encoders import EncoderConfig
from multitask_unet.errors import ConfigError, RegistryError
from multitask_unet.heads import HeadConfig
from multitask_unet.models import PRESETS, ModelConfig
from multitask_unet.models.config import RESERVED_OUTPUT_KEYS, as_component_config

__all__ = ["ModelSpec"]

ComponentSpec = str | dict[str, Any]


class _DefaultHead(str):
    """The default of ``ModelSpec.head``: ``"panda"``, or None when ``heads`` is given."""


_PANDA = _DefaultHead("panda")
_CHECK_CLASSES = 2  # a stand-in num_classes, to validate head options before the data is known


@dataclass(frozen=True)
class ModelSpec(Config):
    """The network to train: a preset with overrides, sized for the dataset when built.

    Attributes:
        preset: A name from ``multitask-unet models`` (``create_model``'s presets); None builds
            the network from ``encoder`` (required then) and ``decoder`` alone.
        encoder: Replace the preset's encoder: a dict with ``name`` and options (e.g.
            ``{"name": "timm3d", "model_name": "resnet18", "out_indices": [0, 1, 2, 3]}``), or
            a bare name (``"plain"``, ``"residual"``), which keeps the preset's stage layout.
            None keeps the preset's.
        decoder: Replace the preset's decoder, in the same forms (``{"name": "unet", ...}``).
        head: Short form: the classification head of output ``"cls"`` (``"panda"``,
            ``"ovr"``, ``"attention"``, ...); None trains segmentation only. Defaults to
            ``"panda"``, or to None when ``heads`` is given.
        head_options: Options of ``head``, e.g. ``{"hidden": 64, "dropout": 0.1}``.
        heads: Long form: output name -> head, a registered name or a dict with ``name`` and
            options, e.g. ``{"cls": {"name": "panda", "hidden": 64}, "cls_ovr": "ovr"}``. A
            head's ``num_classes`` is the dataset's number of classes unless given. Excludes
            ``head``.
        deep_supervision: Deep-supervision outputs and loss (nnU-Net: on).
        init_weights: A weights file to start a new run from: a checkpoint of this library, an
            nnU-Net ``checkpoint_final.pth``, a ``state_dict``, or a timm-3d checkpoint of a
            ``timm3d`` encoder (:func:`~multitask_unet.training.init_weights.initialise_from`);
            the heads may be new. None: random initialisation.
    """

    preset: str | None = "small_residual"
    encoder: ComponentSpec | None = None
    decoder: ComponentSpec | None = None
    head: str | None = _PANDA
    head_options: dict[str, Any] = field(default_factory=dict)
    heads: dict[str, ComponentSpec] | None = None
    deep_supervision: bool = True
    init_weights: str | None = None

    def __post_init__(self) -> None:
        if self.heads is not None:
            if self.head is not None and self.head is not _PANDA:
                raise ConfigError(
                    "model: give either 'head' (one head, output 'cls') or 'heads' (any number), "
                    "not both; set head: null to use heads"
                )
            if self.head_options:
                raise ConfigError(
                    "model.head_options belong to 'head'; with 'heads' give each head's options "
                    "in its dict, e.g. heads: {cls: {name: panda, hidden: 64}}"
                )
            heads = {str(k): _head_spec(k, v) for k, v in self.heads.items()}
            object.__setattr__(self, "heads", heads)
        if self.head is _PANDA:  # the default: plain "panda", or no short-form head with heads
            object.__setattr__(self, "head", None if self.heads is not None else "panda")
        elif self.head is not None:
            _check_head("model.head", {"name": self.head, **self.head_options})
        if self.preset is None:
            if self.encoder is None or isinstance(self.encoder, str):
                raise ConfigError(
                    "model.preset: null builds the network from model.encoder, which must then "
                    "be a full encoder config (a dict with 'name' and options)"
                )
        elif self.preset not in PRESETS:
            raise ConfigError(
                f"model.preset: {RegistryError(PRESETS._unknown_message(self.preset))}"
            )
        for key, base in (("encoder", EncoderConfig), ("decoder", DecoderConfig)):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, _component_spec(f"model.{key}", value, base))

    @classmethod
    def from_model_config(cls, config: ModelConfig, *, head_classes: bool = False) -> ModelSpec:
        """The long form that builds ``config``'s network (e.g. ``create_model(...).config``).

        ``in_channels`` and the segmentation classes come from the dataset when training, and
        so do the heads' ``num_classes`` unless ``head_classes`` keeps them.

        Example:
            >>> from multitask_unet import create_model
            >>> model = create_model("tiny_plain", heads={"cls": ("ovr", {"num_classes": 3})})
            >>> spec = ModelSpec.from_model_config(model.config)
            >>> spec.preset, spec.encoder["name"], spec.heads["cls"]["name"]
            (None, 'plain', 'ovr')
        """
        if config.spatial_dims != 3:
            raise ConfigError(f"training is 3D; this model has spatial_dims={config.spatial_dims}")
        heads = {}
        for key, head in config.heads.items():
            options = head.to_dict()
            if not head_classes:
                options.pop("num_classes", None)
            heads[key] = options
        return cls(
            preset=None,
            encoder=config.encoder.to_dict(),
            decoder=config.decoder.to_dict(),
            head=None,
            heads=heads,
            deep_supervision=config.deep_supervision,
        )


def _component_spec(where: str, value: Any, base: type[Config]) -> ComponentSpec:
    """A name or a plain dict with ``name``; a full dict is checked (a name may inherit)."""
    if isinstance(value, str):
        if base.family is not None and value not in base.family:
            raise ConfigError(f"{where}: {RegistryError(base.family._unknown_message(value))}")
        return value
    try:
        config = as_component_config(value, base, where)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if isinstance(value, Mapping) and not isinstance(value, Config):
        return dict(value)  # as written, so that the YAML round-trips as written
    return config.to_dict()


def _head_spec(key: Any, value: Any) -> ComponentSpec:
    """One entry of ``heads`` as a name or a plain dict, checked with a stand-in class count."""
    where = f"model.heads[{key!r}]"
    if not isinstance(key, str) or not key.isidentifier() or key in RESERVED_OUTPUT_KEYS:
        raise ConfigError(
            f"{where}: output names must be Python identifiers other than "
            f"{sorted(RESERVED_OUTPUT_KEYS)}, e.g. 'cls'"
        )
    if isinstance(value, HeadConfig):
        value = value.to_dict()
    elif isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        value = {"name": value[0], **dict(value[1] or {})}
    if isinstance(value, str):
        _check_head(where, {"name": value})
        return value
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ConfigError(
            f"{where} must be a head name or a dict with 'name' and options, got {value!r}"
        )
    _check_head(where, value)
    return dict(value)


def _check_head(where: str, options: Mapping[str, Any]) -> None:
    try:
        HeadConfig.from_dict({"num_classes": _CHECK_CLASSES, **options})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
