"""The machine and software a result was measured with, recorded next to every number.

Example:
    >>> from machine import environment
    >>> sorted(environment("cpu"))[:3]
    ['cpu_count', 'cpu_threads', 'date']
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "write_json_atomic"]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    """Device, CPU, threads, load average and versions, as the docs' results hook shows them.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    env: dict[str, Any] = {"device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        env["device_name"] = f"{_cpu_name()} ({os.cpu_count()} cores)"
    env["cpu_count"] = os.cpu_count()
    env["cpu_threads"] = torch.get_num_threads()
    if hasattr(os, "getloadavg"):
        env["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    env["torch"] = torch.__version__
    env["multitask_unet"] = _version("multitask_unet") or _version("multitask-unet")
    env["python"] = sys.version.split()[0]
    env["platform"] = platform.platform()
    env["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return env


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON via a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
