"""DiceCELoss / SoftDiceLoss against nnU-Net v2's DC_and_CE_loss, run side by side."""

from __future__ import annotations

import pytest
import torch

from _references import reference
from multitask_unet.errors import DataError, ShapeError
from multitask_unet.losses import DiceCELoss, SoftDiceLoss, check_labels, labels_checked

nn_compound = reference("nnunetv2.training.loss.compound_losses")
nn_dice = reference("nnunetv2.training.loss.dice")
nn_helpers = reference("nnunetv2.utilities.helpers")

TOL = 1e-5


def nnunet_dc_ce(*, batch_dice: bool = False, ignore_label: int | None = None, **dice_kwargs):
    """nnU-Net's loss exactly as nnUNetTrainer._build_loss builds it for label maps (no DDP)."""
    kwargs = {"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}
    kwargs.update(dice_kwargs)
    return nn_compound.DC_and_CE_loss(
        kwargs,
        {},
        weight_ce=1,
        weight_dice=1,
        ignore_label=ignore_label,
        dice_class=nn_dice.MemoryEfficientSoftDiceLoss,
    )


def make_case(
    shape: tuple[int, ...], num_classes: int, *, seed: int, present: tuple[int, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits (B, C, *S) and labels (B, 1, *S) drawn from ``present`` (default: all)."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(shape[0], num_classes, *shape[1:], generator=gen)
    labels = torch.tensor(present if present is not None else range(num_classes))
    index = torch.randint(0, len(labels), (shape[0], 1, *shape[1:]), generator=gen)
    return logits, labels[index]


def value_and_grad(loss, logits, target, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target, **kwargs)
    value.backward()
    return value.detach(), x.grad


CASES = [
    # (spatial shape with batch, classes, labels present)
    ((2, 5, 6, 7), 3, None),  # odd, anisotropic 3D
    ((3, 4, 5, 6), 4, (0, 2)),  # classes 1 and 3 absent from the whole batch
    ((2, 4, 6, 5), 3, (0,)),  # background-only patches
    ((2, 9, 11), 3, (0, 1)),  # 2D
]


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize(("shape", "num_classes", "present"), CASES)
def test_dice_ce_equals_nnunet(shape, num_classes, present, batch_dice):
    logits, target = make_case(shape, num_classes, seed=len(shape) + num_classes, present=present)
    ref_value, ref_grad = value_and_grad(
        nnunet_dc_ce(batch_dice=batch_dice), logits, target.float()
    )
    value, grad = value_and_grad(DiceCELoss(batch_dice=batch_dice), logits, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ref_value, rtol=0, atol=TOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=TOL)


def test_defaults_are_nnunet_3d_fullres():
    loss = DiceCELoss()
    assert (loss.dice.batch_dice, loss.dice.do_bg, loss.dice.smooth, loss.dice.ddp) == (
        False,
        False,
        1e-5,
        False,
    )
    assert (loss.weight_ce, loss.weight_dice, loss.ignore_label) == (1.0, 1.0, None)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_ce_with_ignore_label_equals_nnunet(batch_dice):
    logits, target = make_case((2, 4, 5, 6), 3, seed=3)
    gen = torch.Generator().manual_seed(4)
    target[torch.rand(target.shape, generator=gen) < 0.3] = 3  # ignore label = C
    target[1] = 3  # one sample entirely ignored
    ref_value, ref_grad = value_and_grad(
        nnunet_dc_ce(batch_dice=batch_dice, ignore_label=3), logits, target.float()
    )
    value, grad = value_and_grad(DiceCELoss(batch_dice=batch_dice, ignore_label=3), logits, target)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=TOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=TOL)


@pytest.mark.parametrize("do_bg", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_soft_dice_equals_nnunet(do_bg, batch_dice, smooth):
    logits, target = make_case((3, 4, 5, 3), 4, seed=5, present=(0, 1, 3))
    ref = nn_dice.MemoryEfficientSoftDiceLoss(
        apply_nonlin=nn_helpers.softmax_helper_dim1,
        batch_dice=batch_dice,
        do_bg=do_bg,
        smooth=smooth,
        ddp=False,
    )
    ours = SoftDiceLoss(batch_dice=batch_dice, do_bg=do_bg, smooth=smooth)
    ref_value, ref_grad = value_and_grad(ref, logits, target.float())
    value, grad = value_and_grad(ours, logits, target)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=TOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=TOL)


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("mask", [(True, False, True), (False, True, False)])
def test_valid_equals_nnunet_on_the_valid_samples(batch_dice, mask):
    logits, target = make_case((3, 4, 5, 6), 3, seed=6, present=(0, 2))
    valid = torch.tensor(mask)
    target[~valid] = -1  # whatever a missing label map holds must not matter
    ref = nnunet_dc_ce(batch_dice=batch_dice)(logits[valid], target[valid].float())
    value, grad = value_and_grad(DiceCELoss(batch_dice=batch_dice), logits, target, valid=valid)
    torch.testing.assert_close(value, ref, rtol=0, atol=TOL)
    assert torch.all(grad[~valid] == 0)
    assert torch.any(grad[valid] != 0)


@pytest.mark.parametrize("loss", [DiceCELoss(), DiceCELoss(batch_dice=True), SoftDiceLoss()])
def test_no_valid_sample_gives_zero_and_finite_gradients(loss):
    logits, target = make_case((2, 3, 4, 5), 3, seed=7)
    value, grad = value_and_grad(loss, logits, target, valid=torch.tensor([False, False]))
    assert value.item() == 0.0
    assert torch.all(grad == 0)


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: t[:, 0],
        lambda t: t.float(),
        lambda t: t.to(torch.int16),
        lambda t: t.to(torch.uint8),
    ],
)
def test_target_layouts_and_dtypes_agree(transform):
    logits, target = make_case((2, 3, 4, 5), 3, seed=8)
    loss = DiceCELoss()
    torch.testing.assert_close(loss(logits, transform(target)), loss(logits, target))


