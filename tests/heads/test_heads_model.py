"""Heads inside ``MultiTaskUNet``: several heads, config round-trips, gradients, seg unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import multitask_unet as mtu
from multitask_unet.heads import OvRHeadConfig, PandaHeadConfig


def test_several_heads_build_from_configs_and_pairs() -> None:
    model = mtu.create_model(
        "tiny_residual",
        heads={"cls": ("panda", {"num_classes": 3}), "cls_ovr": OvRHeadConfig(num_classes=3)},
    )
    assert isinstance(model.heads, torch.nn.ModuleDict)
    assert list(model.heads) == ["cls", "cls_ovr"]
    assert model.config.heads["cls"] == PandaHeadConfig(num_classes=3)
    x = torch.randn(2, 1, 8, 12, 16)
    train_out = model.train()(x)
    assert sorted(train_out) == ["cls", "cls_ovr", "seg", "seg_deep"]
    eval_out = model.eval()(x)
    assert sorted(eval_out) == ["cls", "cls_ovr", "seg"]
    for key in ("cls", "cls_ovr"):
        assert eval_out[key].shape == (2, 3) and isinstance(eval_out[key], torch.Tensor)
    assert model.heads["cls_ovr"].loss_kind == "bce_ovr" and model.heads["cls"].loss_kind == "ce"


def test_model_config_with_heads_round_trips(tmp_path, kit) -> None:
    model = kit.build_model("tiny_anisotropic", dict(kit.variants))
    config = model.config
    for path in (tmp_path / "model.yaml", tmp_path / "model.json"):
        config.save(path)
        loaded = mtu.ModelConfig.load(path)
        assert loaded == config
    assert mtu.ModelConfig.from_dict(config.to_dict()) == config
    rebuilt = mtu.create_model(loaded)
    ours = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == ours
    rebuilt.load_state_dict(model.state_dict())


def test_classification_loss_alone_trains_encoder_and_decoder(encoder: str, kit) -> None:
    model = kit.build_model(encoder, dict(kit.variants)).train()
    x = torch.randn(2, 1, *kit.odd_size(model.size_divisor, (1, 2, 2)))
    target = torch.tensor([0, 1])
    for name in kit.variants:
        model.zero_grad(set_to_none=True)
        head = model.heads[name]
        logits = model(x)[name]
        if head.loss_kind == "bce_ovr":
            loss = F.binary_cross_entropy_with_logits(logits, F.one_hot(target, 3).float())
        else:
            loss = F.cross_entropy(logits, target)
        loss.backward()

        def trained(module: torch.nn.Module) -> bool:
            return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

        reads = {ref.source for ref in head.levels}
        assert trained(model.encoder), name
        assert trained(model.decoder) == ("decoder" in reads), name
        assert not trained(model.seg_head), name
        assert all(trained(h) == (n == name) for n, h in model.heads.items()), name


@pytest.mark.parametrize("encoder", ["tiny_plain", "tiny_anisotropic", "timm3d"])
def test_adding_heads_leaves_segmentation_unchanged(encoder: str, kit) -> None:
    plain = kit.build_model(encoder, {}, seed=3).eval()
    with_heads = kit.build_model(encoder, dict(kit.variants), seed=3).eval()
    shared = plain.state_dict()
    theirs = with_heads.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in shared.items())  # same seed, same weights
    x = torch.randn(1, 1, *kit.odd_size(plain.size_divisor, (2, 3, 2)))
    with torch.no_grad():
        expected = plain(x)["seg"]
        got = with_heads(x)
    assert torch.equal(got["seg"], expected)
    assert set(got) == {"seg", *kit.variants}
    # and with the same weights loaded from a segmentation-only checkpoint:
    fresh = kit.build_model(encoder, dict(kit.variants), seed=99).eval()
    missing, unexpected = fresh.load_state_dict(shared, strict=False)
    assert not unexpected and all(k.startswith("heads.") for k in missing)
    with torch.no_grad():
        assert torch.equal(fresh(x)["seg"], expected)
