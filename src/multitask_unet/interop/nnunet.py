"""Build networks from nnU-Net plans and load nnU-Net weights into them.

``model_from_plans`` reads the ``architecture`` block of an nnU-Net v2 ``plans.json``
configuration (``PlainConvUNet`` or ``ResidualEncoderUNet`` of dynamic-network-architectures)
and builds the same network as a :class:`~multitask_unet.models.MultiTaskUNet`;
``load_nnunet_weights`` maps a trained network's ``state_dict`` onto it, so a classification
head can be added to a trained nnU-Net.

Example:
    >>> plans = {"configurations": {"3d_fullres": {"architecture": {
    ...     "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    ...     "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8],
    ...         "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 2,
    ...         "strides": [[1, 1, 1], [2, 2, 2]], "n_conv_per_stage": [1, 1],
    ...         "n_conv_per_stage_decoder": [1], "conv_bias": True,
    ...         "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    ...         "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
    ...         "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
    ...         "nonlin_kwargs": {"inplace": True}}}}}}
    >>> model = model_from_plans(plans, in_channels=1, num_classes=3)
    >>> model.size_divisor
    (2, 2, 2)
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from multitask_unet.decoders import UNetDecoderConfig
from multitask_unet.encoders import PlainEncoderConfig, ResidualEncoderConfig
from multitask_unet.errors import ConfigError, WeightsError
from multitask_unet.models import ModelConfig, MultiTaskUNet
from multitask_unet.models.config import heads_from_spec

__all__ = [
    "config_from_plans",
    "convert_nnunet_state_dict",
    "load_nnunet_weights",
    "load_weights_file",
    "model_from_plans",
]

_NORMS = {"InstanceNorm": "instance", "BatchNorm": "batch"}
_ACTS = {
    "LeakyReLU": "leaky_relu",
    "ReLU": "relu",
    "GELU": "gelu",
    "SiLU": "silu",
    "PReLU": "prelu",
}


def _load_plans(plans: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(plans, Mapping):
        return dict(plans)
    path = Path(plans)
    if not path.is_file():
        raise ConfigError(
            f"nnU-Net plans file {path} does not exist (expected .../nnUNetPlans.json)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def _resolve_configuration(plans: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> dict:
    configs = plans.get("configurations")
    if not isinstance(configs, Mapping):
        raise ConfigError("plans have no 'configurations' block; is this an nnU-Net v2 plans.json?")
    if name not in configs:
        raise ConfigError(f"plans have no configuration {name!r}; available: {sorted(configs)}")
    config = copy.deepcopy(dict(configs[name]))
    parent = config.pop("inherits_from", None)
    if parent is None:
        return config
    if parent in seen:
        raise ConfigError(
            f"circular 'inherits_from' in plans: {' -> '.join((*seen, name, parent))}"
        )
    base = _resolve_configuration(plans, parent, (*seen, name))
    base.update(config)
    return base


def _layer(spec: str | None, kwargs: Mapping[str, Any] | None, table: dict[str, str], what: str):  # type: ignore[no-untyped-def]
    if spec is None:
        return None
    short = spec.rsplit(".", 1)[-1]
    for prefix, ours in table.items():
        if short.startswith(prefix):
            options = {k: v for k, v in (kwargs or {}).items() if k != "inplace"}
            return (ours, options) if options else ours
    raise ConfigError(f"unsupported {what} {spec!r} in plans; supported: {sorted(table)}")


def config_from_plans(
    plans: str | os.PathLike[str] | Mapping[str, Any],
    configuration: str = "3d_fullres",
    *,
    in_channels: int,
    num_classes: int,
    deep_supervision: bool = True,
    heads: Mapping[str, Any] | None = None,
) -> ModelConfig:
    """The :class:`ModelConfig` equal to an nnU-Net plans configuration's network."""
    arch = _resolve_configuration(_load_plans(plans), configuration).get("architecture")
    if not isinstance(arch, Mapping) or "arch_kwargs" not in arch:
        raise ConfigError(
            f"configuration {configuration!r} has no 'architecture' block with 'arch_kwargs'; "
            "plans written before nnU-Net 2.4 need re-planning with nnUNetv2_plan_experiment"
        )
    cls_name = str(arch.get("network_class_name", "")).rsplit(".", 1)[-1]
    kw = arch["arch_kwargs"]
    conv = str(kw.get("conv_op", "Conv3d"))
    spatial_dims = int(conv[-2]) if conv[-2:-1].isdigit() and conv.endswith("d") else 3
    if kw.get("dropout_op") is not None:
        p = float((kw.get("dropout_op_kwargs") or {}).get("p", 0.5))
    else:
        p = 0.0
    common = {
        "channels": tuple(kw["features_per_stage"]),
        "strides": tuple(tuple(s) if isinstance(s, list) else s for s in kw["strides"]),
        "kernel_sizes": tuple(tuple(k) if isinstance(k, list) else k for k in kw["kernel_sizes"]),
        "norm": _layer(kw.get("norm_op"), kw.get("norm_op_kwargs"), _NORMS, "norm_op"),
        "act": _layer(kw.get("nonlin"), kw.get("nonlin_kwargs"), _ACTS, "nonlin"),
        "dropout": p,
        "bias": bool(kw.get("conv_bias", False)),
    }
    if cls_name == "PlainConvUNet":
        if kw.get("nonlin_first", False):
            raise ConfigError(
                "nonlin_first=True networks are not supported; use conv-norm-act plans"
            )
        encoder: PlainEncoderConfig = PlainEncoderConfig(
            convs_per_stage=tuple(_per_stage(kw["n_conv_per_stage"], len(common["channels"]))),
            **common,
        )
    elif cls_name == "ResidualEncoderUNet":
        block = kw.get("block", "BasicBlockD")
        block_name = str(getattr(block, "__name__", block)).rsplit(".", 1)[-1]
        if block_name not in ("BasicBlockD", "BottleneckD"):
            raise ConfigError(
                f"unsupported residual block {block!r}; supported: BasicBlockD, BottleneckD"
            )
        bottleneck = kw.get("bottleneck_channels")
        encoder = ResidualEncoderConfig(
            blocks_per_stage=tuple(_per_stage(kw["n_blocks_per_stage"], len(common["channels"]))),
            block="basic" if block_name == "BasicBlockD" else "bottleneck",
            bottleneck_channels=tuple(_per_stage(bottleneck, len(common["channels"])))
            if bottleneck is not None
            else None,
            stem_channels=kw.get("stem_channels"),
            **common,
        )
    else:
        raise ConfigError(
            f"network class {arch.get('network_class_name')!r} is not supported; "
            "supported: PlainConvUNet, ResidualEncoderUNet"
        )
    decoder = UNetDecoderConfig(
        convs_per_stage=tuple(
            _per_stage(kw["n_conv_per_stage_decoder"], len(common["channels"]) - 1)
        ),
        norm=common["norm"],
        act=common["act"],
        dropout=p,
        bias=common["bias"],
    )
    return ModelConfig(
        encoder=encoder,
        decoder=decoder,
        heads=heads_from_spec(heads or {}),
        in_channels=in_channels,
        num_classes=num_classes,
        deep_supervision=deep_supervision,
        spatial_dims=spatial_dims,
    )


