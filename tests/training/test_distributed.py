"""``torchrun --nproc_per_node 2 multitask-unet train`` on the CPU (gloo) against one process.

Both runs see the same global batches: the balanced case sampler draws one sequence per epoch
and rank r takes every other draw, so the two ranks' batches of 2 together are the single
process's batch of 4. With augmentation off, patches as large as the 16^3 cases and no
foreground oversampling (nnU-Net centres those patches on a voxel, padding past the border),
patches do not depend on the rank either. Every loss term is a mean over samples (Dice per sample,
no batch Dice; instance norm), so DDP's averaged gradients equal the single process's up to
floating-point summation order. Stated tolerance: per-epoch mean losses agree within 1e-4
relative after 3 epochs of SGD with momentum 0.99 (measured: at most 5e-7).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import Prepared, config, trainer

from multitask_unet.training.metrics import read_metrics

RTOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_follow_the_single_process_loss_curve(
    prepared: Prepared, tmp_path: Path
) -> None:
    cfg = config(batch_size=4, epochs=3, iterations_per_epoch=2, foreground_probability=0.0)
    (tmp_path / "train.yaml").write_text(cfg.to_yaml())
    ddp_run = tmp_path / "ddp"
    ddp_run.mkdir()
    shutil.copy(prepared.cache / "plan.json", ddp_run / "plan.json")  # skip re-planning
    script = shutil.which("multitask-unet", path=str(Path(sys.executable).parent))
    assert script, "the multitask-unet console script is not installed next to python"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        script, "train", str(prepared.data), "-o", str(ddp_run),
        "--config", str(tmp_path / "train.yaml"), "--cache", str(prepared.cache),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 3 epoch(s)") == 1  # printed by rank 0 alone
    log = (ddp_run / "train.log").read_text()  # rank 0's copy of what was printed
    assert log.startswith("# ") and " multitask-unet train " in log.splitlines()[0]
    assert log.count("trained 3 epoch(s)") == 1 and "\r" not in log

    single = tmp_path / "single"
    trainer(prepared, single, cfg).fit()
    ddp_rows = read_metrics(ddp_run / "metrics.csv")
    single_rows = read_metrics(single / "metrics.csv")
    assert [r["epoch"] for r in ddp_rows] == [0, 1, 2]
    for key in ("loss", "loss/seg", "loss/cls"):
        ddp_curve = [r[key] for r in ddp_rows]
        single_curve = [r[key] for r in single_rows]
        assert ddp_curve == pytest.approx(single_curve, rel=RTOL), key
    # The curve moved: agreement is not the trivial agreement of untrained networks.
    assert abs(single_rows[-1]["loss"] - single_rows[0]["loss"]) > 100 * RTOL
