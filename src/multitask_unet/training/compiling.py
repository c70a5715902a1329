"""``torch.compile`` for training steps: which mode ``TrainConfig.runtime.compile`` means.

nnU-Net's trainer compiles its network by default on CUDA (``nnUNet_compile``), and so does ours
with ``compile="auto"`` (compiling takes about a minute at the start; the speed-up is measured
by ``benchmarks/bench_train_step.py``). On the CPU ``"auto"`` stays eager, where compiling gave
no speed-up. ``"default"``, ``"reduce-overhead"`` (CUDA graphs) and ``"max-autotune"`` are
``torch.compile`` modes, used on any device; ``"off"`` never compiles.

Only the training forward pass is compiled; validation, checkpoints and prediction use the
plain module, so checkpoints hold the same keys either way.

Example:
    >>> import torch
    >>> compile_mode("auto", torch.device("cpu")) is None
    True
    >>> compile_mode("auto", torch.device("cuda"))
    'default'
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from multitask_unet.errors import ConfigError

__all__ = ["COMPILE_MODES", "CompileMode", "compile_mode", "compiled"]

CompileMode = Literal["auto", "off", "default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[CompileMode, ...] = (
    "auto",
    "off",
    "default",
    "reduce-overhead",
    "max-autotune",
)
"""The values ``TrainConfig.runtime.compile`` accepts (see the module docstring)."""


def compile_mode(setting: str, device: torch.device) -> str | None:
    """The ``torch.compile`` mode of ``setting`` on ``device``; None for eager.

    Raises:
        ConfigError: ``setting`` is not one of :data:`COMPILE_MODES`.
    """
    if setting not in COMPILE_MODES:
        raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {setting!r}")
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    return "default" if setting == "auto" else setting


def compiled(model: nn.Module, setting: str, device: torch.device) -> nn.Module:
    """``model`` compiled as ``setting`` asks on ``device``, or ``model`` itself (eager)."""
    mode = compile_mode(setting, device)
    return model if mode is None else torch.compile(model, mode=mode)  # type: ignore[return-value]
