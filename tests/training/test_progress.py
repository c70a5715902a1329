"""Running loss means of the trainer: sums kept as tensors, parts counted only when present."""

from __future__ import annotations

import time

import pytest
import torch

from multitask_unet.losses import LossOutput
from multitask_unet.training.progress import accumulate, means, postfix


def _out(total: float, seg: float, cls: float, cls_present: bool) -> LossOutput:
    return LossOutput(
        total=torch.tensor(total, requires_grad=True),
        parts={"seg": torch.tensor(seg), "cls": torch.tensor(cls)},
        weights={"seg": torch.tensor(1.0), "cls": torch.tensor(0.3)},
        present={"seg": torch.tensor(True), "cls": torch.tensor(cls_present)},
    )


def test_means_average_each_part_over_the_batches_that_had_its_target() -> None:
    sums: dict = {}
    accumulate(sums, _out(1.0, 0.8, 0.5, True))
    # A batch without classification targets; its (undefined) part must not count, not even NaN.
    accumulate(sums, _out(3.0, 2.0, float("nan"), False))
    accumulate(sums, _out(2.0, 1.1, 1.5, True))
    assert all(isinstance(v, torch.Tensor) for k, v in sums.items() if k != "n")
    assert not sums["loss"].requires_grad  # detached: no graph kept alive across steps
    got = means(sums)
    assert got == pytest.approx({"loss": 2.0, "loss/seg": 1.3, "loss/cls": 1.0})


def test_a_part_no_batch_had_is_left_out() -> None:
    sums: dict = {}
    accumulate(sums, _out(1.0, 0.5, float("nan"), False))
    assert means(sums) == pytest.approx({"loss": 1.0, "loss/seg": 0.5})


def test_postfix_shows_the_means_rate_and_time_left() -> None:
    sums: dict = {}
    accumulate(sums, _out(1.0, 0.5, 0.25, True))
    post = postfix(sums, done=10, left=20, batch_size=2, started=time.perf_counter() - 10.0)
    assert post["loss"] == "1.000" and post["seg"] == "0.500" and post["cls"] == "0.250"
    assert float(post["samples/s"]) == pytest.approx(2.0, rel=0.05)
    assert post["left"] in ("0:00:19", "0:00:20")
