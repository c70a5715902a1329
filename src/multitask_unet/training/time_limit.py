"""Fit a poly schedule into a time limit (``runtime.time_limit_minutes`` with ``on_time_limit: fit``).

From the third epoch of a call on, the trainer asks :func:`epochs_within_time_limit` before every
epoch how many epochs the schedule may have in total: the epochs already done plus as many more
as fit the time left at the mean time of the epochs after the first (the first also pays for
start-up: building the model, the first loader fill), and at least the next one (so a run ends
at most one epoch after its limit, unless its first epoch alone overruns it), never more than
the configured epochs. The poly decay is then computed over that total, so the learning rate
still reaches the end of its schedule before the limit, instead of the run being cut
off at a high learning rate. Because it is refitted every epoch, a slow spell (another job on a
shared machine) shortens the schedule only while the mean epoch time says it must.

Example:
    >>> # 4 epochs done in 40 s of a 100 s limit, 10 planned: 6 more would need 60 s -> fits
    >>> epochs_within_time_limit(10, epochs_done=4, next_epoch=4, elapsed_s=40.0, limit_s=100.0)
    10
    >>> # 4 epochs in 60 s: 40 s left is 2 more epochs of 15 s -> 6 in total
    >>> epochs_within_time_limit(10, epochs_done=4, next_epoch=4, elapsed_s=60.0, limit_s=100.0)
    6
    >>> # ... but if the first epoch took 30 s of them, the others took 10 s: 4 more -> 8
    >>> epochs_within_time_limit(10, epochs_done=4, next_epoch=4, elapsed_s=60.0, limit_s=100.0,
    ...                      first_epoch_s=30.0)
    8
"""

from __future__ import annotations

import math

from multitask_unet.errors import ConfigError

__all__ = ["epochs_within_time_limit"]


def epochs_within_time_limit(
    total_epochs: int,
    *,
    epochs_done: int,
    next_epoch: int,
    elapsed_s: float,
    limit_s: float,
    first_epoch_s: float | None = None,
) -> int:
    """The total number of epochs that lets the schedule finish within ``limit_s``.

    Args:
        total_epochs: The most epochs the schedule may have (the configured number).
        epochs_done: Epochs trained in this call (for the mean epoch time).
        next_epoch: Index of the next epoch (epochs before it are done, resumed ones included).
        elapsed_s: Seconds since the start of this call.
        limit_s: The time limit of this call, in seconds.
        first_epoch_s: Seconds from the start of the call to the end of its first epoch; with
            two or more epochs done, the mean epoch time leaves it out (start-up costs).

    Returns:
        ``total_epochs`` when the rest fits, else ``next_epoch`` plus the epochs that fit the
        remaining time, but at least ``next_epoch + 1`` (the next epoch always runs).
    """
    if epochs_done < 1 or limit_s <= 0:
        raise ConfigError(
            f"epochs_within_time_limit needs epochs_done >= 1 and limit_s > 0, got {epochs_done} "
            f"and {limit_s}"
        )
    per_epoch = elapsed_s / epochs_done
    if first_epoch_s is not None and epochs_done >= 2:
        per_epoch = max(elapsed_s - first_epoch_s, 0.0) / (epochs_done - 1)
    left = max(limit_s - elapsed_s, 0.0)
    more = math.floor(left / per_epoch) if per_epoch > 0 else total_epochs
    return max(next_epoch + 1, min(total_epochs, next_epoch + more))
