"""MultiTaskLossConfig: losses named in configs, YAML round trips, class weights from counts."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.errors import ConfigError, RegistryError
from multitask_unet.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    FocalLoss,
    LossTermConfig,
    MultiTaskLoss,
    MultiTaskLossConfig,
    OneVsRestBCELoss,
    Warmup,
    class_weights,
    pos_weights,
)


def outputs_and_targets(seed: int):
    gen = torch.Generator().manual_seed(seed)
    outputs = {
        "seg": torch.randn(2, 3, 4, 8, 8, generator=gen),
        "seg_deep": [torch.randn(2, 3, 2, 4, 4, generator=gen)],
        "cls": torch.randn(2, 3, generator=gen),
    }
    targets = {
        "seg": torch.randint(0, 3, (2, 1, 4, 8, 8), generator=gen),
        "cls": torch.tensor([2, 0]),
    }
    return outputs, targets


def test_default_config_builds_the_default_loss():
    outputs, targets = outputs_and_targets(0)
    built = MultiTaskLossConfig().build()
    assert isinstance(built.losses["seg"], DeepSupervisionLoss)
    assert isinstance(built.losses["seg"].loss, DiceCELoss)
    torch.testing.assert_close(
        built(outputs, targets).total, MultiTaskLoss()(outputs, targets).total
    )


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip(fmt):
    config = MultiTaskLossConfig(
        terms={
            "seg": LossTermConfig(
                loss="dice_ce", options={"batch_dice": True}, deep_supervision=True
            ),
            "cls": LossTermConfig(
                loss="bce_ovr", weight=0.5, warmup=Warmup(epochs=5, shape="cosine")
            ),
        },
        uncertainty=True,
    )
    text = config.to_yaml() if fmt == "yaml" else config.to_json()
    again = (
        MultiTaskLossConfig.from_yaml(text)
        if fmt == "yaml"
        else MultiTaskLossConfig.from_json(text)
    )
    assert again == config
    built = again.build()
    assert built.losses["seg"].loss.dice.batch_dice is True
    assert isinstance(built.losses["cls"], OneVsRestBCELoss)
    assert built.warmup == {"cls": Warmup(epochs=5, shape="cosine")} and built.uncertainty


def test_class_weights_from_counts():
    config = MultiTaskLossConfig(
        terms={
            "cls": LossTermConfig(loss="focal", options={"gamma": 1.0}, class_weights="balanced")
        }
    )
    built = config.build(class_counts={"cls": [10, 30, 60]})
    outputs, targets = outputs_and_targets(1)
    expected = FocalLoss(gamma=1.0, weight=class_weights([10, 30, 60]))(
        outputs["cls"], targets["cls"]
    )
    torch.testing.assert_close(built({"cls": outputs["cls"]}, targets).total, expected)
    with pytest.raises(ConfigError, match="class_counts"):
        config.build()


def test_config_errors():
    with pytest.raises(RegistryError, match="Did you mean 'focal'"):
        LossTermConfig(loss="focl")
    with pytest.raises(ConfigError, match=r"needs a loss with class weights.*not 'dice'"):
        LossTermConfig(loss="dice", class_weights="balanced")
    with pytest.raises(ConfigError, match=r"either class_weights or options\.weight"):
        LossTermConfig(loss="ce", class_weights="balanced", options={"weight": [1, 2]})
    with pytest.raises(ConfigError, match=r"either class_weights or options\.pos_weight"):
        LossTermConfig(loss="bce_ovr", class_weights="balanced", options={"pos_weight": [1, 2]})
    with pytest.raises(ConfigError, match="no option 'gama'"):
        MultiTaskLossConfig.from_dict({"terms": {"cls": {"loss": "focal", "gama": 2}}})
    with pytest.raises(ConfigError, match="'focal'"):
        MultiTaskLossConfig(
            terms={"cls": LossTermConfig(loss="focal", options={"gama": 2})}
        ).build()


def test_inverse_is_the_former_name_of_balanced_class_weights() -> None:
    assert LossTermConfig(loss="ce", class_weights="inverse").class_weights == "balanced"


@pytest.mark.parametrize("weighting", ["balanced", "inverse_sqrt"])
def test_one_vs_rest_positives_weighted_from_counts(weighting: str) -> None:
    config = MultiTaskLossConfig.from_dict(
        {"terms": {"cls": {"loss": "bce_ovr", "weight": 0.3, "class_weights": weighting}}}
    )
    built = config.build(class_counts={"cls": [2, 3, 1]})
    ratio = torch.tensor([4 / 2, 3 / 3, 5 / 1])  # negatives / positives of every class
    expected = ratio if weighting == "balanced" else ratio.sqrt()
    torch.testing.assert_close(built.losses["cls"].pos_weight, expected)
    torch.testing.assert_close(
        built.losses["cls"].pos_weight, pos_weights([2, 3, 1], class_weights=weighting)
    )


def test_a_class_without_training_cases_is_named() -> None:
    config = MultiTaskLossConfig.from_dict(
        {"terms": {"cls": {"loss": "bce_ovr", "class_weights": "balanced"}}}
    )
    with pytest.raises(ConfigError, match=r"terms\['cls'\].*class\(es\) \[1\] have no sample"):
        config.build(class_counts={"cls": [4, 0, 2]})
