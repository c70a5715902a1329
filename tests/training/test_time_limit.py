"""Fitting the poly schedule into a time limit (``runtime.on_time_limit: fit``)."""

from __future__ import annotations

import pytest

from multitask_unet.training.time_limit import epochs_within_time_limit


@pytest.mark.parametrize(
    ("total", "done", "elapsed", "limit", "first", "expected"),
    [
        (10, 4, 40.0, 100.0, None, 10),  # 6 more epochs of 10 s fit in 60 s
        (10, 4, 60.0, 100.0, None, 6),  # 40 s left: 2 more epochs of 15 s
        (10, 4, 60.0, 100.0, 30.0, 8),  # the first took 30 s; the others 10 s: 4 more
        (10, 1, 30.0, 100.0, 30.0, 3),  # one epoch done: its time is all there is
        (10, 4, 120.0, 100.0, None, 5),  # over the limit: the next epoch is the last
        (10, 1, 1.0, 1000.0, None, 10),  # never longer than planned
    ],
)
def test_epochs_within_time_limit(total, done, elapsed, limit, first, expected) -> None:
    kwargs = {"epochs_done": done, "next_epoch": done, "elapsed_s": elapsed, "limit_s": limit}
    assert epochs_within_time_limit(total, **kwargs, first_epoch_s=first) == expected
