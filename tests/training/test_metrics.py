"""metrics.csv (atomic, resumable), curves.png and the RNG state helpers."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import torch

from multitask_unet.training.metrics import MetricsLog, read_metrics
from multitask_unet.training.state import rng_state, set_rng_state


def test_csv_rows_resume_and_plot(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    for epoch in range(3):
        log.append({"epoch": epoch, "loss": 1.0 / (epoch + 1), "loss/seg": 0.5})
    log.append({"epoch": 3, "loss": 0.2, "val/dice_lesion": 0.7})
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert "val/dice_lesion" not in rows[0] and rows[3]["val/dice_lesion"] == 0.7
    assert log.plot() == tmp_path / "curves.png"
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left

    resumed = MetricsLog(tmp_path, tensorboard=False)
    resumed.resume(2)  # the checkpoint holds epochs 0 and 1: epochs 2 and 3 are redone
    resumed.append({"epoch": 2, "loss": 0.9})
    assert [r["loss"] for r in read_metrics(tmp_path / "metrics.csv")] == [1.0, 0.5, 0.9]


def _png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]  # the IHDR chunk's width


def test_curves_show_the_schedule_and_leave_out_an_empty_validation_panel(tmp_path: Path):
    import matplotlib

    from multitask_unet.training.metrics import plot_curves

    backend = matplotlib.get_backend()
    rows = [{"epoch": e, "loss": 1 / (e + 1), "lr": 0.01 * (1 - e / 4), "epoch_seconds": 3.0}
            for e in range(4)]  # fmt: skip
    unvalidated = plot_curves(rows, tmp_path / "a.png")
    rows[-1]["val/dice_whole"] = 0.8
    validated = plot_curves(rows, tmp_path / "b.png")
    assert _png_width(validated) > 1.3 * _png_width(unvalidated)  # a third panel, for val/
    assert matplotlib.get_backend() == backend  # the caller's backend is left alone


def test_rng_state_restores_every_generator() -> None:
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    set_rng_state(state)
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(2), expected[2])


def test_rng_state_survives_weights_only_load(tmp_path: Path) -> None:
    torch.save(rng_state(), tmp_path / "rng.pt")
    state = torch.load(tmp_path / "rng.pt", weights_only=True)
    set_rng_state(state)
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)
