"""Any `timm-3d <https://github.com/ZFTurbo/timm_3d>`_ backbone as an encoder.

The backbone is created with ``features_only=True`` and never with pretrained weights: this
library does not download anything. Weights come from a local file through ``checkpoint_path``
(a state dict of the timm-3d classification model, of its ``features_only`` version, or of this
encoder or a whole :class:`~multitask_unet.models.MultiTaskUNet`), read by
:func:`~multitask_unet.interop.timm3d_weights.load_timm3d_checkpoint`.

timm-3d backbones reduce every axis alike, and their first level is already strided (2 for
ResNets, EfficientNets and DenseNets, 4 for ConvNeXts); the U-Net decoder adds skip-less stages
so that the model still returns logits at the input resolution.

Example:
    >>> cfg = Timm3dEncoderConfig(model_name="tinynet_e", out_indices=(0, 1, 2))
    >>> enc = cfg.build(1)
    >>> [(f.channels, f.stride) for f in enc.feature_info]
    [(8, (2, 2, 2)), (16, (4, 4, 4)), (24, (8, 8, 8))]
    >>> [tuple(f.shape) for f in enc(torch.zeros(1, 1, 16, 16, 32))]
    [(1, 8, 8, 8, 16), (1, 16, 4, 4, 8), (1, 24, 2, 2, 4)]
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from multitask_unet.encoders.base import Encoder, EncoderConfig, per_axis
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.features import FeatureInfo
from multitask_unet.interop.timm3d_weights import load_timm3d_checkpoint as _load_checkpoint

__all__ = ["Timm3dEncoder", "Timm3dEncoderConfig"]

_log = logging.getLogger(__name__)

_NO_DOWNLOAD = (
    "multitask_unet never downloads weights. Fetch the checkpoint yourself and pass its local "
    "path as checkpoint_path='/path/to/weights.pth' (a state dict of the timm-3d model, of its "
    "features_only version or of this encoder)."
)
# Options the encoder sets itself; passing them through ``model_kwargs`` would bypass it.
_RESERVED_KWARGS = {
    "pretrained": _NO_DOWNLOAD,
    "pretrained_cfg": _NO_DOWNLOAD,
    "pretrained_cfg_overlay": _NO_DOWNLOAD,
    "checkpoint_path": "use the checkpoint_path option of Timm3dEncoderConfig",
    "features_only": "the encoder always builds features_only=True backbones",
    "in_chans": "the model's in_channels sets it",
    "out_indices": "use the out_indices option of Timm3dEncoderConfig",
}


def _timm3d() -> ModuleType:
    """Import timm-3d lazily (it takes seconds and imports timm and torchvision)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecations inside timm
            import timm_3d
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            f"the 'timm3d' encoder needs the timm-3d package ({exc}); pip install timm-3d"
        ) from exc
    return timm_3d