def _per_stage(value: Any, n: int) -> list[int]:
    return [value] * n if isinstance(value, int) else list(value)


def model_from_plans(
    plans: str | os.PathLike[str] | Mapping[str, Any],
    configuration: str = "3d_fullres",
    *,
    in_channels: int,
    num_classes: int,
    deep_supervision: bool = True,
    heads: Mapping[str, Any] | None = None,
) -> MultiTaskUNet:
    """Build the network of an nnU-Net plans configuration (see the module docstring).

    Args:
        plans: Path of ``nnUNetPlans.json`` (or a ResEnc plans file) or its parsed dict.
        configuration: Configuration name, e.g. ``"3d_fullres"``; ``inherits_from`` is resolved.
        in_channels: Number of input channels (the dataset's modalities).
        num_classes: Segmentation classes including background (nnU-Net's ``num_classes``).
        deep_supervision: Return deep-supervision logits in training mode.
        heads: Classification heads to add, as accepted by :func:`multitask_unet.create_model`.
    """
    config = config_from_plans(
        plans,
        configuration,
        in_channels=in_channels,
        num_classes=num_classes,
        deep_supervision=deep_supervision,
        heads=heads,
    )
    return MultiTaskUNet(config)


# dynamic-network-architectures key -> ours. Keys under ``decoder.encoder`` (the decoder holds
# the encoder in DNA) and ``all_modules`` (a second name for conv/norm) are duplicates and dropped.
_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^encoder\.stages\.(\d+)\.0\.convs\.(\d+)\.", r"encoder.stages.\1.\2."),
        (r"^encoder\.stages\.(\d+)\.blocks\.(\d+)\.", r"encoder.stages.\1.\2."),
        (r"^encoder\.stem\.convs\.0\.", r"encoder.stem."),
        (r"^decoder\.transpconvs\.(\d+)\.", r"decoder.upsamples.\1."),
        (r"^decoder\.stages\.(\d+)\.convs\.(\d+)\.", r"decoder.stages.\1.\2."),
        (r"^decoder\.seg_layers\.(\d+)\.", r"seg_head.projections.\1."),
    )
)


