"""Mixed precision: which autocast dtype a training step (or a trial step) runs in, and how.

On CUDA, ``amp="auto"`` trains in bfloat16 where the GPU supports it, else in float16 (with a
gradient scaler), as nnU-Net does; ``"bf16"``, ``"fp16"`` and ``"off"`` choose explicitly.

On the CPU, ``"auto"`` and ``"off"`` train in float32 (as nnU-Net does), ``"bf16"`` trains under
bfloat16 autocast where oneDNN runs bfloat16 natively (AVX512-BF16 or AMX) and is refused
elsewhere (it would be emulated, slower than float32), and ``"fp16"`` is refused (speed:
``benchmarks/bench_cpu_bf16.py``). :func:`autocast` works around one oneDNN defect
(``docs/concepts/training.md``): with torch 2.14.1 the bfloat16 weight gradient of a 3D
convolution whose input is 2 voxels deep comes back NaN or inf in ~1 of 4 draws (every other
depth from 1 to 8, strided or not, and transposed convolutions were finite), so such
convolutions, a network's deepest stage at a depth-32 patch, run in float32.

Example:
    >>> import torch
    >>> autocast_dtype("auto", torch.device("cpu")) is None
    True
    >>> autocast_dtype("off", torch.device("cuda")) is None
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from multitask_unet.errors import ConfigError

__all__ = ["autocast", "autocast_dtype", "cpu_has_native_bf16"]


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``mode`` (``TrainConfig.runtime.amp``) on ``device``; None for float32.

    Raises:
        ConfigError: ``"fp16"`` off CUDA, or ``"bf16"`` on a CPU without native bfloat16.
    """
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if mode == "fp16":
        raise ConfigError(
            f"amp='fp16' is not supported on {device.type}; use amp='bf16' (CPUs with native "
            "bfloat16), 'auto' or 'off' (float32)"
        )
    if mode == "bf16":
        if device.type == "cpu" and not cpu_has_native_bf16():
            raise ConfigError(
                "amp='bf16' needs a CPU that runs bfloat16 natively (AVX512-BF16 or AMX); this "
                "one would emulate it, slower than float32: use amp='auto' or 'off'"
            )
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(dtype: torch.dtype | None, device: torch.device) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` (nothing for None), safe on the CPU.

    With bfloat16 on the CPU, 3D convolutions of 2-voxel-deep inputs run in float32 (their
    bfloat16 weight gradients are not finite with oneDNN; see the module docstring).
    """
    if dtype is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
        if device.type == "cpu" and dtype == torch.bfloat16:
            stack.enter_context(_Depth2ConvsInFloat32())
        yield


class _Depth2ConvsInFloat32(TorchFunctionMode):
    """Runs ``conv3d`` on inputs of depth 2 in float32, outside autocast."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.conv3d and args and args[0].dim() == 5 and args[0].shape[2] == 2:
            args = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
            kwargs = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            with torch.autocast("cpu", enabled=False):
                return func(*args, **kwargs)
        return func(*args, **kwargs)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False
