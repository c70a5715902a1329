"""MultiTaskLoss: weighting, missing targets, uncertainty weighting, warm-up, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multitask_unet.errors import ConfigError
from multitask_unet.losses import (
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceCELoss,
    FocalLoss,
    MultiTaskLoss,
    OneVsRestBCELoss,
    Warmup,
)

B, C, K = 3, 3, 4
SIZE = (4, 8, 8)


def model_outputs(seed: int, *, deep: bool = True) -> dict[str, object]:
    """Random outputs in the model's contract: seg full-res, seg_deep fine to coarse, cls."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, object] = {
        "seg": torch.randn(B, C, *SIZE, generator=gen, requires_grad=True),
        "cls": torch.randn(B, K, generator=gen, requires_grad=True),
    }
    if deep:
        out["seg_deep"] = [
            torch.randn(B, C, 4, 4, 4, generator=gen, requires_grad=True),
            torch.randn(B, C, 2, 2, 2, generator=gen, requires_grad=True),
        ]
    return out


def model_targets(seed: int, *, cls: tuple[int, ...] = (1, -1, 3)) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1000)
    return {
        "seg": torch.randint(0, C, (B, 1, *SIZE), generator=gen),
        "cls": torch.tensor(cls),
    }


def test_default_is_nnunet_seg_plus_03_ce():
    outputs, targets = model_outputs(0), model_targets(0)
    result = MultiTaskLoss()(outputs, targets)
    seg = DeepSupervisionLoss(DiceCELoss())([outputs["seg"], *outputs["seg_deep"]], targets["seg"])
    cls = CrossEntropyLoss()(outputs["cls"], targets["cls"])
    torch.testing.assert_close(result.total, seg + 0.3 * cls)
    torch.testing.assert_close(result.parts["seg"], seg.detach())
    torch.testing.assert_close(result.parts["cls"], cls.detach())
    assert result.total.requires_grad
    assert not any(p.requires_grad for p in result.parts.values())
    assert {k: float(v) for k, v in result.weights.items()} == {
        "seg": 1.0,
        "cls": pytest.approx(0.3),
    }
    assert set(result.scalars()) == {"loss", "loss/seg", "loss/cls", "weight/seg", "weight/cls"}


def test_eval_outputs_without_deep_supervision():
    outputs, targets = model_outputs(1, deep=False), model_targets(1)
    result = MultiTaskLoss()(outputs, targets)
    torch.testing.assert_close(result.parts["seg"], DiceCELoss()(outputs["seg"], targets["seg"]))


def test_seg_only_and_cls_only_cases_share_a_batch():
    outputs = model_outputs(2)
    targets = model_targets(2, cls=(-1, -1, 2))  # samples 0 and 1: no label
    has_seg = torch.tensor([True, True, False])  # sample 2: no label map
    targets["seg"][2] = -1  # whatever a missing label map holds must not matter
    result = MultiTaskLoss()(outputs, targets, valid={"seg": has_seg})
    result.total.backward()

    seg_outputs = [outputs["seg"][:2], *(d[:2] for d in outputs["seg_deep"])]
    seg = DeepSupervisionLoss(DiceCELoss())(seg_outputs, targets["seg"][:2])
    cls = CrossEntropyLoss()(outputs["cls"][2:], targets["cls"][2:])
    torch.testing.assert_close(result.parts["seg"], seg.detach())
    torch.testing.assert_close(result.parts["cls"], cls.detach())
    assert torch.isfinite(result.total)
    assert torch.all(outputs["seg"].grad[2] == 0) and torch.any(outputs["seg"].grad[:2] != 0)
    assert torch.all(outputs["cls"].grad[:2] == 0) and torch.any(outputs["cls"].grad[2] != 0)


@pytest.mark.parametrize("uncertainty", [False, True])
def test_batch_without_any_target_is_zero_not_nan(uncertainty):
    outputs = model_outputs(3)
    targets = model_targets(3, cls=(-1, -1, -1))
    loss_fn = MultiTaskLoss(uncertainty=uncertainty)
    result = loss_fn(outputs, targets, valid={"seg": torch.zeros(B, dtype=torch.bool)})
    result.total.backward()
    assert result.parts["seg"].item() == 0.0 and result.parts["cls"].item() == 0.0
    for tensor in (outputs["seg"], outputs["cls"], *outputs["seg_deep"]):
        assert tensor.grad is not None and torch.all(tensor.grad == 0)


def test_background_only_patches():
    outputs = model_outputs(4)
    targets = model_targets(4)
    targets["seg"].zero_()
    result = MultiTaskLoss()(outputs, targets)
    assert torch.isfinite(result.total)
    result.total.backward()
    assert torch.isfinite(outputs["seg"].grad).all()


