"""Subprocess of the resume test: trains, announcing every step, and stalls mid-epoch on demand.

Usage: python _train_child.py PREPARED_JSON RUN_DIR CONFIG_JSON [--pause-epoch E] [--scaler]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import _helpers

import multitask_unet.training.trainer as trainer_module
from multitask_unet.training import TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument("prepared")
parser.add_argument("run_dir", type=Path)
parser.add_argument("config")
parser.add_argument("--pause-epoch", type=int, default=-1)
parser.add_argument("--scaler", action="store_true", help="force an enabled AMP grad scaler")
args = parser.parse_args()
if args.scaler:
    torch.amp.GradScaler = _helpers.force_grad_scaler()

torch.set_num_threads(1)
cfg = TrainConfig.from_json(args.config)
steps = 0
accumulate = trainer_module.accumulate


def announce(sums: dict, out: object) -> None:
    """Count the steps; stall in the middle of epoch ``--pause-epoch`` for the kill."""
    global steps
    accumulate(sums, out)
    epoch, it = divmod(steps, cfg.optimization.iterations_per_epoch)
    steps += 1
    print(f"step {epoch} {it}", flush=True)
    if epoch == args.pause_epoch and it == 1:
        time.sleep(120)


trainer_module.accumulate = announce
prepared = _helpers.Prepared.from_json(args.prepared)
_helpers.trainer(prepared, args.run_dir, cfg).fit()
