"""Trial training steps: how long one step of a network takes at a patch and batch size.

The budget planner (:mod:`multitask_unet.training.budget`) calls :func:`measure_step_seconds`
for every candidate; any :data:`StepTimer` can stand in for it (tests pass fast stubs).

Example:
    >>> from multitask_unet.models import resolve_config
    >>> seconds = measure_step_seconds(resolve_config("tiny_plain"), (8, 8, 8), 2, steps=1)
    >>> 0 < seconds < 60
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from multitask_unet.models import ModelConfig, MultiTaskUNet
from multitask_unet.provenance import cpu_model
from multitask_unet.training.builders import build_loss
from multitask_unet.training.config import ModelSpec, OptimizerConfig, TrainConfig
from multitask_unet.training.precision import autocast_dtype
from multitask_unet.training.schedule import build_optimizer
from multitask_unet.training.step import training_step

__all__ = ["StepTimer", "device_description", "measure_step_seconds"]

StepTimer = Callable[[ModelConfig, tuple[int, int, int], int], float]
"""``(model_config, patch_size, batch_size) -> seconds per training step``."""


def measure_step_seconds(
    model_config: ModelConfig,
    patch_size: Sequence[int],
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    steps: int = 2,
    amp: str = "auto",
) -> float:
    """Mean seconds of one training step, measured after one warm-up step.

    A step is what the trainer does (:func:`~multitask_unet.training.step.training_step`):
    forward of a ``(batch_size, C, D, H, W)`` random image,
    the default multi-task loss (Dice+CE with deep supervision, 0.3 x the head's loss) on random
    targets, backward, gradient clipping and an SGD step (fused on CUDA), under the autocast of
    ``amp`` (as ``TrainConfig.runtime.amp``; see :func:`~multitask_unet.training.precision.autocast_dtype`).
    The step is eager: where the trainer compiles (CUDA), training runs faster than measured.

    Raises:
        torch.OutOfMemoryError: The step does not fit the device (the planner records it).
    """
    device = torch.device(device)
    model = MultiTaskUNet(model_config).to(device)
    model.train()
    spec = ModelSpec(deep_supervision=model_config.deep_supervision)
    loss_fn = build_loss(TrainConfig(model=spec), model).to(device)
    optimizer = build_optimizer(model.parameters(), OptimizerConfig(), fused=device.type == "cuda")
    shape = (batch_size, model_config.in_channels, *patch_size)
    image = torch.randn(shape, device=device)
    seg = torch.randint(0, model_config.num_classes, (batch_size, 1, *patch_size), device=device)
    targets: dict[str, torch.Tensor | None] = {}
    for key in loss_fn.losses:
        if key == "seg":
            targets[key] = seg
        else:
            classes = getattr(model.heads[key], "num_classes", 2)
            targets[key] = torch.randint(0, classes, (batch_size,), device=device)
    dtype = autocast_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step() -> None:
        training_step(model, model, loss_fn, optimizer, scaler, image, targets, amp_dtype=dtype)

    step()  # warm-up: allocations, cuDNN autotuning
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_description(device: str | torch.device) -> str:
    """The GPU's name, or the CPU's model and torch's thread count: where the trials ran."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()}, {torch.get_num_threads()} thread(s)"
