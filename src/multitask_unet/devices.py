"""Device names: ``"auto"`` and the checks every command that runs a network shares.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import torch

from multitask_unet.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto", *, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; checks the rest.

    Raises:
        ConfigError: Not a device name, or CUDA asked for where there is none.
    """
    if str(device) == "auto":
        return (
            torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        out = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if out.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
        if out.index is None:
            out = torch.device("cuda", local_rank)
    return out