def test_value_respects_lower_bound_and_reaches_it():
    _, target = make_case((2, 3, 4, 5), 3, seed=9)
    perfect = 50 * torch.zeros(2, 3, 3, 4, 5).scatter_(1, target, 1.0)
    loss = DiceCELoss()
    value = loss(perfect, target).item()
    assert loss.lower_bound == -1.0
    assert loss.lower_bound - 1e-6 <= value < loss.lower_bound + 1e-4


@pytest.mark.parametrize(
    ("logits_shape", "target_shape"),
    [((2, 3, 4, 5, 6), (2, 1, 4, 5, 7)), ((2, 3, 4, 5, 6), (2, 2, 4, 5, 6)), ((2, 3), (2,))],
)
def test_shape_errors_name_the_shapes(logits_shape, target_shape):
    with pytest.raises(ShapeError, match=r"\(2,"):
        DiceCELoss()(torch.randn(logits_shape), torch.zeros(target_shape, dtype=torch.long))


@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_labels_are_data_errors(bad):
    target = torch.zeros(1, 1, 2, 3, 4, dtype=torch.long)
    target[0, 0, 1, 1, 1] = bad
    with pytest.raises(DataError, match=f"label {bad}"):
        DiceCELoss()(torch.randn(1, 3, 2, 3, 4), target)


def test_labels_checked_skips_only_the_range_check_and_only_inside_the_block():
    good = torch.randint(0, 3, (1, 1, 2, 3, 4))
    bad = good.clone()
    bad[0, 0, 0, 0, 0] = 3
    logits = torch.randn(1, 3, 2, 3, 4)
    with labels_checked():
        check_labels(bad, 3, "test")  # skipped: the caller vouches for the labels
        inside = DiceCELoss()(logits, good)
        with pytest.raises(ShapeError):  # shape checks still run
            DiceCELoss()(logits, good[..., :2])
    assert float(inside) == pytest.approx(float(DiceCELoss()(logits, good)))
    with pytest.raises(DataError, match="label 3"):  # and range checks are back after it
        check_labels(bad, 3, "test")


def test_bad_valid_is_a_shape_error():
    logits, target = make_case((2, 3, 4, 5), 3, seed=10)
    with pytest.raises(ShapeError, match="valid"):
        DiceCELoss()(logits, target, valid=torch.tensor([True, False, True]))