def test_custom_heads_and_foreign_losses():
    gen = torch.Generator().manual_seed(5)
    outputs = {
        "seg": torch.randn(B, C, *SIZE, generator=gen),
        "subtype": torch.randn(B, K, generator=gen),
        "ovr": torch.randn(B, K, generator=gen),
        "plain": torch.randn(B, K, generator=gen),
    }
    targets = {
        "seg": torch.randint(0, C, (B, *SIZE), generator=gen),
        "subtype": torch.tensor([0, -1, 2]),
        "ovr": torch.tensor([1, 3, -1]),
        "plain": torch.tensor([0, 1, 2]),
    }
    losses = {
        "seg": DiceCELoss(),
        "subtype": (FocalLoss(gamma=1.0), 0.5),
        "ovr": (OneVsRestBCELoss(), 0.2),
        "plain": (nn.CrossEntropyLoss(), 0.1),  # torch loss: no valid= support needed
    }
    result = MultiTaskLoss(losses)(outputs, targets)
    expected = (
        DiceCELoss()(outputs["seg"], targets["seg"])
        + 0.5 * FocalLoss(gamma=1.0)(outputs["subtype"], targets["subtype"])
        + 0.2 * OneVsRestBCELoss()(outputs["ovr"], targets["ovr"])
        + 0.1 * nn.functional.cross_entropy(outputs["plain"], targets["plain"])
    )
    torch.testing.assert_close(result.total, expected)


@pytest.mark.parametrize(
    ("ramp", "epochs", "factors"),
    [
        (Warmup(epochs=10), (0, 2.5, 5, 10, 20), (0.0, 0.25, 0.5, 1.0, 1.0)),
        (Warmup(epochs=4, start=2), (0, 2, 3, 6), (0.0, 0.0, 0.25, 1.0)),
        (Warmup(epochs=10, shape="cosine"), (0, 5, 10), (0.0, 0.5, 1.0)),
        (Warmup(epochs=0, start=3), (2.9, 3), (0.0, 1.0)),
    ],
)
def test_warmup_factors(ramp, epochs, factors):
    assert [ramp.factor(e) for e in epochs] == pytest.approx(list(factors))


def test_cosine_ramp_is_slower_than_linear_at_first():
    assert Warmup(epochs=10, shape="cosine").factor(2) < Warmup(epochs=10).factor(2)


def test_warmup_scales_the_cls_weight_and_survives_a_checkpoint():
    outputs, targets = model_outputs(6), model_targets(6)
    loss_fn = MultiTaskLoss(warmup={"cls": {"epochs": 10}})  # dict form, as from a YAML config
    at_start = loss_fn(outputs, targets)
    torch.testing.assert_close(at_start.total, at_start.parts["seg"])  # cls weight is 0
    loss_fn.set_epoch(5.0)
    half = loss_fn(outputs, targets)
    torch.testing.assert_close(half.total, half.parts["seg"] + 0.15 * half.parts["cls"])

    restored = MultiTaskLoss(warmup={"cls": Warmup(epochs=10)})
    restored.load_state_dict(loss_fn.state_dict())
    assert restored.epoch == 5.0 and restored.weight("cls") == pytest.approx(0.15)


def test_uncertainty_starts_at_static_weighting_and_learns():
    outputs, targets = model_outputs(7), model_targets(7)
    loss_fn = MultiTaskLoss(uncertainty=True)
    assert sorted(name for name, _ in loss_fn.named_parameters()) == [
        "log_vars.cls",
        "log_vars.seg",
    ]
    result = loss_fn(outputs, targets)
    static = MultiTaskLoss()(outputs, targets).total
    # log-variances start at 0: the static weighting, shifted by the seg loss's lower bound (-1)
    torch.testing.assert_close(result.total, static + 1.0)
    result.total.backward()
    assert all(p.grad is not None and p.grad != 0 for p in loss_fn.parameters())


def test_uncertainty_weighting_is_bounded_with_a_negative_seg_loss():
    # A near-perfect segmentation makes nnU-Net's Dice+CE close to -1. Without the lower-bound
    # shift, minimising exp(-s) * L + s / 2 over s would diverge to -inf.
    target = torch.randint(0, C, (B, 1, 2, 3, 3), generator=torch.Generator().manual_seed(8))
    logits = 8 * torch.zeros(B, C, 2, 3, 3).scatter_(1, target, 1.0)
    outputs = {"seg": logits, "cls": torch.randn(B, K)}
    targets = {"seg": target, "cls": torch.tensor([0, 1, 2])}
    loss_fn = MultiTaskLoss(uncertainty=True)
    assert loss_fn(outputs, targets).parts["seg"] < 0
    optimiser = torch.optim.SGD(loss_fn.parameters(), lr=1.0)
    for _ in range(80):
        optimiser.zero_grad()
        result = loss_fn(outputs, targets)
        result.total.backward()
        optimiser.step()
    assert torch.isfinite(result.total)
    # The optimum of exp(-s) * d + s / 2 is s = log(2 d), with d = L - lower bound.
    for key, bound in (("seg", -1.0), ("cls", 0.0)):
        d = result.parts[key] - bound
        torch.testing.assert_close(
            loss_fn.log_vars[key].detach(), torch.log(2 * d), rtol=0, atol=1e-3
        )


