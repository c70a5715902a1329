"""Mixed precision: which autocast dtype a training step (or a trial step) runs in.

On CUDA, ``amp="auto"`` trains in bfloat16 where the GPU supports it, else in float16 (with a
gradient scaler), as nnU-Net does; ``"bf16"``, ``"fp16"`` and ``"off"`` choose explicitly. The
CPU trains in float32: ``"auto"`` and ``"off"`` mean float32 there, and ``"bf16"``/``"fp16"``
are refused. bfloat16 autocast made training steps 1.67x faster on the 2-core AMD EPYC
development box (AVX512-BF16), but oneDNN's bfloat16 convolution backward returned NaN weight
gradients in some draws and a pancreas training run turned NaN in its third epoch
(``benchmarks/bench_cpu_bf16.py``, ``docs/concepts/training.md``).

Example:
    >>> import torch
    >>> autocast_dtype("auto", torch.device("cpu")) is None
    True
    >>> autocast_dtype("off", torch.device("cuda")) is None
    True
"""

from __future__ import annotations

import torch

from multitask_unet.errors import ConfigError

__all__ = ["autocast_dtype", "cpu_has_native_bf16"]


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``mode`` (``TrainConfig.amp``) on ``device``; None for float32.

    Raises:
        ConfigError: ``"bf16"`` or ``"fp16"`` off CUDA (use ``"auto"`` or ``"off"``).
    """
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if mode in ("bf16", "fp16"):
        raise ConfigError(
            f"amp={mode!r} is not supported on {device.type}: training there runs in float32 "
            "(bfloat16 convolution gradients of oneDNN turned NaN on a CPU with native bfloat16; "
            "see docs/concepts/training.md); use amp='auto' or 'off'"
        )
    return None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False
