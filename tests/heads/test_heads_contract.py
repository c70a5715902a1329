"""The head contract: registry, configs, shapes, probabilities, loss kinds and errors."""

from __future__ import annotations

import pytest
import torch

import multitask_unet as mtu
from multitask_unet.errors import ConfigError, DataError, MultitaskUNetError, ShapeError
from multitask_unet.heads import (
    HEADS,
    LOSS_KINDS,
    ClassificationHead,
    HeadConfig,
    PandaHeadConfig,
    PoolState,
    ovr_probabilities,
)
from multitask_unet.heads.state import MaxState, MeanState, SoftmaxState
from multitask_unet.losses import LOSSES
from multitask_unet.models.config import heads_from_spec


def test_every_registered_head_is_tested(kit) -> None:
    assert {"last_stage", "panda", "ovr", "attention", "bottleneck"} <= set(HEADS.list())
    assert set(HEADS.list()) == {name for name, _ in kit.variants.values()}


def test_unknown_head_names_close_matches() -> None:
    with pytest.raises(MultitaskUNetError, match="Did you mean 'panda'"):
        heads_from_spec({"cls": ("pnada", {"num_classes": 3})})


def test_config_round_trips(variant: str, kit) -> None:
    name, options = kit.variants[variant]
    cfg = HeadConfig.from_dict({"name": name, **options})
    assert type(cfg) is HEADS.get(name) and cfg.name == name
    assert HeadConfig.from_dict(cfg.to_dict()) == cfg
    assert HeadConfig.from_json(cfg.to_json()) == cfg
    assert HeadConfig.from_yaml(cfg.to_yaml()) == cfg


def test_forward_is_project_of_pool(encoder: str, variant: str, kit) -> None:
    model = kit.model_with_all_heads(encoder)
    head = model.heads[variant]
    assert isinstance(head, ClassificationHead)
    x = torch.randn(2, 1, *kit.odd_size(model.size_divisor, (1, 2, 3)))
    with torch.no_grad():
        features = model.features(x)
        state = head.pool(features)
        logits = head(features)
    assert isinstance(state, PoolState)
    assert all(t.dtype == torch.float32 for lvl in state.levels for t in vars(lvl).values())
    assert logits.shape == (2, head.num_classes) and logits.dtype == torch.float32
    assert torch.equal(logits, head.project(state))
    assert not torch.allclose(logits[0], logits[1])  # depends on the input


def test_probabilities_and_loss_kind(variant: str, kit) -> None:
    head = kit.model_with_all_heads("tiny_plain").heads[variant]
    logits = torch.randn(5, head.num_classes, generator=torch.Generator().manual_seed(0))
    p = head.probabilities(logits)
    assert p.shape == logits.shape and (p >= 0).all()
    assert torch.allclose(p.sum(-1), torch.ones(5))
    assert torch.equal(p.argmax(-1), logits.argmax(-1))
    assert head.loss_kind in LOSS_KINDS and head.loss_kind in LOSSES
    if kit.variants[variant][0] == "ovr":
        assert head.loss_kind == "bce_ovr"
        s = torch.sigmoid(logits)
        assert torch.allclose(p, s / s.sum(-1, keepdim=True))
    else:
        assert head.loss_kind == "ce"
        assert torch.allclose(p, logits.softmax(-1))


def test_ovr_rule_is_not_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert not torch.allclose(ovr_probabilities(logits), logits.softmax(-1), atol=1e-3)