def test_missing_keys_and_bad_configs_are_explained():
    outputs, targets = model_outputs(9), model_targets(9)
    with pytest.raises(ConfigError, match="targets has no 'cls'"):
        MultiTaskLoss()(outputs, {"seg": targets["seg"]})
    with pytest.raises(ConfigError, match="outputs have no 'cls'"):
        MultiTaskLoss()({k: v for k, v in outputs.items() if k != "cls"}, targets)
    with pytest.raises(ConfigError, match="wrap it in DeepSupervisionLoss"):
        MultiTaskLoss({"seg": DiceCELoss(), "cls": CrossEntropyLoss()})(outputs, targets)
    with pytest.raises(ConfigError, match="valid names"):
        MultiTaskLoss()(outputs, targets, valid={"segm": torch.ones(B, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="weight for 'cls'"):
        MultiTaskLoss({"cls": (CrossEntropyLoss(), -1.0)})
    with pytest.raises(ConfigError, match="warmup names 'clf'"):
        MultiTaskLoss(warmup={"clf": Warmup(epochs=3)})
    with pytest.raises(ConfigError, match="_deep"):
        MultiTaskLoss({"seg_deep": DiceCELoss()})
    with pytest.raises(ConfigError, match=r"Warmup\.epochs"):
        Warmup(epochs=-1)
    with pytest.raises(ConfigError, match="no option 'epoch'"):
        MultiTaskLoss(warmup={"cls": {"epoch": 3}})


def test_an_output_without_a_loss_term_is_an_error():
    """A head no term consumes would silently stay untrained (an extra ovr head, say)."""
    outputs, targets = model_outputs(11), model_targets(11)
    outputs["cls_ovr"] = torch.randn(B, K)
    targets["cls_ovr"] = targets["cls"]
    with pytest.raises(
        ConfigError, match=r"outputs \['cls_ovr'\] have no loss term.*OneVsRestBCELoss.*build_loss"
    ):
        MultiTaskLoss()(outputs, targets)
    with pytest.raises(ConfigError, match=r"outputs \['seg', 'seg_deep', 'cls_ovr'\] have no"):
        MultiTaskLoss({"cls": CrossEntropyLoss()})(outputs, targets)
    # Weight 0 leaves a head untrained on purpose; seg_deep goes with seg.
    losses = {"seg": DeepSupervisionLoss(DiceCELoss()), "cls": CrossEntropyLoss()}
    result = MultiTaskLoss({**losses, "cls_ovr": (OneVsRestBCELoss(), 0.0)})(outputs, targets)
    assert set(result.parts) == {"seg", "cls", "cls_ovr"}


def test_arguments_that_are_not_dicts_are_explained():
    outputs, targets = model_outputs(9), model_targets(9)
    has_seg = torch.tensor([True, False, True])
    with pytest.raises(
        ConfigError, match=r"valid must be a dict .* valid=\{\"seg\": batch.has_seg\}"
    ):
        MultiTaskLoss()(outputs, targets, valid=has_seg)
    with pytest.raises(
        ConfigError,
        match=r"targets must be a dict keyed like the losses \['seg', 'cls'\], got Tensor",
    ):
        MultiTaskLoss()(outputs, targets["seg"])
    with pytest.raises(ConfigError, match=r"outputs must be a dict .* got list"):
        MultiTaskLoss()([outputs["seg"]], targets)


def test_none_target_means_no_sample_has_it():
    outputs, targets = model_outputs(10), model_targets(10)
    targets["seg"] = None
    result = MultiTaskLoss()(outputs, targets)
    result.total.backward()
    assert result.parts["seg"].item() == 0.0
    torch.testing.assert_close(result.total, 0.3 * result.parts["cls"])
    assert all(torch.all(t.grad == 0) for t in (outputs["seg"], *outputs["seg_deep"]))


@pytest.mark.parametrize(
    ("cls", "has_seg", "expected"),
    [
        ((1, -1, 3), None, {"seg": True, "cls": True}),
        ((-1, -1, -1), (False, True, False), {"seg": True, "cls": False}),
        ((-1, 2, -1), (False, False, False), {"seg": False, "cls": True}),
    ],
)
def test_present_flags_and_uncertainty_ignores_absent_parts(cls, has_seg, expected):
    outputs, targets = model_outputs(11), model_targets(11, cls=cls)
    valid = None if has_seg is None else {"seg": torch.tensor(has_seg)}
    loss_fn = MultiTaskLoss(uncertainty=True)
    result = loss_fn(outputs, targets, valid=valid)
    assert {k: bool(v) for k, v in result.present.items()} == expected
    result.total.backward()
    for key, is_present in expected.items():
        assert (loss_fn.log_vars[key].grad != 0) == is_present
