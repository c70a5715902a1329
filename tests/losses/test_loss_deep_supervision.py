"""Deep supervision against nnU-Net v2: trainer weights and scales, target downsampling, loss."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from _references import reference
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    deep_supervision_scales,
    deep_supervision_weights,
    downsample_seg_target,
)

trainer_module = reference("nnunetv2.training.nnUNetTrainer.nnUNetTrainer")
ds_module = reference("batchgeneratorsv2.transforms.utils.deep_supervision_downsampling")

POOL_KERNELS = {
    "anisotropic": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
    "isotropic5": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
    "three_stages": [[1, 1, 1], [2, 2, 1], [2, 2, 2]],
}


def nnunet_trainer_stub(pool_kernels, *, batch_dice: bool = False) -> types.SimpleNamespace:
    """Just enough of an nnUNetTrainer to run its own _build_loss and scale code unchanged."""
    stub = types.SimpleNamespace(
        enable_deep_supervision=True,
        is_ddp=False,
        configuration_manager=types.SimpleNamespace(
            pool_op_kernel_sizes=pool_kernels, batch_dice=batch_dice
        ),
        label_manager=types.SimpleNamespace(has_regions=False, ignore_label=None),
    )
    stub._do_i_compile = lambda: False
    stub._get_deep_supervision_scales = lambda: (
        trainer_module.nnUNetTrainer._get_deep_supervision_scales(stub)
    )
    return stub


@pytest.mark.parametrize("kernels", POOL_KERNELS.values(), ids=POOL_KERNELS.keys())
def test_scales_and_weights_equal_nnunet_trainer(kernels):
    stub = nnunet_trainer_stub(kernels)
    ref_scales = stub._get_deep_supervision_scales()
    ref_weights = trainer_module.nnUNetTrainer._build_loss(stub).weight_factors
    scales = deep_supervision_scales(kernels)
    np.testing.assert_allclose(np.array(scales), np.array(ref_scales, dtype=float), rtol=0, atol=0)
    np.testing.assert_allclose(deep_supervision_weights(len(scales)), ref_weights, atol=1e-12)


def test_single_output_weight_is_one():
    assert deep_supervision_weights(1) == (1.0,)
    with pytest.raises(ConfigError):
        deep_supervision_weights(0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.long, torch.float32])
@pytest.mark.parametrize(
    ("kernels", "size"), [("anisotropic", (7, 10, 13)), ("isotropic5", (9, 6, 11))]
)
def test_downsample_equals_nnunet_transform(kernels, size, dtype):
    scales = trainer_module.nnUNetTrainer._get_deep_supervision_scales(
        nnunet_trainer_stub(POOL_KERNELS[kernels])
    )
    gen = torch.Generator().manual_seed(sum(size))
    target = torch.randint(0, 4, (2, 1, *size), generator=gen).to(dtype)
    transform = ds_module.DownsampleSegForDSTransform(ds_scales=scales)
    per_sample = [transform(segmentation=sample.clone())["segmentation"] for sample in target]
    expected = [torch.stack([s[i] for s in per_sample]) for i in range(len(scales))]

    for layout in ("channel", "no_channel"):
        given = target if layout == "channel" else target[:, 0]
        got = downsample_seg_target(given, scales)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = e if layout == "channel" else e[:, 0]
            assert g.dtype == dtype
            assert torch.equal(g, e)


def test_shapes_and_scales_give_the_same_targets():
    target = torch.randint(0, 3, (2, 1, 8, 12, 12))
    by_scale = downsample_seg_target(target, [1.0, (1.0, 0.5, 0.5), (0.5, 0.25, 0.25)])
    by_shape = downsample_seg_target(target, [(8, 12, 12), (8, 6, 6), torch.Size([4, 3, 3])])
    assert by_scale[0] is target
    for a, b in zip(by_scale, by_shape):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "entries",
    [[1], [(1.0, 0.5)], [(8, 6)], [2.0], "0.5", [(0.5, 4, 4)]],
)
def test_downsample_rejects_ambiguous_or_bad_entries(entries):
    with pytest.raises(ShapeError):
        downsample_seg_target(torch.zeros(2, 1, 8, 12, 12, dtype=torch.long), entries)


def make_outputs(kernels, size, num_classes, seed):
    """Random network outputs fine to coarse, shaped as nnU-Net's for the given pool kernels."""
    gen = torch.Generator().manual_seed(seed)
    scales = deep_supervision_scales(kernels)
    shapes = [tuple(round(n * s) for n, s in zip(size, scale)) for scale in scales]
    return [3 * torch.randn(2, num_classes, *shape, generator=gen) for shape in shapes]


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize(
    ("kernels", "size", "present"),
    [
        ("anisotropic", (4, 8, 8), (0, 1, 2)),
        ("isotropic5", (16, 16, 16), (0, 2)),
        ("three_stages", (6, 6, 4), (0,)),
    ],
)
def test_deep_supervision_loss_equals_nnunet(kernels, size, present, batch_dice):
    outputs = make_outputs(POOL_KERNELS[kernels], size, 3, seed=len(kernels))
    labels = torch.tensor(present)
    gen = torch.Generator().manual_seed(1)
    target = labels[torch.randint(0, len(present), (2, 1, *size), generator=gen)]

    stub = nnunet_trainer_stub(POOL_KERNELS[kernels], batch_dice=batch_dice)
    ref_loss = trainer_module.nnUNetTrainer._build_loss(stub)
    transform = ds_module.DownsampleSegForDSTransform(ds_scales=stub._get_deep_supervision_scales())
    per_sample = [transform(segmentation=t.clone())["segmentation"] for t in target]
    ref_targets = [torch.stack([s[i] for s in per_sample]).float() for i in range(len(outputs))]

    ref_inputs = [o.clone().requires_grad_(True) for o in outputs]
    ref = ref_loss(ref_inputs, ref_targets)
    ref.backward()

    inputs = [o.clone().requires_grad_(True) for o in outputs]
    value = DeepSupervisionLoss(DiceCELoss(batch_dice=batch_dice))(inputs, target)
    value.backward()

    torch.testing.assert_close(value, ref.float(), rtol=0, atol=1e-5)
    for ours, theirs in zip(inputs, ref_inputs):
        if theirs.grad is None:  # the weight-0 output: nnU-Net skips it, we keep a zero gradient
            assert torch.all(ours.grad == 0)
        else:
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=1e-6)


