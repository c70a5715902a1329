"""Fit a poly schedule into a wall-clock budget (``TrainConfig.time_budget_minutes``).

Before every epoch but the first the trainer asks :func:`epochs_within_budget` how many epochs
the schedule may have in total: the epochs already done plus as many more as fit the time left at
the mean epoch time so far (validation included), and at least the next one (so a run ends at
most one epoch after its budget). The poly decay is then computed over that shorter total, so
the learning rate still reaches the end of its schedule before the budget runs out, instead of
the run being cut off at a high learning rate.

Example:
    >>> # 4 epochs done in 40 s of a 100 s budget, 10 planned: 6 more would need 60 s -> fits
    >>> epochs_within_budget(10, epochs_done=4, next_epoch=4, elapsed_s=40.0, budget_s=100.0)
    10
    >>> # 4 epochs in 60 s: 40 s left is 2 more epochs of 15 s -> 6 in total
    >>> epochs_within_budget(10, epochs_done=4, next_epoch=4, elapsed_s=60.0, budget_s=100.0)
    6
"""

from __future__ import annotations

import math

from multitask_unet.errors import ConfigError

__all__ = ["epochs_within_budget"]


def epochs_within_budget(
    total_epochs: int,
    *,
    epochs_done: int,
    next_epoch: int,
    elapsed_s: float,
    budget_s: float,
) -> int:
    """The total number of epochs that lets the schedule finish within ``budget_s``.

    Args:
        total_epochs: The schedule's current total.
        epochs_done: Epochs trained in this call (for the mean epoch time).
        next_epoch: Index of the next epoch (epochs before it are done, resumed ones included).
        elapsed_s: Seconds since the start of this call.
        budget_s: The wall-clock budget of this call.

    Returns:
        ``total_epochs`` when the rest fits, else ``next_epoch`` plus the epochs that fit the
        remaining time, but at least ``next_epoch + 1`` (the next epoch always runs).
    """
    if epochs_done < 1 or budget_s <= 0:
        raise ConfigError(
            f"epochs_within_budget needs epochs_done >= 1 and budget_s > 0, got {epochs_done} "
            f"and {budget_s}"
        )
    per_epoch = elapsed_s / epochs_done
    left = max(budget_s - elapsed_s, 0.0)
    more = math.floor(left / per_epoch) if per_epoch > 0 else total_epochs
    return max(next_epoch + 1, min(total_epochs, next_epoch + more))
