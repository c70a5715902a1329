"""build_loss: the Trainer's loss for a model, public for custom training loops."""

from __future__ import annotations

import pytest
import torch

import multitask_unet.training as training
from multitask_unet.errors import ConfigError
from multitask_unet.losses import DeepSupervisionLoss, OneVsRestBCELoss
from multitask_unet.models import MultiTaskUNet, create_model
from multitask_unet.training import TrainConfig, build_loss

OVR_CLS = {"cls": ("ovr", {"num_classes": 3})}  # a one-vs-rest head under the default name


def _model(heads: dict, *, deep_supervision: bool = True) -> MultiTaskUNet:
    return create_model("tiny_plain", num_classes=3, heads=heads, deep_supervision=deep_supervision)


def _with_terms(terms: dict) -> TrainConfig:
    return TrainConfig.from_dict({"optimization": {"loss": {"terms": terms}}})


def test_build_loss_is_public() -> None:
    assert "build_loss" in training.__all__


def test_an_ovr_head_named_cls_gets_one_vs_rest_bce() -> None:
    loss_fn = build_loss(TrainConfig(), _model(OVR_CLS))
    assert isinstance(loss_fn.losses["cls"], OneVsRestBCELoss)


@pytest.mark.parametrize("deep", [True, False])
def test_the_default_loss_trains_every_output_of_the_model(deep: bool) -> None:
    model = _model({**OVR_CLS, "cls_ce": ("panda", {"num_classes": 3})}, deep_supervision=deep)
    loss_fn = build_loss(TrainConfig(), model)  # TrainConfig() asks for deep supervision
    assert isinstance(loss_fn.losses["seg"], DeepSupervisionLoss) is deep
    outputs = model(torch.randn(2, 1, 16, 16, 16))
    labels = torch.tensor([0, 2])
    targets = {"seg": torch.randint(0, 3, (2, 1, 16, 16, 16)), "cls": labels, "cls_ce": labels}
    out = loss_fn(outputs, targets)
    out.total.backward()
    assert set(out.parts) == {"seg", "cls", "cls_ce"}
    for key in ("cls", "cls_ce"):
        assert any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads[key].parameters()
        )


def test_terms_that_leave_a_head_without_a_loss_are_an_error() -> None:
    config = _with_terms({"seg": {"loss": "dice_ce", "deep_supervision": True}})
    with pytest.raises(ConfigError, match=r"no term for the model output\(s\) \['cls'\].*bce_ovr"):
        build_loss(config, _model(OVR_CLS))


def test_terms_for_an_output_the_model_lacks_are_an_error() -> None:
    config = _with_terms(
        {
            "seg": {"loss": "dice_ce", "deep_supervision": True},
            "cls": {"loss": "bce_ovr"},
            "aux": {"loss": "ce"},
        }
    )
    with pytest.raises(ConfigError, match=r"names \['aux'\], which the model does not output"):
        build_loss(config, _model(OVR_CLS))


def test_a_loss_of_another_kind_than_the_head_is_an_error() -> None:
    config = _with_terms(
        {"seg": {"loss": "dice_ce", "deep_supervision": True}, "cls": {"loss": "ce"}}
    )
    with pytest.raises(ConfigError, match=r"terms\.cls uses 'ce'.*needs a 'bce_ovr' loss"):
        build_loss(config, _model(OVR_CLS))


def test_terms_that_fit_the_model_and_weight_zero_are_accepted() -> None:
    config = _with_terms(
        {
            "seg": {"loss": "dice_ce", "deep_supervision": True},
            "cls": {"loss": "bce_ovr", "weight": 0.0},
        }
    )
    loss_fn = build_loss(config, _model(OVR_CLS))
    assert loss_fn.static_weights == {"seg": 1.0, "cls": 0.0}


def test_an_ovr_term_weights_positives_from_the_training_counts() -> None:
    config = _with_terms(
        {
            "seg": {"loss": "dice_ce", "deep_supervision": True},
            "cls": {"loss": "bce_ovr", "weight": 0.3, "class_weights": "balanced"},
        }
    )
    loss_fn = build_loss(config, _model(OVR_CLS), class_counts=[1, 2, 3])
    torch.testing.assert_close(loss_fn.losses["cls"].pos_weight, torch.tensor([5.0, 2.0, 1.0]))
    with pytest.raises(ConfigError, match=r"class\(es\) \[2\] have no sample"):
        build_loss(config, _model(OVR_CLS), class_counts=[3, 3, 0])