@dataclass(frozen=True)
class Timm3dEncoderConfig(EncoderConfig):
    """Config of :class:`Timm3dEncoder`.

    Attributes:
        model_name: A timm-3d architecture, e.g. ``"resnet18"``, ``"efficientnet_b0"``,
            ``"convnext_tiny"`` or ``"densenet121"`` (``timm_3d.list_models()`` lists them).
        out_indices: Feature levels to return, increasing; ``None`` returns all of them
            (5 levels at strides 2..32 for most models, 4 at 4..32 for ConvNeXt). Blocks after
            the deepest requested level are removed, so every parameter is used.
        checkpoint_path: Local file with weights to load after building (``.pth``, ``.pt``,
            ``.bin`` or ``.safetensors``); the input channels must match the checkpoint's.
        pretrained: Must stay ``False``: weights are never downloaded (use ``checkpoint_path``).
        model_kwargs: Extra keyword arguments of ``timm_3d.create_model``, JSON values only,
            e.g. ``{"drop_path_rate": 0.1}``.

    Example:
        >>> Timm3dEncoderConfig.from_dict({"model_name": "resnet18", "out_indices": [1, 2, 3]})
        Timm3dEncoderConfig(model_name='resnet18', out_indices=(1, 2, 3), checkpoint_path=None, pretrained=False, model_kwargs={})
    """

    name: ClassVar[str] = "timm3d"
    model_name: str = "resnet18"
    out_indices: tuple[int, ...] | None = None
    checkpoint_path: str | None = None
    pretrained: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pretrained:
            raise ConfigError(
                f"Timm3dEncoderConfig(pretrained=True) is not supported: {_NO_DOWNLOAD}"
            )
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ConfigError(f"model_name must be a timm-3d model name, got {self.model_name!r}")
        timm_3d = _timm3d()
        if not timm_3d.is_model(self.model_name):
            close = difflib.get_close_matches(self.model_name, timm_3d.list_models(), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(
                f"{self.model_name!r} is not a timm-3d model.{hint} "
                "timm_3d.list_models('pattern*') lists them."
            )
        if self.out_indices is not None:
            oi = tuple(self.out_indices)
            if (
                not oi
                or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in oi)
                or any(a >= b for a, b in itertools.pairwise(oi))
            ):
                raise ConfigError(
                    f"out_indices must be non-negative ints in increasing order (fine to coarse), "
                    f"e.g. (0, 1, 2, 3, 4), or None for all levels; got {self.out_indices!r}"
                )
            object.__setattr__(self, "out_indices", oi)
        if self.checkpoint_path is not None and not isinstance(self.checkpoint_path, str):
            object.__setattr__(self, "checkpoint_path", os.fspath(self.checkpoint_path))
        self._check_model_kwargs()

    def _check_model_kwargs(self) -> None:
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        kwargs = dict(self.model_kwargs)
        for key in kwargs:
            if key in _RESERVED_KWARGS:
                raise ConfigError(f"model_kwargs may not set {key!r}: {_RESERVED_KWARGS[key]}")
        try:
            json.dumps(kwargs, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model_kwargs must hold JSON values (str, number, bool, list, dict) so that the "
                f"config can be saved; got {kwargs!r} ({exc})"
            ) from None
        object.__setattr__(self, "model_kwargs", kwargs)  # a private copy

    @property
    def num_levels(self) -> int:
        if self.out_indices is not None:
            return len(self.out_indices)
        return len(self.feature_info())

    def feature_info(self, spatial_dims: int = 3) -> tuple[FeatureInfo, ...]:
        """Channels and strides of the levels, read from a weightless copy of the backbone."""
        _check_dims(spatial_dims)
        kwargs = json.dumps(self.model_kwargs, sort_keys=True)
        return _probe_feature_info(self.model_name, self.out_indices, kwargs)

    def build(self, in_channels: int, *, spatial_dims: int = 3) -> Timm3dEncoder:
        return Timm3dEncoder(self, in_channels, spatial_dims=spatial_dims)


