"""What a training run folder holds, read without training: its checkpoints and its progress.

A run folder (``multitask-unet train DATA -o RUN``) keeps ``checkpoints/last.pt`` (after every
epoch, with the state to resume) and, when the run validates, ``checkpoints/best.pt`` (the
epoch with the best validation score). :func:`run_checkpoint` is the checkpoint to predict
with: the last epoch's by default, as ``predict --model RUN`` and nnU-Net (``checkpoint_final``)
predict, or the best validated one; :func:`finished_run` is what :func:`~multitask_unet.training.train` returns at once when
asked to resume a run that has already trained all its epochs.

Example:
    >>> import pathlib, tempfile
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> (run / "checkpoints").mkdir()
    >>> (run / "checkpoints" / "last.pt").touch()  # a run trained without validation
    >>> run_checkpoint(run, prefer="best").name
    'last.pt'
    >>> (run / "checkpoints" / "best.pt").touch()  # ... and one that validated
    >>> run_checkpoint(run).name, run_checkpoint(run, prefer="best").name
    ('last.pt', 'best.pt')
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.errors import ConfigError
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.fit_parts import check_resumable
from multitask_unet.training.metrics import CSV_NAME, read_metrics
from multitask_unet.training.state import STATE_VERSION
from multitask_unet.training.trainer import BEST, LAST, TrainResult

__all__ = ["finished_run", "run_checkpoint"]


def run_checkpoint(
    run_dir: str | os.PathLike[str], *, prefer: Literal["best", "last"] = "last"
) -> Path:
    """The checkpoint of a training run to predict with.

    Args:
        run_dir: ``RUN`` of ``multitask-unet train DATA -o RUN``.
        prefer: ``"last"`` (the default, the final weights, as ``predict --model RUN``
            uses): ``checkpoints/last.pt``; ``"best"``: ``checkpoints/best.pt`` (the epoch with
            the best validation score) when the run validated, else ``last.pt``.

    Raises:
        ConfigError: ``prefer`` is neither word, or the run has no ``checkpoints/last.pt``
            (not trained yet, or not a run folder).
    """
    if prefer not in ("best", "last"):
        raise ConfigError(f"prefer must be 'best' or 'last', got {prefer!r}")
    folder = Path(run_dir) / "checkpoints"
    last = folder / LAST
    if not last.is_file():
        raise ConfigError(
            f"{run_dir} holds no trained run ({last} does not exist); train it first "
            "(multitask-unet train DATA -o RUN) or give the run folder"
        )
    best = folder / BEST
    return best if prefer == "best" and best.is_file() else last


def finished_run(run_dir: str | os.PathLike[str], config: TrainConfig) -> TrainResult | None:
    """The result of a run that has trained its ``optimization.epochs`` epochs, else None.

    Read from ``checkpoints/last.pt`` (epochs done and best score) and ``metrics.csv`` (the
    last epoch's row); None when there is no ``last.pt`` or it holds no resumable state (the
    trainer then says why when resuming).

    Args:
        run_dir: The run folder.
        config: The config the run is resumed with, as training uses it (a budget plan's
            choices applied).

    Raises:
        ConfigError: The run has finished, but with other options than ``config`` (those that
            must not change when a run is resumed).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / LAST
    if not last.is_file():
        return None
    state = load_checkpoint(last).training or {}
    if state.get("version") != STATE_VERSION:
        return None
    epochs = int(state["epoch"]) + 1
    if epochs < config.optimization.epochs:
        return None
    check_resumable(last, state["config"], config)
    rows = read_metrics(run_dir / CSV_NAME)
    return TrainResult(
        run_dir=run_dir,
        epochs=epochs,
        metrics=rows[-1] if rows else {},
        best_score=state.get("best_score"),
        seconds=time.perf_counter() - started,
    )