def test_list_targets_and_single_output():
    outputs = make_outputs(POOL_KERNELS["anisotropic"], (4, 8, 8), 3, seed=2)
    target = torch.randint(0, 3, (2, 1, 4, 8, 8))
    loss = DeepSupervisionLoss(DiceCELoss())
    targets = downsample_seg_target(target, [o.shape[2:] for o in outputs])
    torch.testing.assert_close(loss(outputs, targets), loss(outputs, target))
    torch.testing.assert_close(loss(outputs[0], target), DiceCELoss()(outputs[0], target))


def test_custom_weights_and_valid_pass_through():
    outputs = make_outputs(POOL_KERNELS["anisotropic"], (4, 8, 8), 3, seed=3)
    target = torch.randint(0, 3, (2, 1, 4, 8, 8))
    valid = torch.tensor([False, True])
    inner = DiceCELoss()
    targets = downsample_seg_target(target, [o.shape[2:] for o in outputs])
    expected = sum(
        w * inner(o, t, valid=valid) for w, o, t in zip((1.0, 0.5, 0.25), outputs, targets)
    )
    got = DeepSupervisionLoss(inner, weights=(1.0, 0.5, 0.25))(outputs, target, valid=valid)
    torch.testing.assert_close(got, expected)


def test_errors():
    outputs = make_outputs(POOL_KERNELS["anisotropic"], (4, 8, 8), 3, seed=4)
    target = torch.randint(0, 3, (2, 1, 4, 8, 8))
    with pytest.raises(ConfigError, match="2 weights but got 3 outputs"):
        DeepSupervisionLoss(DiceCELoss(), weights=(1.0, 0.5))(outputs, target)
    with pytest.raises(ConfigError, match="non-zero"):
        DeepSupervisionLoss(DiceCELoss(), weights=(0.0, 0.0))
    with pytest.raises(ShapeError, match="fine to coarse"):
        DeepSupervisionLoss(DiceCELoss())(outputs[::-1], target)
    with pytest.raises(ShapeError, match="3 outputs but 2 targets"):
        DeepSupervisionLoss(DiceCELoss())(outputs, [target, target])
