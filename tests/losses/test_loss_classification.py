"""Classification losses: agreement with torch / torchvision / scikit-learn, missing labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _references import require
from multitask_unet.errors import ConfigError, DataError, RegistryError, ShapeError
from multitask_unet.losses import (
    LOSSES,
    CrossEntropyLoss,
    FocalLoss,
    OneVsRestBCELoss,
    class_weights,
    create_loss,
    pos_weights,
)

K = 4


def batch(seed: int, *, batch_size: int = 6, missing: tuple[int, ...] = (1, 4)):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(batch_size, K, generator=gen)
    target = torch.randint(0, K, (batch_size,), generator=gen)
    target[list(missing)] = -1
    return logits, target


def value_and_grad(loss, logits, target, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target, **kwargs)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0, 3.0]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_equals_torch_on_labelled_samples(weight, label_smoothing):
    logits, target = batch(0)
    keep = target >= 0
    w = None if weight is None else torch.tensor(weight)
    ref = F.cross_entropy(logits[keep], target[keep], weight=w, label_smoothing=label_smoothing)
    value, grad = value_and_grad(
        CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing), logits, target
    )
    torch.testing.assert_close(value, ref)
    assert torch.all(grad[~keep] == 0)


@pytest.mark.parametrize(
    "loss",
    [CrossEntropyLoss(), CrossEntropyLoss(weight=[1, 2, 3, 4]), FocalLoss(), OneVsRestBCELoss()],
    ids=["ce", "ce_weighted", "focal", "bce_ovr"],
)
def test_every_label_missing_gives_zero_not_nan(loss):
    logits, target = batch(1, missing=tuple(range(6)))
    value, grad = value_and_grad(loss, logits, target)
    assert value.item() == 0.0
    assert torch.all(grad == 0)
    # valid=... masks the same way as -1
    logits, target = batch(1, missing=())
    value, _ = value_and_grad(loss, logits, target, valid=torch.zeros(6, dtype=torch.bool))
    assert value.item() == 0.0


def test_valid_and_missing_combine():
    logits, target = batch(2)
    valid = torch.tensor([True, True, False, True, True, True])
    keep = (target >= 0) & valid
    ref = F.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(CrossEntropyLoss()(logits, target, valid=valid), ref)


@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0, 3.0]])
def test_focal_with_gamma_zero_is_cross_entropy(weight):
    logits, target = batch(3)
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, weight=weight)(logits, target),
        CrossEntropyLoss(weight=weight)(logits, target),
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_two_classes_equals_torchvision_sigmoid_focal(gamma):
    ops = require("torchvision.ops", reason="torchvision is not installed")
    # softmax over (0, z) is sigmoid(z): the 2-class focal loss is torchvision's binary one
    gen = torch.Generator().manual_seed(4)
    z = 3 * torch.randn(8, generator=gen)
    target = torch.randint(0, 2, (8,), generator=gen)
    logits = torch.stack([torch.zeros_like(z), z], dim=1)
    ref = ops.sigmoid_focal_loss(z, target.float(), alpha=-1, gamma=gamma, reduction="mean")
    torch.testing.assert_close(FocalLoss(gamma=gamma)(logits, target), ref)


def test_focal_down_weights_easy_samples():
    logits, target = batch(5, missing=())
    ce = CrossEntropyLoss()(logits, target)
    values = [FocalLoss(gamma=g)(logits, target) for g in (0.5, 1.0, 2.0, 5.0)]
    assert all(v < ce for v in values)
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("pos_weight", [None, [1.0, 3.0, 0.5, 2.0]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_ovr_bce_equals_torch_on_one_hot(pos_weight, label_smoothing):
    logits, target = batch(6)
    keep = target >= 0
    onehot = F.one_hot(target[keep], K).float()
    onehot = onehot * (1 - label_smoothing) + label_smoothing / 2
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    ref = F.binary_cross_entropy_with_logits(logits[keep], onehot, pos_weight=pw)
    loss = OneVsRestBCELoss(pos_weight=pos_weight, label_smoothing=label_smoothing)
    value, grad = value_and_grad(loss, logits, target)
    torch.testing.assert_close(value, ref)
    assert torch.all(grad[~keep] == 0)


def test_inverse_class_weights_equal_sklearn_balanced():
    utils = require("sklearn.utils", reason="scikit-learn is not installed")
    labels = [0] * 50 + [1] * 7 + [2] * 20 + [3] * 3
    counts = torch.bincount(torch.tensor(labels))
    expected = utils.compute_class_weight("balanced", classes=np.arange(4), y=np.array(labels))
    torch.testing.assert_close(class_weights(counts), torch.tensor(expected, dtype=torch.float32))


def test_inverse_sqrt_class_weights():
    counts = torch.tensor([50.0, 8.0, 18.0, 2.0])
    weights = class_weights(counts.tolist(), class_weights="inverse_sqrt")
    torch.testing.assert_close((weights * counts).sum(), counts.sum())  # mean sample weight 1
    torch.testing.assert_close(weights / weights[0], (counts[0] / counts).sqrt())


@pytest.mark.parametrize(
    ("counts", "weighting", "match"),
    [
        ([3, 0, 2], "inverse", r"class\(es\) \[1\]"),
        ([], "inverse", "non-empty"),
        ([2, 3], "log", "class_weights"),
    ],
)
def test_class_weight_errors(counts, weighting, match):
    with pytest.raises(ConfigError, match=match):
        class_weights(counts, class_weights=weighting)


def test_pos_weights_balance_positives_and_negatives_of_every_class():
    counts = torch.tensor([50.0, 8.0, 18.0, 2.0])
    weights = pos_weights(counts.tolist())
    negatives = counts.sum() - counts
    torch.testing.assert_close(weights * counts, negatives)  # weighted positives = negatives
    torch.testing.assert_close(pos_weights(counts, class_weights="inverse_sqrt") ** 2, weights)
    torch.testing.assert_close(pos_weights(counts, class_weights="none"), torch.ones(4))


@pytest.mark.parametrize(
    ("counts", "weighting", "match"),
    [
        ([3, 0, 2], "balanced", r"class\(es\) \[1\] have no sample \(counts \[3, 0, 2\]\)"),
        ([5], "balanced", "at least 2 classes"),
        ([2, 3], "inverse", "class_weights must be"),
    ],
)
def test_pos_weight_errors(counts, weighting, match):
    with pytest.raises(ConfigError, match=match):
        pos_weights(counts, class_weights=weighting)


@pytest.mark.parametrize("loss_cls", [CrossEntropyLoss, FocalLoss, OneVsRestBCELoss])
def test_target_errors(loss_cls):
    logits, target = batch(7)
    loss = loss_cls()
    with pytest.raises(DataError, match="class 4"):
        loss(logits, torch.tensor([0, 1, 4, 2, -1, 0]))
    with pytest.raises(DataError, match="class -2"):
        loss(logits, torch.tensor([0, 1, -2, 2, -1, 0]))
    with pytest.raises(ShapeError, match="integer"):
        loss(logits, target.float())
    with pytest.raises(ShapeError, match=r"\(6,\)"):
        loss(logits, target[:, None])
    with pytest.raises(ShapeError, match=r"\(B, K\)"):
        loss(logits[:, :, None], target)


def test_weight_count_must_match_classes():
    logits, target = batch(8)
    with pytest.raises(ShapeError, match="3 class weights"):
        CrossEntropyLoss(weight=[1.0, 2.0, 3.0])(logits, target)
    with pytest.raises(ConfigError, match="weight"):
        CrossEntropyLoss(weight=[1.0, -2.0, 3.0, 1.0])
    with pytest.raises(ConfigError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.0)


def test_weights_follow_the_module_device_and_dtype():
    loss = CrossEntropyLoss(weight=[1.0, 2.0, 3.0, 4.0]).double()
    logits, target = batch(9)
    torch.testing.assert_close(
        loss(logits, target), CrossEntropyLoss(weight=[1, 2, 3, 4])(logits, target)
    )
    assert "weight" in loss.state_dict()


@pytest.mark.parametrize(
    ("name", "cls"),
    [("ce", CrossEntropyLoss), ("focal", FocalLoss), ("bce_ovr", OneVsRestBCELoss)],
)
def test_registry_builds_classification_losses(name, cls):
    assert name in LOSSES
    assert type(create_loss(name)) is cls


def test_registry_errors():
    with pytest.raises(RegistryError, match="Did you mean 'focal'"):
        create_loss("focall")
    with pytest.raises(ConfigError, match="'ce'"):
        create_loss("ce", gamma=2.0)