class Timm3dEncoder(Encoder):
    """A timm-3d ``features_only`` backbone behind the encoder contract.

    Args:
        config: The encoder config.
        in_channels: Input channels ``C_in`` (any number; timm-3d adapts the stem).
        spatial_dims: Must be 3 (timm-3d models are 3D only).

    The backbone is the submodule ``backbone``; its ``forward`` maps ``(B, C_in, D, H, W)`` to
    one ``(B, C_i, D / s_i, H / s_i, W / s_i)`` map per level, fine to coarse. Sizes must be
    multiples of :attr:`size_divisor` (the deepest stride); in training, BatchNorm backbones
    also need more than one value per channel at the deepest level (e.g. ``B >= 2`` or a
    deepest map larger than ``1 x 1 x 1``).

    Example:
        >>> enc = Timm3dEncoderConfig(model_name="convnext_atto").build(2)
        >>> enc.size_divisor, [f.stride[0] for f in enc.feature_info]
        ((32, 32, 32), [4, 8, 16, 32])
    """

    def __init__(
        self, config: Timm3dEncoderConfig, in_channels: int, *, spatial_dims: int = 3
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels must be a positive int, got {in_channels!r}")
        self.spatial_dims = spatial_dims
        self.model_name = config.model_name
        self.backbone = _create_backbone(
            config.model_name, config.out_indices, config.model_kwargs, in_chans=in_channels
        )
        _drop_unused_blocks(self.backbone)
        self.feature_info = _feature_info_of(self.backbone)
        if config.checkpoint_path is not None:
            unused = _load_checkpoint(self.backbone, config.checkpoint_path)
            if unused:
                _log.info(
                    "%s: %d tensors of %s are not part of the backbone (e.g. %s)",
                    config.model_name,
                    len(unused),
                    config.checkpoint_path,
                    ", ".join(unused[:3]),
                )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C_in, D, H, W)`` to the feature maps of
        :attr:`~.base.Encoder.feature_info`, fine to coarse."""
        if x.ndim != 5:
            raise ShapeError(
                f"timm-3d encoders take (B, C, D, H, W) tensors, got shape {tuple(x.shape)}"
            )
        try:
            features = list(self.backbone(x))
        except ValueError as exc:
            if "more than 1 value per channel" not in str(exc):
                raise
            size, div = tuple(x.shape[2:]), self.size_divisor
            bigger = (*size[:-1], max(size[-1], 2 * div[-1]))
            raise ShapeError(
                f"{self.model_name!r} uses BatchNorm, which in training needs more than one value "
                f"per channel, but input {tuple(x.shape)} leaves a single voxel per map at the "
                f"deepest level (stride {div}). Train with batch size >= 2 or a larger patch, "
                f"e.g. {bigger}."
            ) from exc
        self._check_features(x, features)
        return features

    def _check_features(self, x: torch.Tensor, features: list[torch.Tensor]) -> None:
        """Fail loudly if the backbone's maps differ from what its feature_info promised."""
        size = tuple(x.shape[2:])
        if any(s % d for s, d in zip(size, self.size_divisor)):
            return  # rounding of odd sizes is the backbone's business; models reject them
        expected = [
            (x.shape[0], f.channels, *(s // k for s, k in zip(size, f.stride)))
            for f in self.feature_info
        ]
        got = [tuple(f.shape) for f in features]
        if got != expected:
            raise ShapeError(
                f"timm-3d model {self.model_name!r} returned feature maps {got} for an input of "
                f"shape {tuple(x.shape)}, but its feature_info promises {expected}; this "
                "backbone cannot be used as an encoder (try out_indices or another model)"
            )


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims != 3:
        raise ConfigError(
            f"timm-3d models are 3D only, got spatial_dims={spatial_dims}; use the 'plain' or "
            "'residual' encoder for 1D or 2D inputs"
        )


def _create_backbone(
    model_name: str,
    out_indices: tuple[int, ...] | None,
    model_kwargs: Mapping[str, Any],
    *,
    in_chans: int,
) -> nn.Module:
    """``timm_3d.create_model(..., features_only=True, pretrained=False)`` with clear errors."""
    timm_3d = _timm3d()
    kwargs = dict(model_kwargs)
    if out_indices is not None:
        kwargs["out_indices"] = out_indices
    try:
        return timm_3d.create_model(
            model_name, pretrained=False, features_only=True, in_chans=in_chans, **kwargs
        )
    except Exception as exc:
        if out_indices is not None:
            try:
                kwargs_json = json.dumps(dict(model_kwargs), sort_keys=True)
                available = len(_probe_feature_info(model_name, None, kwargs_json))
            except ConfigError:
                available = None
            if available is not None and max(out_indices) >= available:
                raise ConfigError(
                    f"out_indices {out_indices} is out of range: timm-3d model {model_name!r} "
                    f"has {available} feature levels (indices 0..{available - 1})"
                ) from exc
        raise ConfigError(
            f"timm-3d could not build {model_name!r} with features_only=True, "
            f"in_chans={in_chans} and options {kwargs}: {type(exc).__name__}: {exc}"
        ) from exc


def _drop_unused_blocks(backbone: nn.Module) -> None:
    """Remove blocks after the deepest requested level (they would get no gradient).

    timm's ``FeatureListNet`` already stops at the last requested module, but the
    EfficientNet / MobileNet feature models run all their blocks whatever ``out_indices`` is.
    Stage 0 is their stem and stage ``i`` the output of ``blocks[i - 1]``.
    """
    stage_out = getattr(backbone, "_stage_out_idx", None)
    blocks = getattr(backbone, "blocks", None)
    uses_hooks = getattr(backbone, "feature_hooks", None) is not None
    if isinstance(stage_out, Mapping) and stage_out and isinstance(blocks, nn.Sequential):
        last = max(stage_out)
        if not uses_hooks and last < len(blocks):
            backbone.blocks = blocks[:last]


def _feature_info_of(backbone: nn.Module) -> tuple[FeatureInfo, ...]:
    info = backbone.feature_info
    return tuple(
        FeatureInfo(int(c), per_axis(r, 3, "timm-3d reduction"))
        for c, r in zip(info.channels(), info.reduction())
    )


@functools.lru_cache(maxsize=64)
def _probe_feature_info(
    model_name: str, out_indices: tuple[int, ...] | None, model_kwargs_json: str
) -> tuple[FeatureInfo, ...]:
    """Feature info of a backbone built without memory on the meta device (CPU if that fails)."""
    kwargs = json.loads(model_kwargs_json)
    meta_kwargs = dict(kwargs) if out_indices is None else {**kwargs, "out_indices": out_indices}
    try:
        with torch.device("meta"):
            backbone = _timm3d().create_model(
                model_name, pretrained=False, features_only=True, in_chans=1, **meta_kwargs
            )
    except Exception:  # some models read tensor values while building (e.g. ConvNeXt)
        backbone = _create_backbone(model_name, out_indices, kwargs, in_chans=1)
    return _feature_info_of(backbone)


def __getattr__(name: str) -> Any:
    if name == "load_timm3d_checkpoint":  # moved to the other weight-loading code
        warnings.warn(
            "multitask_unet.encoders.timm3d.load_timm3d_checkpoint moved to "
            "multitask_unet.interop.timm3d_weights; import from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return _load_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
