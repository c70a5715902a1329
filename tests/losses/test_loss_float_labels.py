"""Float label maps: integers (1.0) are labels; 1.5 (linear resampling) is a DataError, not 1."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.errors import DataError
from multitask_unet.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    SoftDiceLoss,
    check_labels,
    labels_checked,
)

SEG_LOSSES = [DiceCELoss(), SoftDiceLoss(), DeepSupervisionLoss(DiceCELoss())]


def _case() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 4, 5, 6, generator=gen), torch.randint(
        0, 3, (2, 1, 4, 5, 6), generator=gen
    )


def _predict(loss: torch.nn.Module, logits: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    return (
        [logits, logits[:, :, ::2, ::2, ::2]] if isinstance(loss, DeepSupervisionLoss) else logits
    )


@pytest.mark.parametrize("loss", SEG_LOSSES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("bad", [1.5, 0.25, float("nan")])
def test_a_non_integer_float_label_is_a_data_error(loss: torch.nn.Module, bad: float) -> None:
    logits, target = _case()
    target = target.float()
    target[1, 0, 2, 3, 4] = bad
    with pytest.raises(DataError, match=rf"label {bad!r}.*nearest-neighbour interpolation"):
        loss(_predict(loss, logits), target)


@pytest.mark.parametrize("loss", SEG_LOSSES, ids=lambda m: type(m).__name__)
def test_integral_float_labels_equal_integer_labels(loss: torch.nn.Module) -> None:
    logits, target = _case()
    for dtype in (torch.float32, torch.float16, torch.float64):
        torch.testing.assert_close(
            loss(_predict(loss, logits), target.to(dtype)), loss(_predict(loss, logits), target)
        )


def test_a_sample_left_out_by_valid_is_not_checked() -> None:
    logits, target = _case()
    target = target.float()
    target[1] = 1.5  # a sample without a label map holds anything
    valid = torch.tensor([True, False])
    expected = DiceCELoss()(logits[:1], target[:1].long())
    torch.testing.assert_close(DiceCELoss()(logits, target, valid=valid), expected)


def test_check_labels_rejects_non_integer_floats_and_labels_checked_skips_it() -> None:
    _, target = _case()
    target = target.float()
    target[0, 0, 0, 0, 0] = 2.5
    with pytest.raises(
        DataError, match=r"batch: the label map \(torch.float32\) holds the label 2.5"
    ):
        check_labels(target, 3, "batch")
    with labels_checked():
        check_labels(target, 3, "batch")
    check_labels(target.round().clamp(max=2), 3, "batch")  # integral floats pass
