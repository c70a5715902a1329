"""Progress reporting of the trainer: running loss means, the progress bar, one line per epoch.

Example:
    >>> hms(3725.0)
    '1:02:05'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import DistInfo

__all__ = ["accumulate", "hms", "means", "postfix", "print_row", "progress_bar"]


def accumulate(sums: dict[str, Any], out: Any) -> None:
    """Add the batch's loss and parts; parts count only on batches that had their target.

    The sums stay tensors on the loss's device, so a training step never waits for the GPU;
    :func:`means` reads them (one synchronisation per epoch, or per progress-bar refresh).
    """
    _add(sums, "loss", out.total.detach().float())
    sums["n"] = sums.get("n", 0) + 1
    for key, value in out.parts.items():
        present = out.present[key].to(value.device)
        _add(sums, f"loss/{key}", torch.where(present, value.detach().float(), 0.0))
        _add(sums, f"n/{key}", present.float())


def _add(sums: dict[str, Any], key: str, value: torch.Tensor) -> None:
    sums[key] = value.clone() if key not in sums else sums[key] + value


def means(sums: Mapping[str, Any]) -> dict[str, float]:
    """``loss`` and ``loss/<part>`` averaged over the batches counted by :func:`accumulate`.

    A part whose target no batch had is left out (its mean is undefined).
    """
    out = {"loss": float(sums["loss"]) / sums["n"]}
    for key, value in sums.items():
        if key.startswith("loss/"):
            count = float(sums["n/" + key[5:]])
            if count > 0:
                out[key] = float(value) / count
    return out


def progress_bar(cfg: TrainConfig, dist: DistInfo, epoch: int, total: int) -> Any:
    """A tqdm bar over one epoch on rank 0 (None when progress is off or on other ranks)."""
    if not (cfg.runtime.progress and dist.is_main):
        return None
    from tqdm.auto import tqdm

    desc = f"epoch {epoch + 1}/{cfg.optimization.epochs}"
    return tqdm(total=total, desc=desc, unit="it", leave=False)


def postfix(
    sums: Mapping[str, Any], done: int, left: int, batch_size: int, started: float
) -> dict[str, str]:
    """Loss parts, samples per second and the time left for the whole run."""
    rate = done / max(time.perf_counter() - started, 1e-9)
    post = {k.replace("loss/", ""): f"{v:.3f}" for k, v in means(sums).items()}
    post["samples/s"] = f"{rate * batch_size:.1f}"
    post["left"] = hms(left / rate)
    return post


def hms(seconds: float) -> str:
    """``H:MM:SS`` (``"?"`` for an unknown duration)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_row(row: Mapping[str, float], epochs: int) -> None:
    """Print an epoch's metrics on one line (used instead of the bar with ``progress: false``)."""
    parts = [f"epoch {int(row['epoch']) + 1}/{epochs}"]
    parts += [f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"]
    print("  ".join(parts), flush=True)