def convert_nnunet_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``PlainConvUNet`` / ``ResidualEncoderUNet`` state_dict to our parameter names."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.").removeprefix("_orig_mod.")
        if key.startswith("decoder.encoder.") or ".all_modules." in key:
            continue
        for pattern, repl in _KEY_RULES:
            key, n = pattern.subn(repl, key)
            if n:
                break
        out[key] = value
    return out


def _numpy_safe_globals() -> list[Any]:
    """What ``torch.load(weights_only=True)`` must allow to rebuild NumPy scalars and dtypes.

    nnU-Net checkpoints hold NumPy scalars (``_best_ema``, the logged Dice values); allowing these
    reconstructors, and nothing else, reads them without running any code from the file.
    """
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [np.dtype, *dtypes, scalar, (scalar, "numpy.core.multiarray.scalar")]


def load_weights_file(path: Path, *, fix: str, allow_pickle: bool = False) -> Any:
    """What ``torch.load`` reads from ``path``: with ``weights_only=True`` and NumPy scalars
    allowed (no code from the file runs), or with full unpickling when ``allow_pickle``.

    Raises:
        WeightsError: The file cannot be read so; the message names it, then ``fix``.
    """
    try:
        if allow_pickle:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling and zip errors come in many types
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"could not read {path} with torch.load(weights_only={not allow_pickle}): {first}. "
            f"{fix}"
        ) from None


def _read_state_dict(source: str | os.PathLike[str], allow_pickle: bool) -> Mapping[str, Any]:
    path = Path(source)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    loaded = load_weights_file(
        path,
        allow_pickle=allow_pickle,
        fix="It holds objects other than tensors, containers and NumPy scalars; only if you "
        "trust the file, pass allow_pickle=True (full unpickling runs code from the file)",
    )
    if isinstance(loaded, Mapping) and "network_weights" in loaded:
        loaded = loaded["network_weights"]
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state_dict")
    return loaded


def load_nnunet_weights(
    model: MultiTaskUNet,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    allow_pickle: bool = False,
) -> list[str]:
    """Load the weights of a trained nnU-Net network into ``model``'s encoder, decoder and
    segmentation head.

    Args:
        model: A model with the same architecture (e.g. from :func:`model_from_plans`).
        source: A DNA ``state_dict``, or a file: an nnU-Net checkpoint (its
            ``"network_weights"`` are used) or a saved ``state_dict``.
        allow_pickle: Read files with full unpickling, which runs code from the file (only for
            files you trust). Without it, nnU-Net checkpoints still load: tensors, containers
            and NumPy scalars are read with ``torch.load(weights_only=True)``.

    Returns:
        Names of the model's parameters left as they were (the classification heads).

    Raises:
        WeightsError: When a tensor is missing, unexpected or has another shape.
    """
    raw = source if isinstance(source, Mapping) else _read_state_dict(source, allow_pickle)
    converted = convert_nnunet_state_dict(raw)
    own = model.state_dict()
    unexpected = sorted(set(converted) - set(own))
    missing = sorted(k for k in set(own) - set(converted) if not k.startswith("heads."))
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if unexpected or missing or mismatched:
        details = "; ".join(
            part
            for part in (
                f"unexpected: {unexpected[:5]}" if unexpected else "",
                f"missing: {missing[:5]}" if missing else "",
                f"shape mismatch: {mismatched[:5]}" if mismatched else "",
            )
            if part
        )
        raise WeightsError(
            f"nnU-Net weights do not fit this model ({details}). Build the model from the same "
            "plans, configuration, in_channels and num_classes with model_from_plans."
        )
    model.load_state_dict(converted, strict=False)
    return sorted(k for k in own if k not in converted)
