"""Resumable trainer state, kept in a checkpoint's ``training`` slot.

Everything here is made of tensors, dicts, lists, str, int, float, bool and None, so that the
checkpoint loads with ``torch.load(weights_only=True)``. Resuming is exact: the trainer saves at
epoch boundaries, and an epoch's batches depend only on ``(seed, epoch, rank)`` (see
:class:`~multitask_unet.data.sampling.loader.TrainLoader`), so restoring the weights, the optimiser, the
schedule, the AMP scaler and the torch / numpy / Python RNG states replays the next epoch
exactly as an uninterrupted run would.

Example:
    >>> import random
    >>> state = rng_state()
    >>> a = random.random()
    >>> set_rng_state(state)
    >>> random.random() == a
    True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["STATE_VERSION", "rng_state", "set_rng_state", "training_state"]

STATE_VERSION = 1
"""Version of the layout of the ``training`` dict written by the trainer."""


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy (legacy global) and Python random states."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": int(version), "state": list(internal), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))


def training_state(
    config: Any,
    epoch: int,
    parts: Any,
    best: tuple[float, int] | None,
    *,
    world_size: int,
    patch_size: tuple[int, ...],
    batch_size: int,
) -> dict[str, Any]:
    """The ``training`` slot of a checkpoint after ``epoch``: everything resuming needs.

    ``parts`` holds the optimiser, schedule, AMP scaler and loss of the fit (the learned loss
    weights and the scaler are restored with the rest).
    """
    return {
        "version": STATE_VERSION,
        "config": config.to_dict(),
        "epoch": epoch,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "loss": parts.loss_fn.state_dict(),
        "rng": rng_state(),
        "best_score": None if best is None else best[0],
        "best_epoch": None if best is None else best[1],
        "world_size": world_size,
        "patch_size": list(patch_size),
        "batch_size": batch_size,
    }
