"""Interoperability with other frameworks: nnU-Net plans and weights, timm-3d weights.

- :mod:`~multitask_unet.interop.nnunet`: the network of an nnU-Net plans configuration and the
  weights of a trained nnU-Net;
- :mod:`~multitask_unet.interop.nnunet_plans`: the preprocessing of an nnU-Net plans
  configuration as our :class:`~multitask_unet.data.planning.Plan`;
- :mod:`~multitask_unet.interop.timm3d_weights`: timm-3d checkpoints for ``timm3d`` encoders.

The names below are imported on first use: ``multitask_unet.encoders`` imports
``interop.timm3d_weights`` while it loads, so this package must not import the encoders (which
``interop.nnunet`` does) when it is imported itself.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "config_from_plans",
    "load_nnunet_weights",
    "model_from_plans",
    "nnunet_labels",
    "plan_from_nnunet",
    "preprocessing_from_nnunet",
]

_HOMES = {
    "config_from_plans": "nnunet",
    "load_nnunet_weights": "nnunet",
    "model_from_plans": "nnunet",
    "nnunet_labels": "nnunet_plans",
    "plan_from_nnunet": "nnunet_plans",
    "preprocessing_from_nnunet": "nnunet_plans",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
