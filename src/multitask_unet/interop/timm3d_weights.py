"""Load a local timm-3d checkpoint file into a timm-3d ``features_only`` backbone.

:class:`~multitask_unet.encoders.timm3d.Timm3dEncoder` calls :func:`load_timm3d_checkpoint` for
its ``checkpoint_path``. The file may hold a state dict of the timm-3d classification model, of
its ``features_only`` version, of a :class:`~multitask_unet.encoders.timm3d.Timm3dEncoder` or of
a whole :class:`~multitask_unet.models.MultiTaskUNet`; nothing is ever downloaded.

Example:
    >>> import tempfile, pathlib, torch
    >>> from multitask_unet.encoders.timm3d import Timm3dEncoderConfig
    >>> enc = Timm3dEncoderConfig(model_name="tinynet_e", out_indices=(0, 1)).build(1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "encoder.pth"
    >>> torch.save({"state_dict": enc.state_dict()}, path)
    >>> load_timm3d_checkpoint(enc.backbone, path)
    []
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multitask_unet.errors import ConfigError, WeightsError

__all__ = ["load_timm3d_checkpoint"]

# Wrappers of checkpoint files, in the order they are looked for.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema")
# Prefixes a state dict of this encoder, a DDP module or a MultiTaskUNet puts before the keys.
_CHECKPOINT_PREFIXES = ("module.", "encoder.backbone.", "backbone.")


def load_timm3d_checkpoint(backbone: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load a local checkpoint into a timm-3d ``features_only`` backbone.

    Keys are matched after removing ``module.``, ``encoder.backbone.`` and ``backbone.``
    prefixes and ignoring the difference between ``.`` and ``_`` (timm's feature wrapper
    renames ``features.conv0`` to ``features_conv0``), so a state dict of the classification
    model, of the ``features_only`` model, of a :class:`Timm3dEncoder` or of a whole
    :class:`~multitask_unet.models.MultiTaskUNet` all load. Every backbone tensor must be found
    with the right shape.

    Args:
        backbone: The module ``timm_3d.create_model(..., features_only=True)`` returned.
        path: A ``.pth`` / ``.pt`` / ``.bin`` file read with ``torch.load(weights_only=True)``
            (optionally wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``), or a
            ``.safetensors`` file.

    Returns:
        The checkpoint keys that were not used (e.g. the classifier), sorted.

    Raises:
        ConfigError: The file does not exist.
        WeightsError: The file cannot be read, or tensors are missing or mis-shaped.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint_path {str(path)!r} is not a file; give the local path of a state dict"
        )
    state = _read_state_dict(path)
    by_name: dict[str, list[str]] = {}
    for key in state:
        by_name.setdefault(_normalise_key(key), []).append(key)
    loaded, missing, mismatched, used = {}, [], [], set()
    for key, target in backbone.state_dict().items():
        found = by_name.get(_normalise_key(key), [])
        if len(found) > 1:
            raise WeightsError(f"{path}: keys {found} all match the backbone's {key!r}")
        if not found:
            if not key.endswith("num_batches_tracked"):
                missing.append(key)
            continue
        value = state[found[0]]
        used.add(found[0])
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(value.shape)}, model {tuple(target.shape)}"
            )
        loaded[key] = value
    if missing:
        raise WeightsError(
            f"{path} lacks {len(missing)} of the backbone's tensors (e.g. {missing[:3]}); is it a "
            "checkpoint of the same timm-3d model_name and model_kwargs?"
        )
    if mismatched:
        raise WeightsError(
            f"{path} has tensors of the wrong shape: {'; '.join(mismatched[:3])}. Build the "
            "encoder with the checkpoint's in_channels and model_kwargs."
        )
    backbone.load_state_dict(loaded, strict=False)
    return sorted(set(state) - used)


def _normalise_key(key: str) -> str:
    for prefix in _CHECKPOINT_PREFIXES:  # in this order, e.g. "module.encoder.backbone."
        key = key.removeprefix(prefix)
    return key.replace(".", "_")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"cannot read {path} as a state dict ({type(exc).__name__}: {exc}); save one with "
            "torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        obj = next((obj[k] for k in _CHECKPOINT_KEYS if _is_state_dict(obj.get(k))), obj)
    if not _is_state_dict(obj):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(
            f"{path} holds no state dict (found {keys}); expected a mapping of names to tensors, "
            f"possibly under one of the keys {list(_CHECKPOINT_KEYS)}"
        )
    return dict(obj)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )
