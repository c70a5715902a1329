"""Losses under reduced precision: bf16 / fp16 logits and CPU autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multitask_unet.losses import (
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceCELoss,
    FocalLoss,
    MultiTaskLoss,
    OneVsRestBCELoss,
    SoftDiceLoss,
)

C, K = 3, 4
DTYPES = [torch.bfloat16, torch.float16]
AUTOCAST_ATOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3}  # observed: 5e-4 and 9e-5


def cpu_autocast_or_skip(dtype: torch.dtype) -> None:
    """Skip when this CPU build cannot run a convolution under autocast with ``dtype``."""
    try:
        with torch.autocast("cpu", dtype=dtype):
            out = nn.Conv3d(1, 1, 1)(torch.ones(1, 1, 1, 1, 1))
    except (RuntimeError, TypeError) as exc:  # pragma: no cover - depends on the torch build
        pytest.skip(f"CPU autocast with {dtype} is not supported here: {exc}")
    if out.dtype != dtype:  # pragma: no cover - depends on the torch build
        pytest.skip(f"CPU autocast with {dtype} leaves convolutions in {out.dtype} here")


class TinyNet(nn.Module):
    """Just enough of a multitask U-Net to produce outputs in the model contract."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 8, 3, padding=1)
        self.seg = nn.Conv3d(8, C, 1)
        self.cls = nn.Linear(8, K)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        feat = torch.relu(self.conv(x))
        down = nn.functional.max_pool3d(feat, 2)
        return {
            "seg": self.seg(feat),
            "seg_deep": [self.seg(down), self.seg(nn.functional.max_pool3d(down, 2))],
            "cls": self.cls(feat.amax(dim=(2, 3, 4))),
        }


def batch(seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(3, 1, 4, 8, 8, generator=gen)
    return image, {
        "seg": torch.randint(0, C, (3, 1, 4, 8, 8), generator=gen),
        "cls": torch.tensor([2, -1, 0]),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "case", ["random", "background_only", "no_cls_target", "no_seg_target", "absent_class"]
)
def test_multitask_loss_under_cpu_autocast(dtype, case):
    cpu_autocast_or_skip(dtype)
    torch.manual_seed(0)
    net = TinyNet()
    image, targets = batch(1)
    valid = None
    if case == "background_only":
        targets["seg"].zero_()
    elif case == "no_cls_target":
        targets["cls"].fill_(-1)
    elif case == "no_seg_target":
        valid = {"seg": torch.zeros(3, dtype=torch.bool)}
    elif case == "absent_class":
        targets["seg"][targets["seg"] == 1] = 2
    loss_fn = MultiTaskLoss()

    reference = loss_fn(net(image), targets, valid=valid)
    with torch.autocast("cpu", dtype=dtype):
        outputs = net(image)
        result = loss_fn(outputs, targets, valid=valid)
    assert outputs["seg"].dtype == dtype
    assert result.total.dtype == torch.float32
    assert torch.isfinite(result.total)
    torch.testing.assert_close(result.total, reference.total, rtol=0, atol=AUTOCAST_ATOL[dtype])
    result.total.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


SEG_LOSSES = [DiceCELoss(), DiceCELoss(batch_dice=True), SoftDiceLoss(do_bg=True)]
CLS_LOSSES = [CrossEntropyLoss(weight=[1, 2, 3, 4]), FocalLoss(), OneVsRestBCELoss()]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("loss", SEG_LOSSES, ids=["dice_ce", "dice_ce_batch", "dice_bg"])
def test_seg_losses_compute_in_float32(loss, dtype):
    gen = torch.Generator().manual_seed(2)
    logits = (4 * torch.randn(2, C, 3, 5, 4, generator=gen)).to(dtype)
    target = torch.randint(0, C, (2, 1, 3, 5, 4), generator=gen)
    value = loss(logits, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(logits.float(), target), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("loss", CLS_LOSSES, ids=["ce", "focal", "bce_ovr"])
def test_cls_losses_compute_in_float32(loss, dtype):
    gen = torch.Generator().manual_seed(3)
    logits = (4 * torch.randn(5, K, generator=gen)).to(dtype)
    target = torch.tensor([0, 3, -1, 2, 1])
    value = loss(logits, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(logits.float(), target), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_deep_supervision_with_low_precision_outputs(dtype):
    gen = torch.Generator().manual_seed(4)
    outputs = [torch.randn(2, C, *s, generator=gen).to(dtype) for s in ((4, 8, 8), (2, 4, 4))]
    target = torch.randint(0, C, (2, 1, 4, 8, 8), generator=gen)
    loss = DeepSupervisionLoss(DiceCELoss(), weights=(1.0, 0.5))
    value = loss(outputs, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss([o.float() for o in outputs], target), atol=1e-6, rtol=0)
