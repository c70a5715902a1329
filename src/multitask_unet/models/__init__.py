"""Models: ``MultiTaskUNet``, its config, presets and the factory."""

from multitask_unet.models.config import ModelConfig
from multitask_unet.models.factory import create_model, list_models, resolve_config
from multitask_unet.models.presets import PRESETS
from multitask_unet.models.unet import MultiTaskUNet

__all__ = [
    "PRESETS",
    "ModelConfig",
    "MultiTaskUNet",
    "create_model",
    "list_models",
    "resolve_config",
]
