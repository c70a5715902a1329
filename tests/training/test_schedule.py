"""Optimiser and poly schedule, side by side with nnU-Net's ``PolyLRScheduler``."""

from __future__ import annotations

import io

import pytest
import torch

from _references import require
from multitask_unet.training import OptimizerConfig, PolyLR, build_optimizer


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize(("epochs", "exponent"), [(10, 0.9), (7, 2.0), (1000, 0.9)])
def test_poly_lr_matches_nnunet_epoch_by_epoch(epochs: int, exponent: float) -> None:
    polylr = require("nnunetv2.training.lr_scheduler.polylr")
    ours = build_optimizer(_params(), OptimizerConfig())
    theirs = torch.optim.SGD(_params(), lr=0.01, momentum=0.99, nesterov=True)
    scheduler = PolyLR(ours, epochs, exponent=exponent)
    reference = polylr.PolyLRScheduler(theirs, 0.01, epochs, exponent=exponent)
    for epoch in range(epochs):  # nnUNetTrainer.on_train_epoch_start: step(current_epoch)
        scheduler.step(epoch)
        reference.step(epoch)
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)


def test_sgd_defaults_are_nnunets() -> None:
    group = build_optimizer(_params(), OptimizerConfig()).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        0.01,
        0.99,
        True,
        3e-5,
    )


def test_adamw_option() -> None:
    optimizer = build_optimizer(_params(), OptimizerConfig(name="adamw", lr=1e-3))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 3e-5


def test_scheduler_state_round_trips_through_weights_only_load() -> None:
    optimizer = build_optimizer(_params(), OptimizerConfig())
    scheduler = PolyLR(optimizer, 20)
    scheduler.step(7)
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh_optimizer = build_optimizer(_params(), OptimizerConfig())
    fresh = PolyLR(fresh_optimizer, 20)
    fresh.load_state_dict(state["scheduler"])
    fresh.step()
    scheduler.step()
    assert fresh.last_epoch == scheduler.last_epoch == 8
    assert fresh.get_last_lr() == scheduler.get_last_lr()
