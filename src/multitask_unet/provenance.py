"""Where a result was measured: the machine and software recorded next to every number.

Results files (cross-validation summaries, benchmarks, the examples' summaries) carry an
``environment`` written by :func:`environment`, and are written with :func:`write_json_atomic`.

Example:
    >>> info = environment("cpu")
    >>> sorted(k for k in info if k in ("device", "cpu_count", "torch"))
    ['cpu_count', 'device', 'torch']
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from importlib import metadata
from typing import Any

import torch

from multitask_unet._atomic import write_text_atomic

__all__ = ["cpu_model", "device_name", "environment", "write_json_atomic"]


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), else the platform's."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or the CPU's model and core count."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def environment(device: str | torch.device = "cpu", **extra: Any) -> dict[str, Any]:
    """Device, CPU count, torch threads, load average, package versions and the date.

    Args:
        device: Where the result was computed (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        **extra: More entries, e.g. ``dtype="bfloat16"``.
    """
    info: dict[str, Any] = {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "load_average_1_5_15": (
            [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
        ),
        **extra,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for package in ("multitask-unet", "torchio", "nnunetv2", "dynamic-network-architectures"):
        try:
            info[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package.replace("-", "_")] = None
    return info


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (parent folders are created)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomic(path, text)
