"""The CUDA paths: AMP training, checkpoints across devices, prediction and budget planning.

Skipped without a GPU (the CI machine has none); run on a lent GPU with
``pytest tests/training/test_cuda.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import Prepared, config, trainer

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.data.readers import read_dataset
from multitask_unet.inference import Predictor
from multitask_unet.losses import DeepSupervisionLoss, DiceCELoss
from multitask_unet.models import create_model
from multitask_unet.training.budget import BudgetSearch, plan_for_budget
from multitask_unet.training.metrics import read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _exact_float32() -> None:
    """Compare CUDA with CPU in true float32 (no TF32 matrix units)."""
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("preset", ["tiny_plain", "tiny_residual"])
def test_forward_and_loss_equal_the_cpu(preset: str) -> None:
    torch.manual_seed(0)
    heads = {"cls": ("panda", {"num_classes": 3})}
    model = create_model(
        preset, in_channels=1, num_classes=3, heads=heads
    )  # train mode: deep outputs too
    x = torch.randn(2, 1, 32, 32, 32)
    target = torch.randint(0, 3, (2, 1, 32, 32, 32))
    loss = DeepSupervisionLoss(DiceCELoss())
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda())
        cpu_loss = loss([cpu["seg"], *cpu["seg_deep"]], target)
        gpu_loss = loss([gpu["seg"], *gpu["seg_deep"]], target.cuda())
    assert _relative(gpu["seg"].cpu(), cpu["seg"]) < 1e-4
    assert _relative(gpu["cls"].cpu(), cpu["cls"]) < 1e-4
    assert float(gpu_loss) == pytest.approx(float(cpu_loss), rel=1e-4)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_learns_and_its_checkpoint_loads_on_the_cpu(
    prepared: Prepared, tmp_path: Path, amp: str
) -> None:
    cfg = config(
        device="cuda", amp=amp, optimizer={"name": "adamw", "lr": 0.01}, epochs=4,
        iterations_per_epoch=4, val_every=2,
    )  # fmt: skip
    trainer(prepared, tmp_path, cfg, val=True).fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    losses = [r["loss/seg"] for r in rows]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")  # weights saved from the GPU
    assert all(t.device.type == "cpu" for t in ckpt.state_dict.values())
    state = ckpt.training
    assert state is not None and ("scale" in state["scaler"]) == (amp == "fp16")


@pytest.mark.parametrize("mode", ["auto", "reduce-overhead"])
def test_compiled_training_learns_and_saves_the_plain_module(
    prepared: Prepared, tmp_path: Path, mode: str
) -> None:
    cfg = config(
        device="cuda", compile=mode, optimizer={"name": "adamw", "lr": 0.01}, epochs=4,
        iterations_per_epoch=4, val_every=2,
    )  # fmt: skip
    trainer(prepared, tmp_path, cfg, val=True).fit()
    losses = [r["loss/seg"] for r in read_metrics(tmp_path / "metrics.csv")]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert not [k for k in ckpt.state_dict if "_orig_mod" in k]  # loads into a plain model
    assert ckpt.training is not None and ckpt.training["optimizer"]["param_groups"][0]["fused"]


def test_prediction_on_the_gpu_equals_the_cpu(prepared: Prepared, tmp_path: Path) -> None:
    cfg = config(device="cuda", optimizer={"name": "adamw", "lr": 0.01}, epochs=2)
    trainer(prepared, tmp_path, cfg).fit()
    record = read_dataset(prepared.data).split("validation").records[0]
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    cpu = Predictor.from_checkpoint(checkpoint, device="cpu").predict_case(record)
    gpu = Predictor.from_checkpoint(checkpoint, device="cuda").predict_case(record)
    assert np.mean(gpu.segmentation == cpu.segmentation) > 0.999
    np.testing.assert_allclose(gpu.probabilities, cpu.probabilities, atol=1e-4)


def test_budget_planner_times_trial_steps_on_the_gpu(prepared: Prepared) -> None:
    search = BudgetSearch.for_device(
        "cuda", presets=("tiny_plain",), patch_voxels=(16**3, 32**3), min_iterations=10
    )
    plan = plan_for_budget(prepared.plan.fingerprint, "2m", device="cuda", search=search)
    budget = plan.budget
    assert budget is not None and budget.device.startswith("cuda")
    measured = [c for c in budget.candidates if c.step_seconds is not None]
    assert measured and all(0 < c.step_seconds < 10 for c in measured)
