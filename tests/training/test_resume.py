"""Exact resumption: a run killed with SIGKILL mid-epoch and resumed ends with the same weights,
the same AMP scaler state and the same learned loss weights.

Checkpoints are written at epoch boundaries; an epoch's batches depend only on (seed, epoch,
rank), and the checkpoint restores the optimiser, the schedule, the loss state and every RNG.
The test trains with ``num_workers=0`` and one thread (the loader derives every patch's seed
from (seed, epoch, rank, position), so workers would give the same batches, but are slower to
start in a test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import Prepared, config, final_weights, force_grad_scaler, trainer

import multitask_unet.training.fit_parts as fit_parts
from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.training.metrics import read_metrics

CHILD = Path(__file__).with_name("_train_child.py")


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(
        model={"preset": "tiny_plain", "head": "panda", "head_options": {"dropout": 0.2}},
        loss={"uncertainty": True},  # learned loss weights, saved with the training state
        epochs=2,
        iterations_per_epoch=3,
    )
    monkeypatch.setattr(torch.amp, "GradScaler", force_grad_scaler())  # as in the child
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(CHILD), prepared.to_json(), str(killed), cfg.to_json()]
    child = subprocess.Popen(
        [*command, "--pause-epoch", "1", "--scaler"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "step 1 1":  # epoch 1 (0-based) is half done
                break
        else:
            raise AssertionError(f"the child ended early with code {child.wait()}")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    state = load_checkpoint(killed / "checkpoints" / "last.pt").training
    assert state is not None and state["epoch"] == 0  # only epoch 0 was saved

    trainer(prepared, killed, cfg).fit(resume=True)
    uninterrupted = tmp_path / "uninterrupted"
    trainer(prepared, uninterrupted, cfg).fit()

    resumed, reference = final_weights(killed), final_weights(uninterrupted)
    assert resumed.keys() == reference.keys()
    different = [k for k in reference if not torch.equal(resumed[k], reference[k])]
    assert not different, f"weights differ after resuming: {different[:5]}"
    ours, theirs = (load_checkpoint(r / "checkpoints" / "last.pt").training
                    for r in (killed, uninterrupted))  # fmt: skip
    assert ours["scaler"] == theirs["scaler"] and ours["scaler"]["scale"] > 2.0**8  # it grew
    assert _same(ours["loss"], theirs["loss"])
    log_vars = [v for k, v in _tensors(ours["loss"]) if "log_var" in k]
    assert log_vars and any(bool(v.ne(0).any()) for v in log_vars)  # the learned weights moved
    rows = read_metrics(killed / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert [r["loss"] for r in rows] == [
        r["loss"] for r in read_metrics(uninterrupted / "metrics.csv")
    ]


def _tensors(state, prefix: str = ""):
    """``(name, tensor)`` of every tensor in a nested state dict."""
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))


def _same(a, b) -> bool:
    """Equal nested states: tensors bitwise, everything else by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("restore_rng", [True, False])
def test_rng_states_make_the_difference(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_rng: bool
) -> None:
    """Stopped by the time limit after epoch 0 and resumed: exact only with the RNG restored
    (the head's dropout draws from torch's generator)."""
    cfg = config(
        model={"preset": "tiny_plain", "head": "panda", "head_options": {"dropout": 0.5}},
        epochs=2,
        iterations_per_epoch=2,
    )
    trainer(prepared, tmp_path / "ref", cfg).fit()
    if not restore_rng:
        monkeypatch.setattr(fit_parts, "set_rng_state", lambda state: torch.manual_seed(1))
    stopped = trainer(
        prepared,
        tmp_path / "run",
        cfg.replace(runtime={"time_limit_minutes": 0.0, "on_time_limit": "stop"}),
    ).fit()
    assert stopped.epochs == 1
    trainer(prepared, tmp_path / "run", cfg).fit(resume=True)
    a, b = final_weights(tmp_path / "ref"), final_weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a) == restore_rng
