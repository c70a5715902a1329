"""Shared helpers: environment description, interleaved timing, result files."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from multitask_unet import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def environment(device: str, dtype: str = "float32") -> dict[str, Any]:
    """Device, dtype and versions, recorded with every result."""
    return provenance.environment(device, dtype=dtype)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(
    fns: dict[str, Callable[[], Any]],
    *,
    device: str,
    repeats: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, interleaved in a rotating order, so drift and
    order effects hit all alike.

    ``clock=time.process_time`` counts this process's CPU seconds (all threads), which other
    jobs on a shared CPU machine disturb far less than wall time; use wall time on a GPU.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        # Rotate the order every round so no variant always runs first (or after another).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            sync(device)
            start = clock()
            fn()
            sync(device)
            times[name].append(clock() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}


def save(name: str, result: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``results/<name>-<device>.json`` atomically and return its path."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    device = str(result.get("environment", {}).get("device", "cpu")).split(":")[0]
    path = out_dir / f"{name}-{device}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path