def test_levels_read_by_default() -> None:
    model = mtu.create_model(
        "tiny_plain",
        heads={
            "a": ("last_stage", {"num_classes": 2}),
            "b": ("panda", {"num_classes": 2}),
            "c": ("bottleneck", {"num_classes": 2}),
            "d": ("attention", {"num_classes": 2, "decoder_stages": (0,), "encoder_levels": (1,)}),
        },
    )
    levels = {k: [str(r) for r in h.levels] for k, h in model.heads.items()}
    assert levels == {
        "a": ["decoder[1]"],
        "b": ["decoder[0]", "decoder[1]"],
        "c": ["encoder[2]"],
        "d": ["decoder[0]", "encoder[1]"],
    }


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("panda", {"num_classes": 1}, "num_classes must be >= 2"),
        ("panda", {"num_classes": 3, "hidden": 0}, "per-level width"),
        ("last_stage", {"num_classes": 3, "dropout": 1.0}, "dropout"),
        ("last_stage", {"num_classes": 3, "hidden": -1}, "hidden"),
        ("last_stage", {"num_classes": 3, "pooling": "avg"}, "'max', 'mean'"),
        ("ovr", {"num_classes": 3, "decoder_stages": (0, 0)}, "twice"),
        ("bottleneck", {"num_classes": 3, "encoder_levels": ()}, "reads no level"),
        ("attention", {"num_classes": 3, "mode": "transformer"}, "'gated', 'query'"),
        ("attention", {"num_classes": 3, "num_heads": 0}, "num_heads"),
        ("attention", {"num_classes": 3, "attention_dim": 0}, "attention_dim"),
        ("panda", {}, "num_classes"),
        ("panda", {"num_classes": 3, "stages": (0,)}, "Did you mean 'decoder_stages'"),
    ],
)
def test_invalid_configs_name_the_problem(name: str, options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HeadConfig.from_dict({"name": name, **options})


def test_attention_width_defaults_to_a_quarter_of_the_channels() -> None:
    model = mtu.create_model(
        "small_residual",
        heads={
            "auto": ("attention", {"num_classes": 2}),
            "fixed": ("attention", {"num_classes": 2, "attention_dim": 12}),
        },
    )
    channels = [ref.info.channels for ref in model.heads["auto"].levels]
    auto = [p.gates.out_features // 2 for p in model.heads["auto"].poolers]
    assert auto == [max(8, c // 4) for c in channels] and len(set(auto)) > 1
    assert {p.gates.out_features for p in model.heads["fixed"].poolers} == {24}


def test_levels_out_of_range_fail_at_build() -> None:
    with pytest.raises(ConfigError, match=r"valid indices are -3\.\.2"):
        mtu.create_model("tiny_plain", heads={"cls": PandaHeadConfig(3, encoder_levels=(3,))})
    with pytest.raises(ConfigError, match="selected twice"):
        mtu.create_model("tiny_plain", heads={"cls": PandaHeadConfig(3, decoder_stages=(1, -1))})


def test_shape_and_value_errors(kit) -> None:
    model = kit.model_with_all_heads("tiny_plain")
    head = model.heads["panda"]
    x = torch.randn(1, 1, 8, 8, 12)
    with torch.no_grad():
        features = model.features(x)
        with pytest.raises(ShapeError, match=r"\(1, 1, 8, 8, 12\)"):
            head.pool(features, torch.ones(1, 1, 8, 8, 8))
        with pytest.raises(DataError, match=">= 0"):
            head.pool(features, -torch.ones(1, 1, 8, 8, 12))
        with pytest.raises(ShapeError, match="decoder level"):
            head.pool(mtu.Features(encoder=features.encoder, decoder=features.decoder[:1]))
        with pytest.raises(ShapeError, match="expected a PoolState with 2"):
            head.project(model.heads["last_stage"].pool(features))
        with pytest.raises(ShapeError, match="empty"):
            head.merge([])
        with pytest.raises(ShapeError, match="same number of levels"):
            head.merge([head.pool(features), model.heads["last_stage"].pool(features)])


def test_state_merges_handle_empty_windows() -> None:
    empty_max = MaxState(torch.full((1, 2), float("-inf")))
    assert torch.equal(MaxState.merge([empty_max, empty_max]).result(), torch.zeros(1, 2))
    empty_mean = MeanState(torch.zeros(1, 2), torch.zeros(1, 1))
    assert torch.equal(MeanState.merge([empty_mean]).result(), torch.zeros(1, 2))
    empty = SoftmaxState(torch.full((1, 1), float("-inf")), torch.zeros(1, 1), torch.zeros(1, 1, 2))
    full = SoftmaxState(torch.tensor([[3.0]]), torch.tensor([[2.0]]), torch.tensor([[[4.0, 6.0]]]))
    merged = SoftmaxState.merge([empty, full, empty])
    assert torch.equal(merged.result(), torch.tensor([[[2.0, 3.0]]]))
    assert torch.equal(SoftmaxState.merge([empty, empty]).result(), torch.zeros(1, 1, 2))
    with pytest.raises(ShapeError, match="cannot merge MaxState with MeanState"):
        MaxState.merge([empty_max, empty_mean])  # type: ignore[list-item]


def test_low_precision_features_pool_in_float32(kit) -> None:
    model = kit.model_with_all_heads("tiny_plain")
    with torch.no_grad():
        features = model.features(torch.randn(1, 1, 8, 8, 8))
        half = mtu.Features(
            [f.bfloat16() for f in features.encoder], [f.bfloat16() for f in features.decoder]
        )
        for name in kit.variants:
            head = model.heads[name]
            state = head.pool(half)
            assert all(t.dtype == torch.float32 for lvl in state.levels for t in vars(lvl).values())
            assert (head.project(state) - head(features)).abs().max() < 0.1, name


def test_two_dimensional_models(kit) -> None:
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", spatial_dims=2, heads=dict(kit.variants)).eval()
    with torch.no_grad():
        features = model.features(torch.randn(2, 1, 12, 20))
        weights = torch.rand(2, 1, 12, 20)
        window = (slice(0, 12), slice(0, 8))
        rest = (slice(0, 12), slice(8, 20))
        for name in kit.variants:
            head = model.heads[name]
            parts = [
                head.pool(kit.window_features(model, features, w), weights[(..., *w)])
                for w in (window, rest)
            ]
            whole = head(features, weights)
            assert whole.shape == (2, head.num_classes)
            assert (head.project(head.merge(parts)) - whole).abs().max() <= 1e-5, name
